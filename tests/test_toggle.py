"""PATCH /api/{user_id}/tasks/{task_id}/complete."""

import asyncio

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.helpers import assert_problem, create, error_locations, task_url


def toggle_url(user: str, task_id: int) -> str:
    return f"{task_url(user, task_id)}/complete"


async def test_toggle_without_body_flips(client: httpx.AsyncClient) -> None:
    task = await create(client, "alice")

    done = await client.patch(toggle_url("alice", task["id"]))
    assert done.status_code == 200
    assert done.json()["completed"] is True
    assert done.json()["completed_at"] == done.json()["updated_at"]
    assert done.json()["created_at"] == task["created_at"]

    pending = (await client.patch(toggle_url("alice", task["id"]))).json()
    assert pending["completed"] is False
    assert pending["completed_at"] is None
    assert pending["updated_at"] > done.json()["updated_at"]


@pytest.mark.parametrize("body", [b"", b"null", b"{}"])
async def test_empty_bodies_flip(client: httpx.AsyncClient, body: bytes) -> None:
    task = await create(client, "alice")
    response = await client.patch(
        toggle_url("alice", task["id"]),
        content=body,
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 200, response.text
    assert response.json()["completed"] is True


async def test_body_sets_the_state_idempotently(client: httpx.AsyncClient) -> None:
    task = await create(client, "alice")
    url = toggle_url("alice", task["id"])

    first = (await client.patch(url, json={"completed": True})).json()
    second = (await client.patch(url, json={"completed": True})).json()
    assert first["completed"] is second["completed"] is True
    assert second["completed_at"] == first["completed_at"]
    assert second["updated_at"] == first["updated_at"]

    cleared = (await client.patch(url, json={"completed": False})).json()
    assert cleared["completed"] is False
    assert cleared["completed_at"] is None
    repeated = (await client.patch(url, json={"completed": False})).json()
    assert repeated == cleared


@pytest.mark.parametrize(
    ("body", "location"),
    [
        ({"completed": "true"}, ["body", "completed"]),
        ({"completed": None}, ["body", "completed"]),
        ({"completed": True, "title": "x"}, ["body", "title"]),
    ],
)
async def test_invalid_toggle_body_is_422(
    client: httpx.AsyncClient, body: object, location: list[str]
) -> None:
    task = await create(client, "alice")
    response = await client.patch(toggle_url("alice", task["id"]), json=body)
    assert location in error_locations(response)
    after = (await client.get(task_url("alice", task["id"]))).json()
    assert after == task


async def test_toggle_missing_task_is_404(client: httpx.AsyncClient) -> None:
    assert_problem(await client.patch(toggle_url("alice", 424242)), 404)


async def test_concurrent_toggles_lose_no_update(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    task = await create(client, "alice")
    toggles = 51

    responses = await asyncio.gather(
        *(client.patch(toggle_url("alice", task["id"])) for _ in range(toggles))
    )

    assert [r.status_code for r in responses] == [200] * toggles
    # Each toggle saw a distinct state: as many "completed" answers as flips to completed.
    assert sum(r.json()["completed"] for r in responses) == (toggles + 1) // 2
    async with engine.connect() as connection:
        completed, completed_at = (
            await connection.execute(
                text("SELECT completed, completed_at FROM tasks WHERE id = :id"),
                {"id": task["id"]},
            )
        ).one()
    assert bool(completed) is True  # odd number of flips
    assert completed_at is not None
