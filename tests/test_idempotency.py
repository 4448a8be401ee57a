"""`Idempotency-Key` on create: a retried POST creates its task at most once.

Every test checks what the database holds afterwards, tasks and keys both: a response
that looks right while a second task or a stray key was left behind is still a bug.
"""

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import psycopg
import pytest
from fastapi import FastAPI
from sqlalchemy import text
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.helpers import (
    TASK_FIELDS,
    app_client,
    assert_problem,
    close_databases,
    create,
    libpq_url,
    task_url,
    tasks_url,
)
from tests.locks import wait_for_an_insert_held_on_tasks
from todo_api.api.idempotency import request_fingerprint
from todo_api.app import create_app
from todo_api.db import idempotency as idempotency_db
from todo_api.db.models import idempotency_keys_table
from todo_api.settings import Settings

KEY = "3f0c9a52-6d1e-4b7a-9e0f-1c2d3e4f5a6b"
BODY: dict[str, Any] = {"title": "Buy milk", "description": "two litres"}
OTHER_BODY: dict[str, Any] = {"title": "Buy bread"}
IN_FLIGHT_TYPE = "urn:todo-api:idempotency-key-in-flight"
KEY_LOCATION = ["header", "Idempotency-Key"]


def _fingerprint(body: dict[str, Any]) -> str:
    return request_fingerprint(json.dumps(body).encode())


async def _post(
    client: httpx.AsyncClient,
    user: str = "alice",
    body: dict[str, Any] | None = None,
    key: str | bytes | None = KEY,
) -> httpx.Response:
    headers = httpx.Headers()
    if isinstance(key, bytes):  # sent as is: httpx encodes str values as ASCII only
        headers = httpx.Headers({b"Idempotency-Key": key})
    elif key is not None:
        headers = httpx.Headers({"Idempotency-Key": key})
    return await client.post(tasks_url(user), json=BODY if body is None else body, headers=headers)


async def _tasks(engine: AsyncEngine) -> list[Row[Any]]:
    async with engine.connect() as connection:
        result = await connection.execute(
            text("SELECT id, user_id, title, description FROM tasks ORDER BY id")
        )
        return list(result.all())


async def _keys(engine: AsyncEngine) -> list[Row[Any]]:
    async with engine.connect() as connection:
        result = await connection.execute(
            text(
                "SELECT user_id, key, fingerprint, claim, task_id, response"
                " FROM idempotency_keys ORDER BY user_id, key"
            )
        )
        return list(result.all())


async def _insert_key(
    engine: AsyncEngine,
    *,
    age: timedelta,
    user: str = "alice",
    key: str = KEY,
    body: dict[str, Any] = BODY,
    claim: str = "c" * 32,
    task_id: int | None = None,
    response: str | None = None,
) -> None:
    """A key row as an earlier request left it; without a response it is a claim."""
    async with engine.begin() as connection:
        await connection.execute(
            idempotency_keys_table.insert().values(
                user_id=user,
                key=key,
                fingerprint=_fingerprint(body),
                claim=claim,
                created_at=datetime.now(UTC) - age,
                task_id=task_id,
                response=response,
            )
        )


def _assert_fresh(response: httpx.Response) -> dict[str, Any]:
    """A 201 that created its task now, not a replay; returns the task."""
    assert response.status_code == 201, response.text
    assert "idempotent-replayed" not in response.headers
    task: dict[str, Any] = response.json()
    assert set(task) == TASK_FIELDS
    assert response.headers["etag"] == task["etag"]
    assert response.headers["location"].endswith(task_url(task["user_id"], task["id"]))
    return task


def _assert_replayed(response: httpx.Response, original: httpx.Response) -> None:
    assert response.status_code == 201, response.text
    assert response.headers["idempotent-replayed"] == "true"
    assert response.headers["content-type"] == "application/json"
    assert response.content == original.content
    assert response.headers["location"] == original.headers["location"]
    assert response.headers["etag"] == original.headers["etag"]


def _assert_in_flight(response: httpx.Response) -> None:
    body = assert_problem(response, 409)
    assert body["type"] == IN_FLIGHT_TYPE
    assert response.headers["retry-after"] == "1"


def _assert_key_reused(response: httpx.Response) -> None:
    body = assert_problem(response, 422)
    assert body["errors"][0]["loc"] == KEY_LOCATION


def _assert_bad_key(response: httpx.Response) -> None:
    body = assert_problem(response, 422)
    assert [error["loc"] for error in body["errors"]] == [KEY_LOCATION]


async def test_repeat_replays_the_first_response_and_creates_once(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    first = await _post(client)
    second = await _post(client)

    task = _assert_fresh(first)
    _assert_replayed(second, first)
    assert second.json()["id"] == task["id"]
    assert task["title"] == "Buy milk"
    assert [(row.id, row.user_id) for row in await _tasks(engine)] == [(task["id"], "alice")]
    [key] = await _keys(engine)
    assert (key.user_id, key.key, key.task_id) == ("alice", KEY, task["id"])
    assert key.fingerprint == _fingerprint(BODY)
    assert key.response is None  # the key names its task; the answer is rebuilt from it


@pytest.mark.parametrize(
    "body",
    [
        {"title": "  Call Zoë ", "description": None, "completed": True, "priority": "high"},
        {"title": "Pay rent", "due_at": "2026-12-31T09:30:00.123456+05:30", "tags": ["Ünï", "b"]},
        {"title": "Bins", "due_date": "2026-12-04", "tags": ["e\u0301t\u00e9"]},
    ],
    ids=["completed", "due-at-with-tags", "due-date-with-tags"],
)
async def test_first_and_repeated_answers_are_the_task_as_stored(
    client: httpx.AsyncClient, engine: AsyncEngine, body: dict[str, Any]
) -> None:
    """Both answers are rebuilt from what the request sent; they must be what a read of
    the new task returns, to the microsecond and the tag's spelling."""
    first = await _post(client, body=body)
    task = _assert_fresh(first)
    read = await client.get(task_url("alice", task["id"]))

    assert read.json() == task
    assert read.headers["etag"] == first.headers["etag"]
    _assert_replayed(await _post(client, body=body), first)
    for tag in body.get("tags", []):  # its tag rows were written with it
        tagged = await client.get(tasks_url("alice"), params={"tags": tag.upper()})
        assert [listed["id"] for listed in tagged.json()] == [task["id"]]


async def test_key_order_and_spacing_do_not_make_a_different_body(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    headers = {"Idempotency-Key": KEY, "Content-Type": "application/json"}
    first = await client.post(
        tasks_url("alice"),
        content=b'{"title":"Buy milk","description":"two litres"}',
        headers=headers,
    )
    second = await client.post(
        tasks_url("alice"),
        content=b'{\n  "description" : "two litres",\n\t"title": "Buy milk"  }\n',
        headers=headers,
    )

    task = _assert_fresh(first)
    _assert_replayed(second, first)
    assert [row.id for row in await _tasks(engine)] == [task["id"]]


async def test_same_key_with_another_body_is_422_and_creates_nothing(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    task = _assert_fresh(await _post(client))

    response = await _post(client, body=OTHER_BODY)

    _assert_key_reused(response)
    assert [(row.id, row.title) for row in await _tasks(engine)] == [(task["id"], "Buy milk")]
    [key] = await _keys(engine)
    assert (key.fingerprint, key.task_id) == (_fingerprint(BODY), task["id"])
    # The first body still replays.
    assert (await _post(client)).headers["idempotent-replayed"] == "true"


async def test_keys_are_per_user(client: httpx.AsyncClient, engine: AsyncEngine) -> None:
    alices = _assert_fresh(await _post(client, "alice"))
    bobs = _assert_fresh(await _post(client, "bob"))

    assert alices["id"] != bobs["id"]
    assert (alices["user_id"], bobs["user_id"]) == ("alice", "bob")
    assert [(row.id, row.user_id) for row in await _tasks(engine)] == [
        (alices["id"], "alice"),
        (bobs["id"], "bob"),
    ]
    assert [(row.user_id, row.task_id) for row in await _keys(engine)] == [
        ("alice", alices["id"]),
        ("bob", bobs["id"]),
    ]


async def test_different_keys_create_different_tasks(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    # Keys are compared exactly: case matters.
    keys = ["key-one", "key-two", "KEY-ONE"]
    tasks = [_assert_fresh(await _post(client, key=key)) for key in keys]

    assert len({task["id"] for task in tasks}) == 3
    assert len(await _tasks(engine)) == 3
    assert sorted((row.key, row.task_id) for row in await _keys(engine)) == sorted(
        (key, task["id"]) for key, task in zip(keys, tasks, strict=True)
    )


async def test_without_a_key_every_post_creates(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    tasks = [_assert_fresh(await _post(client, key=None)) for _ in range(3)]

    assert len({task["id"] for task in tasks}) == 3
    assert [row.id for row in await _tasks(engine)] == [task["id"] for task in tasks]
    assert await _keys(engine) == []


async def test_invalid_body_does_not_use_up_the_key(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    rejected = await _post(client, body={"title": ""})

    assert ["body", "title"] in [error["loc"] for error in assert_problem(rejected, 422)["errors"]]
    assert await _tasks(engine) == []
    assert await _keys(engine) == []
    task = _assert_fresh(await _post(client))
    assert [row.id for row in await _tasks(engine)] == [task["id"]]


@pytest.mark.parametrize(
    "key",
    [
        pytest.param("", id="empty"),
        pytest.param("k" * 256, id="256-chars"),
        pytest.param("with space", id="space"),
        pytest.param("tab\there", id="tab"),
        pytest.param("bell\x07", id="control-char"),
        pytest.param("del\x7f", id="del"),
        pytest.param("caf\xe9".encode("latin-1"), id="latin-1"),
        pytest.param("caf\xe9".encode(), id="utf-8"),
    ],
)
async def test_malformed_key_is_422_and_stores_nothing(
    client: httpx.AsyncClient, engine: AsyncEngine, key: str | bytes
) -> None:
    response = await _post(client, key=key)

    _assert_bad_key(response)
    assert await _tasks(engine) == []
    assert await _keys(engine) == []


async def test_key_of_255_visible_characters_is_accepted(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    visible = "".join(chr(code) for code in range(0x21, 0x7F))  # every one of [!-~]
    key = (visible * 3)[:255]

    task = _assert_fresh(await _post(client, key=key))

    assert [row.id for row in await _tasks(engine)] == [task["id"]]
    assert [(row.key, row.task_id) for row in await _keys(engine)] == [(key, task["id"])]
    assert (await _post(client, key=key)).headers["idempotent-replayed"] == "true"


# A claim committed without its task is what the previous version left while a request
# was in flight; this version never commits one.
async def test_repeat_while_the_first_is_in_flight_is_409(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    await _insert_key(engine, age=timedelta(0))

    response = await _post(client)

    _assert_in_flight(response)
    assert await _tasks(engine) == []
    [key] = await _keys(engine)
    assert (key.claim, key.task_id, key.response) == ("c" * 32, None, None)


async def test_claim_younger_than_a_minute_is_still_in_flight(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    # A claim counts as abandoned after 60 s.
    await _insert_key(engine, age=timedelta(seconds=50))

    _assert_in_flight(await _post(client))
    assert await _tasks(engine) == []


async def test_other_body_during_flight_is_422_not_409(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    await _insert_key(engine, age=timedelta(0))

    response = await _post(client, body=OTHER_BODY)

    _assert_key_reused(response)
    assert await _tasks(engine) == []
    [key] = await _keys(engine)
    assert (key.fingerprint, key.claim, key.response) == (_fingerprint(BODY), "c" * 32, None)


@pytest.mark.parametrize("body", [BODY, OTHER_BODY], ids=["same-body", "other-body"])
async def test_abandoned_claim_is_taken_over(
    client: httpx.AsyncClient, engine: AsyncEngine, body: dict[str, Any]
) -> None:
    await _insert_key(engine, age=timedelta(minutes=2))

    response = await _post(client, body=body)

    task = _assert_fresh(response)
    assert task["title"] == body["title"]
    assert [row.id for row in await _tasks(engine)] == [task["id"]]
    [key] = await _keys(engine)
    assert key.claim != "c" * 32
    assert key.fingerprint == _fingerprint(body)
    assert key.task_id == task["id"]
    assert key.response is None


async def test_expired_key_creates_anew_and_expired_keys_are_cleaned_up(
    client: httpx.AsyncClient, engine: AsyncEngine, app: FastAPI
) -> None:
    old = await create(client, "alice", **BODY)
    old_response = json.dumps(old)
    expired = timedelta(hours=25)
    await _insert_key(engine, age=expired, task_id=old["id"], response=old_response)
    # Other users' keys: one expired, one a day old but not yet expired.
    await _insert_key(engine, age=expired, user="bob", task_id=old["id"], response=old_response)
    await _insert_key(
        engine, age=timedelta(hours=23), user="carol", task_id=old["id"], response=old_response
    )

    response = await _post(client)

    task = _assert_fresh(response)
    assert task["id"] != old["id"]
    assert [row.id for row in await _tasks(engine)] == [old["id"], task["id"]]
    # The create left bob's expired key alone: the background clean-up deletes it.
    assert [(row.user_id, row.task_id) for row in await _keys(engine)] == [
        ("alice", task["id"]),
        ("bob", old["id"]),
        ("carol", old["id"]),
    ]
    assert await idempotency_db.delete_expired_batches(app.state.database) == 1
    assert [(row.user_id, row.task_id) for row in await _keys(engine)] == [
        ("alice", task["id"]),
        ("carol", old["id"]),
    ]
    # carol's key is still live: it replays (the task it names, as created).
    carols = await _post(client, "carol")
    assert carols.headers["idempotent-replayed"] == "true"
    assert (carols.json()["id"], carols.json()["title"]) == (old["id"], old["title"])


async def test_replay_after_update_and_delete_is_the_original_response(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    first = await _post(client)
    task = _assert_fresh(first)

    renamed = await client.patch(task_url("alice", task["id"]), json={"title": "Renamed"})
    assert renamed.status_code == 200, renamed.text
    assert renamed.headers["etag"] != task["etag"]
    after_update = await _post(client)

    deleted = await client.delete(task_url("alice", task["id"]))
    assert deleted.status_code == 204, deleted.text
    after_delete = await _post(client)

    for replay in (after_update, after_delete):
        _assert_replayed(replay, first)
        assert replay.json()["title"] == "Buy milk"
        assert replay.headers["etag"] == task["etag"]
    assert await _tasks(engine) == []
    assert [row.task_id for row in await _keys(engine)] == [task["id"]]


async def test_failed_create_leaves_no_key_and_a_retry_creates(
    client: httpx.AsyncClient, engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The claim goes through; the insert after it, in the same transaction, fails.
    monkeypatch.setattr(idempotency_db, "_INSERT_TASK", text("SELECT * FROM no_such_table"))

    response = await _post(client)

    assert_problem(response, 503)
    assert await _tasks(engine) == []
    assert await _keys(engine) == []

    monkeypatch.undo()
    task = _assert_fresh(await _post(client))
    assert [row.id for row in await _tasks(engine)] == [task["id"]]
    assert [row.task_id for row in await _keys(engine)] == [task["id"]]


async def test_concurrent_repeats_create_one_task_and_replay_it(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    responses = await asyncio.gather(*(_post(client) for _ in range(10)))

    # A repeat waits for the first (one round trip) on the key's index, then replays it.
    assert {r.status_code for r in responses} == {201}, [r.text for r in responses]
    ids = {r.json()["id"] for r in responses}
    assert len(ids) == 1
    fresh = [r for r in responses if "idempotent-replayed" not in r.headers]
    assert len(fresh) == 1
    for response in responses:
        assert response.content == fresh[0].content
    [task_id] = ids
    assert [row.id for row in await _tasks(engine)] == [task_id]
    assert [row.task_id for row in await _keys(engine)] == [task_id]


async def _hold_task_inserts(database_url: str) -> psycopg.Connection[Any]:
    """A connection whose lock makes every task insert wait until it rolls back."""
    locker = psycopg.connect(libpq_url(database_url), connect_timeout=5)
    # SHARE conflicts with the ROW EXCLUSIVE lock an INSERT takes.
    locker.execute("LOCK TABLE tasks IN SHARE MODE")
    return locker


async def test_repeat_during_a_real_in_flight_create_waits_for_it_and_replays(
    client: httpx.AsyncClient, engine: AsyncEngine, backend: str, database_url: str
) -> None:
    if backend != "postgres":
        pytest.skip("holds a table lock from another connection while the app inserts")
    # The app's statement timeout is 5 s: the lock is held for far less.
    locker = await _hold_task_inserts(database_url)
    try:
        first = asyncio.create_task(_post(client))
        # The first has claimed the key and waits to insert.
        await asyncio.to_thread(wait_for_an_insert_held_on_tasks, database_url)
        second = asyncio.create_task(_post(client))
        await asyncio.sleep(0.3)
        assert not first.done()
        assert not second.done()
        assert await _keys(engine) == []  # nothing committed meanwhile
    finally:
        locker.rollback()
        locker.close()
    first_response = await asyncio.wait_for(first, timeout=10.0)
    second_response = await asyncio.wait_for(second, timeout=10.0)

    task = _assert_fresh(first_response)
    _assert_replayed(second_response, first_response)
    assert [row.id for row in await _tasks(engine)] == [task["id"]]
    assert [row.task_id for row in await _keys(engine)] == [task["id"]]


@pytest.mark.parametrize("cancellations", [1, 2])
async def test_cancelled_create_leaves_one_task_at_most_and_a_retry_answers_it(
    client: httpx.AsyncClient,
    engine: AsyncEngine,
    backend: str,
    database_url: str,
    cancellations: int,
) -> None:
    """Cancelled mid-insert (as the shutdown grace period running out does), the create
    either never happened or happened whole: a retry creates the task or replays it."""
    if backend != "postgres":
        pytest.skip("holds a table lock from another connection while the app inserts")
    locker = await _hold_task_inserts(database_url)
    try:
        doomed = asyncio.create_task(_post(client))
        await asyncio.to_thread(wait_for_an_insert_held_on_tasks, database_url)
        for _ in range(cancellations):
            doomed.cancel()
            await asyncio.sleep(0.01)
        with pytest.raises(asyncio.CancelledError):
            await doomed
    finally:
        locker.rollback()
        locker.close()

    retried = await _post(client)
    assert retried.status_code == 201, retried.text
    [task] = await _tasks(engine)
    assert retried.json()["id"] == task.id
    assert [row.task_id for row in await _keys(engine)] == [task.id]


async def test_a_repeated_key_header_is_422_and_stores_nothing(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    response = await client.post(
        tasks_url("alice"),
        json=BODY,
        headers=[("Idempotency-Key", "a"), ("Idempotency-Key", "b")],
    )

    _assert_bad_key(response)
    assert await _tasks(engine) == []
    assert await _keys(engine) == []


async def test_create_past_the_statement_timeout_leaves_no_key(
    engine: AsyncEngine, backend: str, database_url: str
) -> None:
    if backend != "postgres":
        pytest.skip("needs a statement timeout to make the insert fail under a table lock")
    async with app_client(database_url, db_pool_size=1, db_statement_timeout_ms=500) as small:
        locker = await _hold_task_inserts(database_url)
        try:
            failed = await _post(small)
        finally:
            locker.rollback()
            locker.close()

        assert_problem(failed, 503)
        assert await _keys(engine) == []
        task = _assert_fresh(await _post(small))
    assert [row.id for row in await _tasks(engine)] == [task["id"]]


#: Expired keys already stored when the tests below start: hours of keyed creates nobody
#: cleaned up.
BACKLOG = 200_000


async def _insert_expired_backlog(engine: AsyncEngine, count: int) -> None:
    async with engine.begin() as connection:
        if engine.dialect.name == "postgresql":
            rows = "SELECT g FROM generate_series(1, :count) AS g"
            created = "now() - interval '2 days'"
        else:
            rows = (
                "WITH RECURSIVE n(g) AS (SELECT 1 UNION ALL SELECT g + 1 FROM n WHERE g < :count)"
                " SELECT g FROM n"
            )
            created = "datetime('now', '-2 days')"
        await connection.execute(
            text(
                "INSERT INTO idempotency_keys (user_id, key, fingerprint, claim, created_at)"
                f" SELECT 'backlog', 'key-' || g, '{'f' * 64}', '{'c' * 32}', {created}"
                f" FROM ({rows}) AS numbers"
            ),
            {"count": count},
        )


async def _expired_key_count(engine: AsyncEngine) -> int:
    async with engine.connect() as connection:
        result = await connection.execute(
            text("SELECT count(*) FROM idempotency_keys WHERE user_id = 'backlog'")
        )
        return int(result.scalar_one())


async def test_a_backlog_of_expired_keys_never_slows_a_keyed_create(
    engine: AsyncEngine, database_url: str
) -> None:
    """The clean-up runs in the background in bounded batches: under a statement timeout far
    below what deleting the backlog at once takes, creates go through and runs shrink it."""
    await _insert_expired_backlog(engine, BACKLOG)
    app = create_app(
        Settings(_env_file=None, database_url=database_url, db_statement_timeout_ms=250)
    )
    try:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as impatient:
            # Connections opened first, as on a server that has been running: the timeout
            # then bounds the creates' statements, not sixteen connections opening at once.
            await asyncio.gather(*(impatient.get(tasks_url("warm-up")) for _ in range(16)))
            responses = await asyncio.gather(*(_post(impatient, key=f"k{i}") for i in range(16)))
        for response in responses:
            _assert_fresh(response)
        assert await _expired_key_count(engine) == BACKLOG  # no request deleted any
        deleted = await idempotency_db.delete_expired_batches(app.state.database)
    finally:
        await close_databases(app)
    run = idempotency_db.CLEAN_UP_BATCH * idempotency_db.CLEAN_UP_BATCHES_PER_RUN
    assert deleted == run
    assert await _expired_key_count(engine) == BACKLOG - run
    assert len(await _tasks(engine)) == 16


@asynccontextmanager
async def _served(
    database_url: str, cleanup_seconds: float
) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    """An app of its own with its lifespan running (its clean-up among it), and a client."""
    app = create_app(
        Settings(
            _env_file=None, database_url=database_url, idempotency_cleanup_seconds=cleanup_seconds
        )
    )
    transport = httpx.ASGITransport(app=app)
    try:
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(transport=transport, base_url="http://test") as client,
        ):
            yield app, client
    finally:
        await close_databases(app)


async def test_the_running_app_deletes_expired_keys_every_few_seconds_while_in_use(
    engine: AsyncEngine, database_url: str
) -> None:
    await _insert_expired_backlog(engine, 300)
    async with _served(database_url, cleanup_seconds=0.05) as (_app, client):
        for _ in range(200):  # up to 10 s: 200 runs due
            # Requests keep the database in use, as a served app does.
            assert (await client.get(tasks_url("alice"))).status_code == 200
            if not await _expired_key_count(engine):
                break
            await asyncio.sleep(0.05)
    assert await _expired_key_count(engine) == 0


async def test_the_clean_up_leaves_a_database_nobody_uses_alone(
    engine: AsyncEngine, database_url: str
) -> None:
    """An idle Neon compute suspends only if nothing sends it statements."""
    await _insert_expired_backlog(engine, 10)
    async with _served(database_url, cleanup_seconds=0.02) as (app, client):
        database = app.state.database
        idle = database.sessions_begun
        await asyncio.sleep(0.3)  # fifteen runs due, nothing else going on
        assert database.sessions_begun == idle
        assert await _expired_key_count(engine) == 10
        assert (await client.get(tasks_url("alice"))).status_code == 200
        for _ in range(250):  # up to 5 s
            if not await _expired_key_count(engine):
                break
            await asyncio.sleep(0.02)
        assert await _expired_key_count(engine) == 0
        used = database.sessions_begun
        await asyncio.sleep(0.3)
        # One request, one run: nothing more until the database is used again.
        assert database.sessions_begun == used
