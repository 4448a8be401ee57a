"""POST /api/{user_id}/tasks."""

from datetime import datetime, timedelta

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.helpers import TASK_FIELDS, assert_problem, error_locations, tasks_url


async def test_create_returns_the_task_with_location(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    response = await client.post(
        tasks_url("alice"), json={"title": "  Buy milk ", "description": "2 litres"}
    )

    assert response.status_code == 201
    task = response.json()
    assert set(task) == TASK_FIELDS
    assert task["title"] == "Buy milk"
    assert task["description"] == "2 litres"
    assert task["user_id"] == "alice"
    assert task["completed"] is False
    assert task["completed_at"] is None
    assert task["created_at"] == task["updated_at"]
    assert response.headers["location"] == f"http://testserver/api/alice/tasks/{task['id']}"

    async with engine.connect() as connection:
        row = (
            await connection.execute(
                text("SELECT user_id, title, description, completed FROM tasks WHERE id = :id"),
                {"id": task["id"]},
            )
        ).one()
    assert tuple(row) == ("alice", "Buy milk", "2 litres", False)

    location = await client.get(response.headers["location"])
    assert location.json() == task


async def test_timestamps_are_utc_with_an_offset(client: httpx.AsyncClient) -> None:
    task = (await client.post(tasks_url("alice"), json={"title": "t"})).json()
    for field in ("created_at", "updated_at"):
        value = task[field]
        assert value.endswith(("Z", "+00:00"))
        assert datetime.fromisoformat(value).utcoffset() == timedelta(0)


async def test_create_completed_sets_completed_at(client: httpx.AsyncClient) -> None:
    task = (await client.post(tasks_url("alice"), json={"title": "t", "completed": True})).json()
    assert task["completed"] is True
    assert task["completed_at"] == task["created_at"]


async def test_description_defaults_to_null(client: httpx.AsyncClient) -> None:
    task = (await client.post(tasks_url("alice"), json={"title": "t"})).json()
    assert task["description"] is None


@pytest.mark.parametrize(
    ("title", "description"),
    [
        ("x" * 200, None),
        ("é" * 200, None),  # characters, not bytes
        ("🎉" * 200, "🎉" * 1000),
        ("t", "d" * 1000),
        ("t", ""),
        ("t", "line one\nline two\r\n\ttabbed"),
    ],
)
async def test_lengths_at_the_limits_are_accepted(
    client: httpx.AsyncClient, title: str, description: str | None
) -> None:
    response = await client.post(
        tasks_url("alice"), json={"title": title, "description": description}
    )
    assert response.status_code == 201, response.text
    assert response.json()["title"] == title
    assert response.json()["description"] == description


@pytest.mark.parametrize(
    ("body", "location"),
    [
        ({}, ["body", "title"]),
        ({"title": ""}, ["body", "title"]),
        ({"title": "   "}, ["body", "title"]),
        ({"title": "x" * 201}, ["body", "title"]),
        ({"title": None}, ["body", "title"]),
        ({"title": 5}, ["body", "title"]),
        ({"title": "t", "description": "d" * 1001}, ["body", "description"]),
        ({"title": "t", "description": 7}, ["body", "description"]),
        ({"title": "t", "completed": "true"}, ["body", "completed"]),
        ({"title": "t", "completed": 1}, ["body", "completed"]),
        ({"title": "t", "completed": None}, ["body", "completed"]),
        ({"title": "a\u0000b"}, ["body", "title"]),
        ({"title": "t", "description": "a\u0000b"}, ["body", "description"]),
        ({"title": "bell\u0007"}, ["body", "title"]),
        ({"title": "two\nlines"}, ["body", "title"]),
        ({"title": "tab\tinside"}, ["body", "title"]),
        ({"title": "t", "description": "escape\u001b[31m"}, ["body", "description"]),
    ],
)
async def test_invalid_bodies_are_422_naming_the_field(
    client: httpx.AsyncClient, engine: AsyncEngine, body: dict[str, object], location: list[str]
) -> None:
    response = await client.post(tasks_url("alice"), json=body)

    assert location in error_locations(response)
    async with engine.connect() as connection:
        assert (await connection.execute(text("SELECT count(*) FROM tasks"))).scalar_one() == 0


@pytest.mark.parametrize(
    "field",
    ["id", "user_id", "created_at", "updated_at", "completed_at", "owner", "priority"],
)
async def test_server_owned_and_unknown_fields_are_rejected(
    client: httpx.AsyncClient, engine: AsyncEngine, field: str
) -> None:
    response = await client.post(tasks_url("alice"), json={"title": "t", field: "bob"})

    body = assert_problem(response, 422)
    assert ["body", field] in [error["loc"] for error in body["errors"]]
    assert field in body["detail"]
    async with engine.connect() as connection:
        assert (await connection.execute(text("SELECT count(*) FROM tasks"))).scalar_one() == 0


async def test_lone_surrogate_is_422(client: httpx.AsyncClient) -> None:
    raw = b'{"title": "broken \\ud800 text"}'
    response = await client.post(
        tasks_url("alice"), content=raw, headers={"content-type": "application/json"}
    )
    assert ["body", "title"] in error_locations(response)


@pytest.mark.parametrize(
    "raw",
    [b"{", b"not json", b"[]", b'"title"', b"null", b'{"title": "t",}'],
)
async def test_malformed_or_non_object_json_is_422(client: httpx.AsyncClient, raw: bytes) -> None:
    response = await client.post(
        tasks_url("alice"), content=raw, headers={"content-type": "application/json"}
    )
    assert_problem(response, 422)


async def test_ids_are_distinct_and_increasing(client: httpx.AsyncClient) -> None:
    ids = [
        (await client.post(tasks_url("alice"), json={"title": f"t{i}"})).json()["id"]
        for i in range(5)
    ]
    assert ids == sorted(set(ids))
