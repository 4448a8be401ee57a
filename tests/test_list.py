"""GET /api/{user_id}/tasks: filters, sorting, pagination headers."""

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.helpers import assert_problem, create, error_locations, tasks_url
from todo_api.db.models import tasks_table


async def _insert_rows(engine: AsyncEngine, rows: list[dict[str, Any]]) -> None:
    async with engine.begin() as connection:
        await connection.execute(insert(tasks_table), rows)


def _row(user: str, title: str, created_at: datetime, **extra: Any) -> dict[str, Any]:
    completed = extra.pop("completed", False)
    return {
        "user_id": user,
        "title": title,
        "description": None,
        "completed": completed,
        "completed_at": created_at if completed else None,
        "created_at": created_at,
        "updated_at": extra.pop("updated_at", created_at),
    }


def _page(link: str) -> tuple[int, int]:
    params = httpx.URL(link).params
    return int(params["limit"]), int(params["offset"])


async def _titles(client: httpx.AsyncClient, user: str, **params: Any) -> list[str]:
    response = await client.get(tasks_url(user), params=params)
    assert response.status_code == 200, response.text
    return [task["title"] for task in response.json()]


async def test_empty_list(client: httpx.AsyncClient) -> None:
    response = await client.get(tasks_url("nobody"))
    assert response.status_code == 200
    assert response.json() == []
    assert response.headers["x-total-count"] == "0"
    assert "link" not in response.headers


async def test_lists_only_the_callers_tasks_newest_first(client: httpx.AsyncClient) -> None:
    for title in ("first", "second", "third"):
        await create(client, "alice", title=title)
    await create(client, "bob", title="bob's")

    response = await client.get(tasks_url("alice"))

    assert [task["title"] for task in response.json()] == ["third", "second", "first"]
    assert {task["user_id"] for task in response.json()} == {"alice"}
    assert response.headers["x-total-count"] == "3"


async def test_status_filter(client: httpx.AsyncClient) -> None:
    await create(client, "alice", title="open")
    await create(client, "alice", title="done", completed=True)

    assert await _titles(client, "alice", status="pending") == ["open"]
    assert await _titles(client, "alice", status="completed") == ["done"]
    assert sorted(await _titles(client, "alice", status="all")) == ["done", "open"]
    response = await client.get(tasks_url("alice"), params={"status": "completed"})
    assert response.headers["x-total-count"] == "1"


async def test_every_sort_order_breaks_ties_by_id(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    base = datetime(2026, 1, 1, tzinfo=UTC)
    later = base + timedelta(hours=1)
    await _insert_rows(
        engine,
        [
            _row("alice", "banana", base, updated_at=later),
            _row("alice", "Apple", base, updated_at=base),
            _row("alice", "cherry", later, updated_at=base),
            _row("alice", "apple", base, updated_at=later),
        ],
    )
    # ids follow insertion: banana < Apple < cherry < apple
    assert await _titles(client, "alice") == ["cherry", "apple", "Apple", "banana"]
    assert await _titles(client, "alice", sort="-created_at") == [
        "cherry",
        "apple",
        "Apple",
        "banana",
    ]
    assert await _titles(client, "alice", sort="created_at") == [
        "banana",
        "Apple",
        "apple",
        "cherry",
    ]
    assert await _titles(client, "alice", sort="updated_at") == [
        "Apple",
        "cherry",
        "banana",
        "apple",
    ]
    assert await _titles(client, "alice", sort="-updated_at") == [
        "apple",
        "banana",
        "cherry",
        "Apple",
    ]
    assert await _titles(client, "alice", sort="title") == ["Apple", "apple", "banana", "cherry"]
    assert await _titles(client, "alice", sort="-title") == [
        "cherry",
        "banana",
        "apple",
        "Apple",
    ]


async def test_pages_cover_everything_once_with_link_headers(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    same_instant = datetime(2026, 1, 1, tzinfo=UTC)
    await _insert_rows(engine, [_row("alice", f"t{i:02}", same_instant) for i in range(7)])

    first = await client.get(tasks_url("alice"), params={"limit": 3})
    assert first.headers["x-total-count"] == "7"
    assert _page(first.links["next"]["url"]) == (3, 3)
    assert "prev" not in first.links

    seen = [task["id"] for task in first.json()]
    response = first
    while "next" in response.links:
        response = await client.get(response.links["next"]["url"])
        assert response.status_code == 200
        assert response.headers["x-total-count"] == "7"
        assert "prev" in response.links
        seen += [task["id"] for task in response.json()]
    assert len(seen) == 7
    assert len(set(seen)) == 7
    assert seen == sorted(seen, reverse=True)

    middle = await client.get(tasks_url("alice"), params={"limit": 3, "offset": 3})
    assert _page(middle.links["prev"]["url"]) == (3, 0)
    assert _page(middle.links["next"]["url"]) == (3, 6)
    last = await client.get(tasks_url("alice"), params={"limit": 3, "offset": 6})
    assert len(last.json()) == 1
    assert "next" not in last.links


async def test_links_keep_the_other_query_parameters(client: httpx.AsyncClient) -> None:
    for i in range(3):
        await create(client, "alice", title=f"t{i}", completed=True)
    response = await client.get(
        tasks_url("alice"), params={"status": "completed", "sort": "title", "limit": 1}
    )
    next_url = httpx.URL(response.links["next"]["url"])
    assert next_url.params["status"] == "completed"
    assert next_url.params["sort"] == "title"
    assert next_url.params["offset"] == "1"


async def test_offset_past_the_end_is_empty_with_prev_link(client: httpx.AsyncClient) -> None:
    for i in range(2):
        await create(client, "alice", title=f"t{i}")
    response = await client.get(tasks_url("alice"), params={"offset": 10, "limit": 5})
    assert response.status_code == 200
    assert response.json() == []
    assert response.headers["x-total-count"] == "2"
    assert "next" not in response.links
    assert _page(response.links["prev"]["url"]) == (5, 0)


async def test_default_page_size_is_100_and_max_is_200(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    instant = datetime(2026, 1, 1, tzinfo=UTC)
    await _insert_rows(engine, [_row("alice", f"t{i}", instant) for i in range(201)])

    default = await client.get(tasks_url("alice"))
    assert len(default.json()) == 100
    assert default.headers["x-total-count"] == "201"
    biggest = await client.get(tasks_url("alice"), params={"limit": 200})
    assert len(biggest.json()) == 200


@pytest.mark.parametrize(
    ("params", "location"),
    [
        ({"status": "done"}, ["query", "status"]),
        ({"sort": "urgency"}, ["query", "sort"]),
        ({"priority": "urgent"}, ["query", "priority"]),
        ({"priority": "high,"}, ["query", "priority"]),
        ({"sort": "id; DROP TABLE tasks"}, ["query", "sort"]),
        ({"limit": 0}, ["query", "limit"]),
        ({"limit": 201}, ["query", "limit"]),
        ({"limit": "ten"}, ["query", "limit"]),
        ({"offset": -1}, ["query", "offset"]),
        ({"offset": 2**63}, ["query", "offset"]),
        ({"offset": "1.5"}, ["query", "offset"]),
    ],
)
async def test_bad_query_values_are_422(
    client: httpx.AsyncClient, params: dict[str, Any], location: list[str]
) -> None:
    response = await client.get(tasks_url("alice"), params=params)
    assert location in error_locations(response)


async def test_every_bad_query_value_is_named_at_once(client: httpx.AsyncClient) -> None:
    response = await client.get(
        tasks_url("alice"),
        params={
            "sort": "urgency",
            "limit": 0,
            "tz": "Mars/Olympus_Mons",
            "overdue": "maybe",
            "tags": "work,,home",
        },
    )
    assert error_locations(response) == [
        ["query", "sort"],
        ["query", "limit"],
        ["query", "tz"],
        ["query", "overdue"],
        ["query", "tags"],
    ]
    assert [error["type"] for error in response.json()["errors"]][2:] == [
        "time_zone",
        "bool_parsing",
        "blank_tag",
    ]
    assert response.json()["detail"].startswith("query.sort: Input should be ")


async def test_unknown_query_parameters_are_ignored(client: httpx.AsyncClient) -> None:
    task = await create(client, "alice")
    response = await client.get(tasks_url("alice"), params={"page": "2", "limit": 1})
    assert response.status_code == 200
    assert [listed["id"] for listed in response.json()] == [task["id"]]


async def test_list_problem_is_json(client: httpx.AsyncClient) -> None:
    assert_problem(await client.get(tasks_url("alice"), params={"limit": -5}), 422)
