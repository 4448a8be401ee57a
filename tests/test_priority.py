"""Priority: low, medium (the default) or high; set, kept, filtered and sorted on."""

from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.helpers import assert_problem, create, error_locations, task_url, tasks_url


async def _stored_rank(engine: AsyncEngine, task_id: int) -> int:
    async with engine.connect() as connection:
        rank = await connection.execute(
            text("SELECT priority FROM tasks WHERE id = :id"), {"id": task_id}
        )
        return int(rank.scalar_one())


async def test_a_new_task_is_medium_unless_told(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    plain = await create(client, "alice", title="Plain")
    urgent = await create(client, "alice", title="Urgent", priority="high")
    assert plain["priority"] == "medium"
    assert urgent["priority"] == "high"
    # Stored as its rank, which is what sorting and the index use.
    assert await _stored_rank(engine, plain["id"]) == 2
    assert await _stored_rank(engine, urgent["id"]) == 3
    assert (await client.get(task_url("alice", urgent["id"]))).json()["priority"] == "high"


@pytest.mark.parametrize("value", ["urgent", "HIGH", "", 3, None, ["high"]])
@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH"])
async def test_an_unknown_or_null_priority_is_422(
    client: httpx.AsyncClient, method: str, value: Any
) -> None:
    task = await create(client, "alice")
    url = tasks_url("alice") if method == "POST" else task_url("alice", task["id"])
    response = await client.request(method, url, json={"title": "T", "priority": value})
    assert error_locations(response) == [["body", "priority"]]


async def test_patch_changes_priority_and_the_etag_only_when_it_differs(
    client: httpx.AsyncClient,
) -> None:
    task = await create(client, "alice")
    raised = await client.patch(task_url("alice", task["id"]), json={"priority": "high"})
    assert raised.status_code == 200
    assert raised.json()["priority"] == "high"
    assert raised.json()["etag"] != task["etag"]
    assert raised.json()["updated_at"] > task["updated_at"]

    again = await client.patch(task_url("alice", task["id"]), json={"priority": "high"})
    assert again.json() == raised.json()  # nothing changed: same ETag, same updated_at


async def test_put_without_priority_keeps_it(client: httpx.AsyncClient) -> None:
    task = await create(client, "alice", title="Old", priority="low")
    # An older client that does not know the field cannot wipe it.
    kept = await client.put(task_url("alice", task["id"]), json={"title": "New"})
    assert kept.json()["priority"] == "low"
    changed = await client.put(
        task_url("alice", task["id"]), json={"title": "New", "priority": "high"}
    )
    assert changed.json()["priority"] == "high"


async def test_list_filters_by_priorities_with_the_other_filters(
    client: httpx.AsyncClient,
) -> None:
    low = await create(client, "alice", title="Low milk", priority="low")
    await create(client, "alice", title="Medium milk")
    high = await create(client, "alice", title="High bread", priority="high")
    done = await create(client, "alice", title="High milk", priority="high")
    await client.patch(f"{task_url('alice', done['id'])}/complete")
    await create(client, "bob", title="Bob's high", priority="high")

    async def ids(**params: str) -> tuple[list[int], str]:
        response = await client.get(tasks_url("alice"), params=params)
        assert response.status_code == 200, response.text
        return [t["id"] for t in response.json()], response.headers["x-total-count"]

    assert await ids(priority="high") == ([done["id"], high["id"]], "2")
    assert await ids(priority="high,low", sort="created_at") == (
        [low["id"], high["id"], done["id"]],
        "3",
    )
    assert await ids(priority="high,high") == ([done["id"], high["id"]], "2")
    assert await ids(priority="high", status="pending") == ([high["id"]], "1")
    assert await ids(priority="high,low", q="milk") == ([done["id"], low["id"]], "2")


async def test_sorting_by_priority_breaks_ties_by_id(client: httpx.AsyncClient) -> None:
    made = [
        await create(client, "alice", title=f"T{i}", priority=priority)
        for i, priority in enumerate(["medium", "high", "low", "high", "medium"])
    ]
    by_id = {task["title"]: task["id"] for task in made}

    ascending = (await client.get(tasks_url("alice"), params={"sort": "priority"})).json()
    descending = (await client.get(tasks_url("alice"), params={"sort": "-priority"})).json()

    assert [t["title"] for t in ascending] == ["T2", "T0", "T4", "T1", "T3"]
    # High first; equal priorities newest id first, as every descending sort does.
    assert [t["title"] for t in descending] == ["T3", "T1", "T4", "T0", "T2"]
    assert by_id["T3"] > by_id["T1"]


async def test_priority_query_values_are_checked(client: httpx.AsyncClient) -> None:
    for value in ["urgent", "high,", ",high", "high low", "HIGH"]:
        response = await client.get(tasks_url("alice"), params={"priority": value})
        assert_problem(response, 422)
        assert error_locations(response) == [["query", "priority"]]
