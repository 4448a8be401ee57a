"""Search (`q`), the stats counter, and the bulk actions "toggle all" and "clear completed"."""

from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.helpers import assert_problem, create, error_locations, task_url, tasks_url


async def _titles(client: httpx.AsyncClient, user: str, **params: Any) -> list[str]:
    response = await client.get(tasks_url(user), params=params)
    assert response.status_code == 200, response.text
    return [task["title"] for task in response.json()]


async def _stored(engine: AsyncEngine, user: str) -> dict[str, tuple[bool, bool]]:
    """Title to (completed, has completed_at) for every stored task of `user`."""
    async with engine.connect() as connection:
        rows = await connection.execute(
            text("SELECT title, completed, completed_at FROM tasks WHERE user_id = :u"),
            {"u": user},
        )
        return {row.title: (bool(row.completed), row.completed_at is not None) for row in rows}


async def test_search_matches_title_or_description_ignoring_case(
    client: httpx.AsyncClient,
) -> None:
    await create(client, "alice", title="Buy MILK")
    await create(client, "alice", title="Call mum", description="ask about the milkman")
    await create(client, "alice", title="Taxes")
    await create(client, "bob", title="milk for bob")

    assert sorted(await _titles(client, "alice", q="milk")) == ["Buy MILK", "Call mum"]
    assert await _titles(client, "alice", q="TAX") == ["Taxes"]
    assert await _titles(client, "alice", q="nothing like this") == []


async def test_percent_and_underscore_match_literally(client: httpx.AsyncClient) -> None:
    await create(client, "alice", title="100% done")
    await create(client, "alice", title="1000 done")
    await create(client, "alice", title="snake_case")
    await create(client, "alice", title="snakeXcase")

    assert await _titles(client, "alice", q="0%") == ["100% done"]
    assert await _titles(client, "alice", q="e_c") == ["snake_case"]
    assert await _titles(client, "alice", q="%") == ["100% done"]
    await create(client, "alice", title="either/or")
    await create(client, "alice", title="either or")
    assert await _titles(client, "alice", q="r/o") == ["either/or"]


async def test_search_combines_with_status_sort_and_pages(client: httpx.AsyncClient) -> None:
    for i in range(5):
        await create(client, "alice", title=f"report {i}", completed=i % 2 == 0)
    await create(client, "alice", title="unrelated", completed=True)

    response = await client.get(
        tasks_url("alice"),
        params={"q": "report", "status": "completed", "sort": "title", "limit": 2},
    )
    assert [t["title"] for t in response.json()] == ["report 0", "report 2"]
    assert response.headers["x-total-count"] == "3"
    next_page = await client.get(response.links["next"]["url"])
    assert [t["title"] for t in next_page.json()] == ["report 4"]
    assert "next" not in next_page.links


@pytest.mark.parametrize("q", ["", "x" * 201, "nul\x00", "line\nbreak"])
async def test_bad_search_is_422(client: httpx.AsyncClient, q: str) -> None:
    assert ["query", "q"] in error_locations(await client.get(tasks_url("alice"), params={"q": q}))


async def test_stats_count_the_callers_tasks(client: httpx.AsyncClient) -> None:
    assert (await client.get(f"{tasks_url('alice')}/stats")).json() == {
        "total": 0,
        "pending": 0,
        "completed": 0,
        "overdue": 0,
        "due_today": 0,
    }
    for i in range(5):
        await create(client, "alice", title=f"t{i}", completed=i < 2)
    await create(client, "bob", title="not alice's", completed=True)

    response = await client.get(f"{tasks_url('alice')}/stats")

    assert response.status_code == 200
    assert response.json() == {
        "total": 5,
        "pending": 3,
        "completed": 2,
        "overdue": 0,
        "due_today": 0,
    }


async def test_complete_all_sets_every_task_and_counts_changes(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    done = await create(client, "alice", title="already done", completed=True)
    await create(client, "alice", title="open 1")
    await create(client, "alice", title="open 2")
    await create(client, "bob", title="bob's open")

    response = await client.post(f"{tasks_url('alice')}/complete-all", json={"completed": True})

    assert response.status_code == 200
    assert response.json() == {"updated": 2}
    assert await _stored(engine, "alice") == {
        "already done": (True, True),
        "open 1": (True, True),
        "open 2": (True, True),
    }
    assert await _stored(engine, "bob") == {"bob's open": (False, False)}
    # The task that did not change keeps its timestamps.
    assert (await client.get(task_url("alice", done["id"]))).json() == done

    again = await client.post(f"{tasks_url('alice')}/complete-all", json={"completed": True})
    assert again.json() == {"updated": 0}
    undone = await client.post(f"{tasks_url('alice')}/complete-all", json={"completed": False})
    assert undone.json() == {"updated": 3}
    assert set((await _stored(engine, "alice")).values()) == {(False, False)}


@pytest.mark.parametrize(
    "body", [{}, {"completed": None}, {"completed": "yes"}, {"completed": True, "x": 1}]
)
async def test_complete_all_needs_a_boolean(
    client: httpx.AsyncClient, engine: AsyncEngine, body: dict[str, Any]
) -> None:
    await create(client, "alice")
    response = await client.post(f"{tasks_url('alice')}/complete-all", json=body)
    assert_problem(response, 422)
    assert await _stored(engine, "alice") == {"A task": (False, False)}


async def test_delete_completed_removes_only_the_callers_completed(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    await create(client, "alice", title="done 1", completed=True)
    await create(client, "alice", title="done 2", completed=True)
    await create(client, "alice", title="open")
    await create(client, "bob", title="bob's done", completed=True)

    response = await client.delete(f"{tasks_url('alice')}/completed")

    assert response.status_code == 200
    assert response.json() == {"deleted": 2}
    assert await _stored(engine, "alice") == {"open": (False, False)}
    assert await _stored(engine, "bob") == {"bob's done": (True, True)}
    assert (await client.delete(f"{tasks_url('alice')}/completed")).json() == {"deleted": 0}


async def test_deleting_the_collection_itself_is_still_405(client: httpx.AsyncClient) -> None:
    await create(client, "alice")
    response = await client.delete(tasks_url("alice"))
    assert_problem(response, 405)
    assert (await client.get(f"{tasks_url('alice')}/stats")).json()["total"] == 1
