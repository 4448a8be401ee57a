"""ETags, If-None-Match (304) and If-Match (412): no lost updates, cheap polling."""

import asyncio
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.helpers import assert_problem, create, task_url, tasks_url
from tests.locks import row_locked

RACERS = 10

# Every single-task write that honours If-Match: (method, path suffix, body).
WRITES: list[tuple[str, str, dict[str, Any] | None]] = [
    ("PUT", "", {"title": "replaced"}),
    ("PATCH", "", {"title": "patched"}),
    ("PATCH", "", {}),
    ("PATCH", "/complete", None),
    ("PATCH", "/complete", {"completed": True}),
    ("DELETE", "", None),
]


async def _stored(engine: AsyncEngine, task_id: int) -> tuple[Any, ...] | None:
    async with engine.connect() as connection:
        row = (
            await connection.execute(
                text("SELECT title, completed, version, updated_at FROM tasks WHERE id = :id"),
                {"id": task_id},
            )
        ).first()
    return None if row is None else tuple(row)


async def _etag(client: httpx.AsyncClient, user: str, task_id: int) -> str:
    response = await client.get(task_url(user, task_id))
    assert response.status_code == 200, response.text
    return response.headers["etag"]


async def test_every_task_response_carries_its_etag_in_header_and_body(
    client: httpx.AsyncClient,
) -> None:
    created = await client.post(tasks_url("alice"), json={"title": "t"})
    task = created.json()
    url = task_url("alice", task["id"])
    responses = [
        created,
        await client.get(url),
        await client.put(url, json={"title": "u"}),
        await client.patch(url, json={"description": "d"}),
        await client.patch(f"{url}/complete"),
    ]

    etags = [response.headers["etag"] for response in responses]
    assert [response.json()["etag"] for response in responses] == etags
    # Strong tags, each write made a new one, and the read saw the created one.
    assert all(etag.startswith('"') and etag.endswith('"') for etag in etags)
    assert etags[0] == etags[1]
    assert len(set(etags)) == 4
    listed = (await client.get(tasks_url("alice"))).json()
    assert [item["etag"] for item in listed] == [etags[-1]]


async def test_etag_moves_only_when_the_task_really_changes(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    task = await create(client, "alice", title="same", description="d")
    url = task_url("alice", task["id"])

    unchanged = [
        await client.patch(url, json={"title": "same"}),
        await client.put(url, json={"title": "same", "description": "d"}),
        await client.patch(f"{url}/complete", json={"completed": False}),
        await client.patch(url, json={}),
    ]

    assert {response.headers["etag"] for response in unchanged} == {task["etag"]}
    assert (await _stored(engine, task["id"]))[2] == 1  # type: ignore[index]
    changed = await client.patch(url, json={"title": "different"})
    assert changed.headers["etag"] != task["etag"]
    assert (await _stored(engine, task["id"]))[2] == 2  # type: ignore[index]


async def test_bulk_actions_move_the_etags_of_the_tasks_they_change(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    done = await create(client, "alice", title="done", completed=True)
    pending = await create(client, "alice", title="pending")
    bobs = await create(client, "bob", title="bob's")

    response = await client.post(f"{tasks_url('alice')}/complete-all", json={"completed": True})

    assert response.json() == {"updated": 1}
    assert await _etag(client, "alice", done["id"]) == done["etag"]
    moved = await client.get(task_url("alice", pending["id"]))
    assert moved.headers["etag"] != pending["etag"]
    assert moved.json()["updated_at"] > pending["updated_at"]
    assert await _etag(client, "bob", bobs["id"]) == bobs["etag"]
    # An old tag no longer allows a write: the bulk change is not silently overwritten.
    stale = await client.patch(
        task_url("alice", pending["id"]),
        json={"completed": False},
        headers={"If-Match": pending["etag"]},
    )
    assert_problem(stale, 412)
    assert (await _stored(engine, pending["id"]))[1]  # type: ignore[index]


@pytest.mark.parametrize(
    "if_none_match",
    ["{etag}", "W/{etag}", '"other", {etag}', "*", ' {etag} ,"x"'],
    ids=["exact", "weak", "in-list", "star", "spaced-list"],
)
async def test_read_with_a_current_if_none_match_is_304_without_body(
    client: httpx.AsyncClient, if_none_match: str
) -> None:
    task = await create(client, "alice")

    response = await client.get(
        task_url("alice", task["id"]),
        headers={"If-None-Match": if_none_match.format(etag=task["etag"])},
    )

    assert response.status_code == 304
    assert response.content == b""
    assert response.headers["etag"] == task["etag"]


@pytest.mark.parametrize("if_none_match", ['"1.999"', 'W/"nope"', "no-quotes", '"unterminated', ""])
async def test_read_with_a_stale_or_malformed_if_none_match_gets_the_task(
    client: httpx.AsyncClient, if_none_match: str
) -> None:
    task = await create(client, "alice")

    response = await client.get(
        task_url("alice", task["id"]), headers={"If-None-Match": if_none_match}
    )

    assert response.status_code == 200
    assert response.json() == task


async def test_a_304_never_reveals_another_users_task(client: httpx.AsyncClient) -> None:
    task = await create(client, "alice")

    for if_none_match in (task["etag"], "*"):
        response = await client.get(
            task_url("bob", task["id"]), headers={"If-None-Match": if_none_match}
        )
        assert_problem(response, 404)


async def test_list_etag_is_stable_and_answers_304_while_the_page_is_unchanged(
    client: httpx.AsyncClient,
) -> None:
    for i in range(3):
        await create(client, "alice", title=f"t{i}")
    first = await client.get(tasks_url("alice"))
    again = await client.get(tasks_url("alice"))

    assert first.headers["etag"] == again.headers["etag"]
    polled = await client.get(tasks_url("alice"), headers={"If-None-Match": first.headers["etag"]})
    assert polled.status_code == 304
    assert polled.content == b""
    assert polled.headers["etag"] == first.headers["etag"]
    weak = await client.get(
        tasks_url("alice"), headers={"If-None-Match": f"W/{first.headers['etag']}"}
    )
    assert weak.status_code == 304
    # Another user's activity is not a change to this page.
    await create(client, "bob")
    unchanged = await client.get(
        tasks_url("alice"), headers={"If-None-Match": first.headers["etag"]}
    )
    assert unchanged.status_code == 304


async def test_list_etag_changes_with_the_page_its_filter_and_the_total(
    client: httpx.AsyncClient,
) -> None:
    tasks = [await create(client, "alice", title=f"t{i}") for i in range(4)]
    page = {"limit": 2}  # newest first: t3, t2

    async def page_etag(**params: Any) -> str:
        response = await client.get(tasks_url("alice"), params=page | params)
        assert response.status_code == 200
        return response.headers["etag"]

    seen = {await page_etag()}
    other_views = {await page_etag(offset=2), await page_etag(status="pending", sort="title")}
    assert len(seen | other_views) == 3

    # A task on the page changes, a task off the page goes (only the total moves), and a
    # new task arrives: each time the same URL gets a new tag.
    await client.patch(task_url("alice", tasks[3]["id"]), json={"completed": True})
    seen.add(await page_etag())
    await client.delete(task_url("alice", tasks[0]["id"]))
    seen.add(await page_etag())
    await create(client, "alice", title="t4")
    seen.add(await page_etag())
    assert len(seen) == 4


@pytest.mark.parametrize(("method", "suffix", "body"), WRITES)
async def test_a_write_with_the_current_etag_in_if_match_succeeds(
    client: httpx.AsyncClient,
    engine: AsyncEngine,
    method: str,
    suffix: str,
    body: dict[str, Any] | None,
) -> None:
    task = await create(client, "alice")
    url = task_url("alice", task["id"]) + suffix

    for if_match in (task["etag"], f'"9.9", {task["etag"]}'):
        fresh = await _stored(engine, task["id"])
        if fresh is None:
            break  # deleted by the first round
        current = await _etag(client, "alice", task["id"])
        header = if_match.replace(task["etag"], current)
        response = await client.request(method, url, json=body, headers={"If-Match": header})
        assert response.status_code in (200, 204), response.text
        if response.status_code == 200:
            assert response.headers["etag"] == response.json()["etag"]
    if method == "DELETE":
        assert await _stored(engine, task["id"]) is None


@pytest.mark.parametrize(("method", "suffix", "body"), WRITES)
@pytest.mark.parametrize(
    "if_match",
    ["stale", "W/{etag}", '"{other_id}.1"', "{etag_unquoted}", '"1.99999999999999999999999"'],
    ids=["stale", "weak", "other-task", "malformed", "huge-version"],
)
async def test_a_write_with_a_non_matching_if_match_is_412_and_changes_nothing(
    client: httpx.AsyncClient,
    engine: AsyncEngine,
    method: str,
    suffix: str,
    body: dict[str, Any] | None,
    if_match: str,
) -> None:
    task = await create(client, "alice", title="original")
    other = await create(client, "alice", title="other")
    url = task_url("alice", task["id"])
    if if_match == "stale":
        if_match = task["etag"]
        task = (await client.patch(url, json={"title": "moved on"})).json()
    header = if_match.format(
        etag=task["etag"], other_id=other["id"], etag_unquoted=task["etag"].strip('"')
    )
    before = await _stored(engine, task["id"])

    response = await client.request(method, url + suffix, json=body, headers={"If-Match": header})

    problem = assert_problem(response, 412)
    assert problem["type"] == "urn:todo-api:precondition-failed"
    assert response.headers["etag"] == task["etag"]
    assert await _stored(engine, task["id"]) == before


@pytest.mark.parametrize(("method", "suffix", "body"), WRITES)
async def test_if_match_star_or_absent_keeps_unconditional_writes(
    client: httpx.AsyncClient,
    engine: AsyncEngine,
    method: str,
    suffix: str,
    body: dict[str, Any] | None,
) -> None:
    for headers in ({"If-Match": "*"}, {}):
        task = await create(client, "alice")
        await client.patch(task_url("alice", task["id"]), json={"title": "moved on"})
        response = await client.request(
            method, task_url("alice", task["id"]) + suffix, json=body, headers=headers
        )
        assert response.status_code in (200, 204), response.text


@pytest.mark.parametrize(("method", "suffix", "body"), WRITES)
async def test_if_match_on_a_missing_or_foreign_task_is_still_404(
    client: httpx.AsyncClient,
    engine: AsyncEngine,
    method: str,
    suffix: str,
    body: dict[str, Any] | None,
) -> None:
    task = await create(client, "alice")
    before = await _stored(engine, task["id"])

    for if_match in (task["etag"], '"1.1"', "*"):
        foreign = await client.request(
            method,
            task_url("bob", task["id"]) + suffix,
            json=body,
            headers={"If-Match": if_match},
        )
        missing = await client.request(
            method,
            task_url("alice", task["id"] + 1000) + suffix,
            json=body,
            headers={"If-Match": if_match},
        )
        assert_problem(foreign, 404)
        assert_problem(missing, 404)
        assert "etag" not in foreign.headers
    assert await _stored(engine, task["id"]) == before


@pytest.mark.parametrize(
    ("method", "suffix", "body"),
    [
        ("PATCH", "", {"title": "mine"}),
        ("PUT", "", {"title": "mine"}),
        ("PATCH", "/complete", None),
        ("DELETE", "", None),
    ],
)
async def test_racing_writers_with_the_same_etag_exactly_one_wins(
    client: httpx.AsyncClient,
    engine: AsyncEngine,
    database_url: str,
    method: str,
    suffix: str,
    body: dict[str, Any] | None,
) -> None:
    task = await create(client, "alice")
    url = task_url("alice", task["id"]) + suffix
    headers = {"If-Match": task["etag"]}

    # The lock makes every writer reach the database before any of them can write, so the
    # version check is what separates them, not their arrival order.
    with row_locked(database_url, task["id"]):
        racers = [
            asyncio.ensure_future(client.request(method, url, json=body, headers=headers))
            for _ in range(RACERS)
        ]
        await asyncio.sleep(0.3)
        assert not any(racer.done() for racer in racers)
    responses = await asyncio.gather(*racers)

    statuses = sorted(response.status_code for response in responses)
    winner = 204 if method == "DELETE" else 200
    assert statuses.count(winner) == 1, statuses
    # The losers were told why: 412, or 404 once the winner had deleted the task.
    assert set(statuses) - {winner} == ({404} if method == "DELETE" else {412})
    stored = await _stored(engine, task["id"])
    if method == "DELETE":
        assert stored is None
    else:
        assert stored is not None
        assert stored[2] == 2  # one write, one version step


@pytest.mark.parametrize(("method", "suffix", "body"), WRITES)
async def test_if_match_lines_are_one_list_so_a_later_line_can_match(
    client: httpx.AsyncClient, method: str, suffix: str, body: dict[str, Any] | None
) -> None:
    # RFC 9110 §5.3: repeated field lines are one comma-separated list, not the first line.
    task = await create(client, "alice")
    stale = f'"{task["id"]}.999"'
    response = await client.request(
        method,
        task_url("alice", task["id"]) + suffix,
        json=body,
        headers=[("If-Match", stale), ("If-Match", task["etag"])],
    )
    assert response.status_code == (204 if method == "DELETE" else 200), response.text


@pytest.mark.parametrize("kind", ["list", "task"])
async def test_if_none_match_lines_are_one_list_so_a_later_line_can_match(
    client: httpx.AsyncClient, kind: str
) -> None:
    task = await create(client, "alice")
    url = tasks_url("alice") if kind == "list" else task_url("alice", task["id"])
    etag = (await client.get(url)).headers["etag"]
    response = await client.get(
        url, headers=[("If-None-Match", '"other"'), ("If-None-Match", etag)]
    )
    assert response.status_code == 304
    assert response.headers["etag"] == etag


async def test_an_unquoted_etag_in_if_match_is_412_saying_so(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    task = await create(client, "alice")
    etag = await _etag(client, "alice", task["id"])
    before = await _stored(engine, task["id"])

    response = await client.patch(
        task_url("alice", task["id"]), json={"title": "no"}, headers={"If-Match": etag.strip('"')}
    )

    body = assert_problem(response, 412)
    # Not "the task has changed": it has not. The detail shows the header as it should be.
    assert "double quotes" in body["detail"]
    assert f"If-Match: {etag}" in body["detail"]
    assert "has changed" not in body["detail"]
    assert response.headers["etag"] == etag
    assert await _stored(engine, task["id"]) == before
