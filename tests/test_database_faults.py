"""Outages, dropped connections, exhausted pools and slow statements: 503s, then recovery."""

import asyncio
import logging
import os
import resource
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from alembic import command
from fastapi import FastAPI
from sqlalchemy import make_url

from tests.conftest import alembic_config
from tests.helpers import app_client, assert_problem, create, libpq_url, task_url, tasks_url
from tests.locks import row_locked
from tests.pgbouncer import PgBouncer, pgbouncer_installed
from tests.private_postgres import PrivatePostgres

# With DB_STATEMENT_TIMEOUT_MS=2000 below: its deadline of 2.5 s, plus at most 1 s waiting
# for a cancellation that a pooler queueing for a stopped server never confirms.
OUTAGE_ANSWER_SECONDS = 4.0
RECOVERY_SECONDS = 10.0

Route = Callable[[str], str]


@pytest.fixture(params=["direct", "pgbouncer"])
def route(request: pytest.FixtureRequest, backend: str) -> Iterator[Route]:
    """How the app reaches PostgreSQL: directly, or through a PgBouncer in transaction mode
    on a plain host name and without DB_TRANSACTION_POOLER, so the app must cope unaided."""
    if request.param == "direct":
        yield lambda url: url
        return
    if backend != "postgres":
        pytest.skip("PgBouncer runs in front of PostgreSQL")
    if not pgbouncer_installed():
        if os.environ.get("CI", "").lower() in {"1", "true", "yes"}:
            pytest.fail("pgbouncer is not installed (CI=true: failing instead of skipping)")
        pytest.skip("pgbouncer is not installed (apt-get install pgbouncer)")
    bouncers: dict[tuple[str | None, int | None], PgBouncer] = {}

    def through_pgbouncer(url: str) -> str:
        server = (make_url(url).host, make_url(url).port)
        if server not in bouncers:
            bouncers[server] = PgBouncer(url).__enter__()
        return bouncers[server].url(url)

    try:
        yield through_pgbouncer
    finally:
        for bouncer in bouncers.values():
            bouncer.__exit__(None, None, None)


@pytest.fixture
def private_postgres(backend: str) -> Iterator[PrivatePostgres]:
    if backend != "postgres":
        pytest.skip("stops and starts a PostgreSQL server; runs in the PostgreSQL pass")
    server = PrivatePostgres()
    try:
        server.init()
        server.start()
        yield server
    finally:
        server.remove()


async def _wait_for(predicate: Callable[[], Any], seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while not await predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"not true within {seconds} s")
        await asyncio.sleep(0.1)


async def test_outage_is_a_fast_503_then_recovers_with_data_intact(
    private_postgres: PrivatePostgres, route: Route, caplog: pytest.LogCaptureFixture
) -> None:
    url = private_postgres.create_database("outage")
    # Alembic runs its own event loop, so not on this one.
    await asyncio.to_thread(command.upgrade, alembic_config(url), "head")
    async with app_client(route(url), db_statement_timeout_ms=2000) as client:
        written = [await create(client, "alice", title=f"before outage {i}") for i in range(5)]
        written[0] = (await client.patch(f"{task_url('alice', written[0]['id'])}/complete")).json()
        before = (await client.get(tasks_url("alice"))).json()

        private_postgres.stop()
        caplog.clear()
        with caplog.at_level(logging.INFO):
            for method, path, body in [
                ("GET", tasks_url("alice"), None),
                ("POST", tasks_url("alice"), {"title": "during outage"}),
                ("GET", task_url("alice", written[1]["id"]), None),
                ("PUT", task_url("alice", written[1]["id"]), {"title": "x"}),
                ("PATCH", task_url("alice", written[1]["id"]), {"title": "x"}),
                ("PATCH", f"{task_url('alice', written[1]['id'])}/complete", None),
                ("DELETE", task_url("alice", written[1]["id"]), None),
                ("GET", tasks_url("alice"), None),
            ]:
                started = time.monotonic()
                response = await client.request(method, path, json=body)
                assert time.monotonic() - started < OUTAGE_ANSWER_SECONDS
                assert_problem(response, 503)
                assert int(response.headers["retry-after"]) > 0
            assert (await client.get("/health")).status_code == 200
            assert_problem(await client.get("/health/ready"), 503)

        warnings = [r for r in caplog.records if r.name.startswith("todo_api")]
        assert len([r for r in warnings if "unavailable" in r.getMessage()]) == 1
        assert all(r.exc_info is None for r in warnings)

        private_postgres.start()

        async def answers() -> bool:
            return (await client.get(tasks_url("alice"))).status_code == 200

        await _wait_for(answers, RECOVERY_SECONDS)
        assert (await client.get(tasks_url("alice"))).json() == before
        assert (await client.get("/health/ready")).status_code == 200
        assert any("reachable again" in r.getMessage() for r in caplog.records)


async def test_terminated_connections_never_reach_a_client(
    database_url: str, route: Route, backend: str
) -> None:
    if backend != "postgres":
        pytest.skip("terminates PostgreSQL backends as a Neon suspend does")
    async with app_client(route(database_url)) as client:
        await _terminated_connections_never_reach_a_client(database_url, client)


async def _terminated_connections_never_reach_a_client(
    database_url: str, client: httpx.AsyncClient
) -> None:
    task = await create(client, "alice")
    # Fill the pool with several connections, as a busy service would have, and use each
    # often enough for psycopg to prepare its statements on the server.
    for _ in range(6):
        warm_up = await asyncio.gather(
            *(client.get(task_url("alice", task["id"])) for _ in range(8)),
            *(client.patch(f"{task_url('alice', task['id'])}/complete") for _ in range(2)),
        )
        assert [r.status_code for r in warm_up] == [200] * 10

    with psycopg.connect(libpq_url(database_url), autocommit=True) as admin:
        terminated = admin.execute(
            # With a timeout it returns once each backend is gone, as a suspend is
            # complete long before the next request arrives.
            "SELECT count(pg_terminate_backend(pid, 5000)) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
        ).fetchone()
    assert terminated is not None
    assert terminated[0] >= 1

    responses = await asyncio.gather(
        *(client.get(task_url("alice", task["id"])) for _ in range(12)),
        *(client.patch(f"{task_url('alice', task['id'])}/complete") for _ in range(4)),
    )
    assert [r.status_code for r in responses] == [200] * 16


async def test_exhausted_pool_is_a_fast_503_not_a_hang(
    database_url: str, client: httpx.AsyncClient
) -> None:
    task = await create(client, "alice")
    async with app_client(
        database_url, db_pool_size=1, db_max_overflow=0, db_pool_timeout=0.5
    ) as small:
        with row_locked(database_url, task["id"]):
            # This write waits on the lock while holding the pool's only connection.
            blocked = asyncio.create_task(
                small.patch(task_url("alice", task["id"]), json={"title": "waited"})
            )
            await asyncio.sleep(0.3)
            started = time.monotonic()
            starved = await small.get(tasks_url("alice"))
            assert time.monotonic() - started < 2.0
            assert_problem(starved, 503)
            assert "retry-after" in starved.headers
        finished = await blocked
        assert finished.status_code == 200
        assert finished.json()["title"] == "waited"


async def test_slow_statement_is_cut_off_by_the_statement_timeout(
    database_url: str, client: httpx.AsyncClient, backend: str, route: Route
) -> None:
    if backend != "postgres":
        pytest.skip("SQLite has no statement timeout; its busy timeout bounds lock waits")
    task = await create(client, "alice")
    # Behind PgBouncer the server gets no statement timeout (PgBouncer refuses it as a
    # startup parameter): the client's deadline cancels the statement instead.
    async with app_client(route(database_url), db_statement_timeout_ms=300) as impatient:
        with row_locked(database_url, task["id"]):
            started = time.monotonic()
            response = await impatient.patch(task_url("alice", task["id"]), json={"title": "no"})
            elapsed = time.monotonic() - started
        assert_problem(response, 503)
        assert 0.25 < elapsed < 3.0
        assert (await impatient.get(task_url("alice", task["id"]))).json()["title"] == task["title"]


@contextmanager
def descriptors_held(count: int) -> Iterator[None]:
    """Keeps `count` descriptors open, so the next ones opened are numbered above them."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = count + 256
    if soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(wanted, hard), hard))
    held = [os.open(os.devnull, os.O_RDONLY) for _ in range(count)]
    try:
        yield
    finally:
        for descriptor in held:
            os.close(descriptor)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


async def test_connections_on_descriptors_above_1024_serve_requests(
    database_url: str, client: httpx.AsyncClient, backend: str
) -> None:
    if backend != "postgres":
        pytest.skip("the pooled-connection check runs on PostgreSQL connections")
    task = await create(client, "alice")
    with descriptors_held(1100):
        probe = os.open(os.devnull, os.O_RDONLY)
        os.close(probe)
        assert probe >= 1024  # select() refuses descriptors from here on
        # A fresh app: its connections are opened now, on high descriptors.
        async with app_client(database_url) as busy:
            for _ in range(3):
                listed = await busy.get(tasks_url("alice"))
                assert listed.status_code == 200, listed.text
                assert [t["id"] for t in listed.json()] == [task["id"]]
            assert (await busy.get("/health/ready")).status_code == 200


async def test_readiness_reflects_the_database_not_a_busy_pool(
    database_url: str, client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    task = await create(client, "alice")
    async with app_client(database_url, db_pool_size=1, db_pool_timeout=0.5) as small:
        with row_locked(database_url, task["id"]), caplog.at_level(logging.WARNING):
            # Holds the pool's only connection while it waits on the lock.
            blocked = asyncio.create_task(
                small.patch(task_url("alice", task["id"]), json={"title": "waited"})
            )
            await asyncio.sleep(0.3)
            assert_problem(await small.get(tasks_url("alice")), 503)
            started = time.monotonic()
            ready = await small.get("/health/ready")
            assert time.monotonic() - started < 1.0
            assert ready.status_code == 200, ready.text
        assert (await blocked).status_code == 200
    # A full pool is no outage: nothing says the database went away.
    assert not [r for r in caplog.records if "unavailable" in r.getMessage()]


async def test_a_statement_timeout_is_a_503_but_no_outage(
    database_url: str,
    client: httpx.AsyncClient,
    backend: str,
    route: Route,
    caplog: pytest.LogCaptureFixture,
) -> None:
    if backend != "postgres":
        pytest.skip("SQLite has no statement timeout")
    task = await create(client, "alice")
    async with app_client(route(database_url), db_statement_timeout_ms=300) as impatient:
        with row_locked(database_url, task["id"]), caplog.at_level(logging.INFO):
            response = await impatient.patch(task_url("alice", task["id"]), json={"title": "no"})
    body = assert_problem(response, 503)
    assert "retry-after" in response.headers
    assert "in time" in body["detail"]
    assert not [r for r in caplog.records if "unavailable" in r.getMessage()]


async def test_a_successful_query_ends_an_outage(
    app: FastAPI, client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    availability = app.state.database_availability
    await client.get(tasks_url("alice"))  # a pooled connection exists from here on
    availability.mark_unavailable("as if a connection had just been refused")
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        assert (await client.get(tasks_url("alice"))).status_code == 200
    assert availability.unavailable is False
    assert [r.getMessage() for r in caplog.records] == ["Database reachable again"]


async def test_an_unmigrated_sqlite_file_is_logged_once_and_is_no_outage(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # A file of its own on every pass: PostgreSQL reports a missing table otherwise.
    async with app_client(f"sqlite:///{tmp_path / 'empty.sqlite3'}") as client:
        with caplog.at_level(logging.WARNING):
            responses = [await client.get(tasks_url("alice")) for _ in range(3)]
    for response in responses:
        assert assert_problem(response, 503)["type"] == "urn:todo-api:schema-not-migrated"
    messages = [r.getMessage() for r in caplog.records if r.name.startswith("todo_api")]
    [error] = [m for m in messages if "not migrated" in m]
    assert "no such table" in error
    # The database answers: nothing says it went away or came back.
    assert not [m for m in messages if "unavailable" in m or "reachable again" in m]


async def test_any_transaction_pooler_works_without_being_declared(
    database_url: str, backend: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A PgBouncer on a plain host name, DB_TRANSACTION_POOLER unset: psycopg's prepared
    statements meet other server connections, which do not know them. The first such
    refusal switches them off, with one warning, and the refused statement runs again."""
    if backend != "postgres":
        pytest.skip("PgBouncer runs in front of PostgreSQL")
    if not pgbouncer_installed():
        pytest.skip("pgbouncer is not installed (apt-get install pgbouncer)")
    with PgBouncer(database_url, server_pool_size=3) as bouncer, caplog.at_level(logging.INFO):
        async with app_client(bouncer.url(database_url), db_pool_size=20) as client:
            task = await create(client, "alice")
            toggles = 0
            for _ in range(6):  # past psycopg's threshold of 5 uses before it prepares
                responses = await asyncio.gather(
                    *(client.patch(f"{task_url('alice', task['id'])}/complete") for _ in range(40)),
                    *(client.get(task_url("alice", task["id"])) for _ in range(20)),
                    client.get(tasks_url("alice")),
                )
                assert [r.status_code for r in responses] == [200] * 61, [
                    r.text for r in responses if r.status_code != 200
                ]
                toggles += 40
            final = await client.get(task_url("alice", task["id"]))
    # Every toggle ran exactly once: none lost to a refusal, none run twice by the rerun.
    assert final.headers["etag"] == f'"{task["id"]}.{1 + toggles}"'
    assert final.json()["completed"] is (toggles % 2 == 1)
    warnings = [r.getMessage() for r in caplog.records if "Prepared statements" in r.getMessage()]
    assert len(warnings) == 1, warnings
    assert "DB_TRANSACTION_POOLER=true" in warnings[0]
