"""Concurrent requests on one task or one user never lose or mix updates."""

import asyncio

import httpx
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.helpers import create, task_url, tasks_url

CONCURRENCY = 100


async def test_a_hundred_concurrent_toggles_end_where_parity_says(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    task = await create(client, "alice")
    url = f"{task_url('alice', task['id'])}/complete"

    responses = await asyncio.gather(*(client.patch(url) for _ in range(CONCURRENCY)))

    assert [r.status_code for r in responses] == [200] * CONCURRENCY
    # Every toggle saw a different state, so exactly half of them completed the task.
    assert sum(r.json()["completed"] for r in responses) == CONCURRENCY // 2
    final = (await client.get(task_url("alice", task["id"]))).json()
    assert final["completed"] is False  # an even number of flips
    assert final["completed_at"] is None


async def test_concurrent_creates_all_land_with_distinct_ids(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    responses = await asyncio.gather(
        *(client.post(tasks_url("alice"), json={"title": f"task {i}"}) for i in range(CONCURRENCY))
    )

    assert [r.status_code for r in responses] == [201] * CONCURRENCY
    ids = {r.json()["id"] for r in responses}
    assert len(ids) == CONCURRENCY
    async with engine.connect() as connection:
        rows = (await connection.execute(text("SELECT id, title FROM tasks"))).all()
    assert {row.id: row.title for row in rows} == {
        r.json()["id"]: r.json()["title"] for r in responses
    }


async def test_concurrent_replacements_never_mix_two_requests(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    task = await create(client, "alice")
    url = task_url("alice", task["id"])

    responses = await asyncio.gather(
        *(
            client.put(url, json={"title": f"title {i}", "description": f"description {i}"})
            for i in range(CONCURRENCY)
        )
    )

    assert [r.status_code for r in responses] == [200] * CONCURRENCY
    for response in responses:
        body = response.json()
        assert body["title"].removeprefix("title ") == body["description"].removeprefix(
            "description "
        )
    async with engine.connect() as connection:
        title, description = (
            await connection.execute(
                text("SELECT title, description FROM tasks WHERE id = :id"), {"id": task["id"]}
            )
        ).one()
    assert title.removeprefix("title ") == description.removeprefix("description ")


async def test_concurrent_partial_updates_of_different_fields_both_apply(
    client: httpx.AsyncClient,
) -> None:
    tasks = [await create(client, "alice", title=f"t{i}") for i in range(20)]

    await asyncio.gather(
        *(
            request
            for task in tasks
            for request in (
                client.patch(
                    task_url("alice", task["id"]), json={"title": f"renamed {task['id']}"}
                ),
                client.patch(task_url("alice", task["id"]), json={"description": "noted"}),
                client.patch(f"{task_url('alice', task['id'])}/complete"),
            )
        )
    )

    for task in tasks:
        final = (await client.get(task_url("alice", task["id"]))).json()
        assert final["title"] == f"renamed {task['id']}"
        assert final["description"] == "noted"
        assert final["completed"] is True
