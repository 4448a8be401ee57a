"""GET, PUT, PATCH and DELETE on /api/{user_id}/tasks/{task_id}."""

from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.helpers import assert_problem, create, error_locations, task_url


async def _stored(engine: AsyncEngine, task_id: int) -> dict[str, Any] | None:
    async with engine.connect() as connection:
        row = (
            await connection.execute(
                text("SELECT title, description, completed FROM tasks WHERE id = :id"),
                {"id": task_id},
            )
        ).one_or_none()
    return None if row is None else dict(row._mapping)


async def test_read_one(client: httpx.AsyncClient) -> None:
    task = await create(client, "alice", title="t", description="d")
    response = await client.get(task_url("alice", task["id"]))
    assert response.status_code == 200
    assert response.json() == task


async def test_read_missing_is_404(client: httpx.AsyncClient) -> None:
    body = assert_problem(await client.get(task_url("alice", 123456)), 404)
    assert "123456" in body["detail"]


async def test_put_replaces_title_and_description(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    task = await create(client, "alice", title="old", description="old text", completed=True)

    response = await client.put(task_url("alice", task["id"]), json={"title": "  new  "})

    assert response.status_code == 200
    replaced = response.json()
    assert replaced["title"] == "new"
    assert replaced["description"] is None  # absent means null
    assert replaced["completed"] is True  # absent means unchanged
    assert replaced["completed_at"] == task["completed_at"]
    assert replaced["created_at"] == task["created_at"]
    assert replaced["updated_at"] > task["updated_at"]
    assert await _stored(engine, task["id"]) == {
        "title": "new",
        "description": None,
        "completed": True,
    }


async def test_put_can_set_completion(client: httpx.AsyncClient) -> None:
    task = await create(client, "alice")
    done = (
        await client.put(task_url("alice", task["id"]), json={"title": "t", "completed": True})
    ).json()
    assert done["completed"] is True
    assert done["completed_at"] == done["updated_at"]
    undone = (
        await client.put(task_url("alice", task["id"]), json={"title": "t", "completed": False})
    ).json()
    assert undone["completed"] is False
    assert undone["completed_at"] is None


@pytest.mark.parametrize(
    ("body", "location"),
    [
        ({}, ["body", "title"]),
        ({"description": "no title"}, ["body", "title"]),
        ({"title": ""}, ["body", "title"]),
        ({"title": "t", "completed": None}, ["body", "completed"]),
        ({"title": "t", "id": 9}, ["body", "id"]),
        ({"title": "t", "created_at": "2020-01-01T00:00:00Z"}, ["body", "created_at"]),
    ],
)
async def test_invalid_put_is_422_and_changes_nothing(
    client: httpx.AsyncClient, engine: AsyncEngine, body: dict[str, Any], location: list[str]
) -> None:
    task = await create(client, "alice", title="keep", description="me")
    response = await client.put(task_url("alice", task["id"]), json=body)
    assert location in error_locations(response)
    assert await _stored(engine, task["id"]) == {
        "title": "keep",
        "description": "me",
        "completed": False,
    }


async def test_patch_changes_only_the_given_fields(client: httpx.AsyncClient) -> None:
    task = await create(client, "alice", title="t", description="d")

    titled = (await client.patch(task_url("alice", task["id"]), json={"title": " T2 "})).json()
    assert (titled["title"], titled["description"], titled["completed"]) == ("T2", "d", False)

    completed = (await client.patch(task_url("alice", task["id"]), json={"completed": True})).json()
    assert (completed["title"], completed["description"], completed["completed"]) == (
        "T2",
        "d",
        True,
    )
    assert completed["completed_at"] is not None

    cleared = (await client.patch(task_url("alice", task["id"]), json={"description": None})).json()
    assert cleared["description"] is None
    assert cleared["title"] == "T2"
    assert cleared["completed"] is True


async def test_timestamps_move_only_on_real_changes(client: httpx.AsyncClient) -> None:
    task = await create(client, "alice", title="t")
    url = task_url("alice", task["id"])

    same = (await client.patch(url, json={"title": "t"})).json()
    assert same["updated_at"] == task["updated_at"]
    empty = (await client.patch(url, json={})).json()
    assert empty == task

    changed = (await client.patch(url, json={"description": "new"})).json()
    assert changed["updated_at"] > task["updated_at"]
    assert changed["created_at"] == task["created_at"]

    done = (await client.patch(url, json={"completed": True})).json()
    again = (await client.patch(url, json={"completed": True, "title": "t"})).json()
    assert again["completed_at"] == done["completed_at"]
    assert again["updated_at"] == done["updated_at"]


@pytest.mark.parametrize(
    ("body", "location"),
    [
        ({"title": None}, ["body", "title"]),
        ({"completed": None}, ["body", "completed"]),
        ({"title": "   "}, ["body", "title"]),
        ({"title": "x" * 201}, ["body", "title"]),
        ({"description": "x" * 1001}, ["body", "description"]),
        ({"completed": "yes"}, ["body", "completed"]),
        ({"user_id": "bob"}, ["body", "user_id"]),
        ({"updated_at": "2020-01-01T00:00:00Z"}, ["body", "updated_at"]),
        ({"colour": "red"}, ["body", "colour"]),
        ({"description": "nul\u0000"}, ["body", "description"]),
    ],
)
async def test_invalid_patch_is_422_and_changes_nothing(
    client: httpx.AsyncClient, engine: AsyncEngine, body: dict[str, Any], location: list[str]
) -> None:
    task = await create(client, "alice", title="keep", description="me")
    response = await client.patch(task_url("alice", task["id"]), json=body)
    assert location in error_locations(response)
    assert await _stored(engine, task["id"]) == {
        "title": "keep",
        "description": "me",
        "completed": False,
    }


async def test_delete_removes_the_task(client: httpx.AsyncClient, engine: AsyncEngine) -> None:
    task = await create(client, "alice")
    keep = await create(client, "alice", title="other")

    response = await client.delete(task_url("alice", task["id"]))

    assert response.status_code == 204
    assert response.content == b""
    assert await _stored(engine, task["id"]) is None
    assert await _stored(engine, keep["id"]) is not None
    assert_problem(await client.get(task_url("alice", task["id"])), 404)
    assert_problem(await client.delete(task_url("alice", task["id"])), 404)


@pytest.mark.parametrize("method", ["GET", "PUT", "PATCH", "DELETE"])
async def test_missing_task_is_404_for_every_method(client: httpx.AsyncClient, method: str) -> None:
    response = await client.request(method, task_url("alice", 999), json={"title": "t"})
    assert_problem(response, 404)
