"""Writes planned from what a server last saw of a task act on the task as it is.

`client` is a server that saw each task as it made it; `elsewhere` another one on the same
database (another worker or instance), which changes the task behind the first one's back.
"""

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.helpers import app_client, create, error_locations, task_url
from todo_api.db import tasks
from todo_api.db.models import tasks_table
from todo_api.db.recent_tasks import RecentTasks

USER = "recalling"
OWNER_OF_PAGES = "recalling-pages"
LISTING_OWNER = "recalling-listed"
REPEATING: dict[str, Any] = {
    "title": "Water the plants",
    "due_date": "2027-01-04",
    "recurrence": {"frequency": "daily"},
}

REMINDED: dict[str, Any] = {
    "title": "Call the dentist",
    "due_at": "2027-01-04T09:00:00Z",
    "reminder": {"minutes_before": 10},
}


@pytest.fixture
async def elsewhere(database_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with app_client(database_url) as other:
        yield other


def _ok(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_completing_a_task_changed_elsewhere_completes_it_as_it_is_now(
    client: httpx.AsyncClient, elsewhere: httpx.AsyncClient
) -> None:
    task = await create(client, USER, **REPEATING)
    url = task_url(USER, task["id"])
    _ok(await elsewhere.patch(url, json={"title": "Water the garden", "due_date": "2027-01-10"}))

    completed = _ok(await client.patch(f"{url}/complete"))

    assert completed["completed"] is True
    assert completed["title"] == "Water the garden"
    assert completed["due_date"] == "2027-01-10"
    following = _ok(await elsewhere.get(task_url(USER, completed["next_occurrence_id"])))
    assert (following["title"], following["due_date"]) == ("Water the garden", "2027-01-11")


async def test_a_toggle_flips_the_completion_the_task_has_now(
    client: httpx.AsyncClient, elsewhere: httpx.AsyncClient
) -> None:
    task = await create(client, USER, **REPEATING)
    url = task_url(USER, task["id"])
    _ok(await elsewhere.patch(f"{url}/complete"))

    toggled = _ok(await client.patch(f"{url}/complete"))

    assert toggled["completed"] is False
    assert _ok(await elsewhere.get(url))["completed"] is False


async def test_a_task_deleted_elsewhere_is_not_found(
    client: httpx.AsyncClient, elsewhere: httpx.AsyncClient
) -> None:
    task = await create(client, USER, **REPEATING)
    url = task_url(USER, task["id"])
    assert (await elsewhere.delete(url)).status_code == 204

    assert (await client.patch(f"{url}/complete")).status_code == 404
    assert (await client.patch(url, json={"due_date": "2027-02-01"})).status_code == 404


async def test_if_match_is_compared_with_the_version_the_task_has_now(
    client: httpx.AsyncClient, elsewhere: httpx.AsyncClient
) -> None:
    created = await client.post(f"/api/{USER}/tasks", json=REPEATING)
    url = task_url(USER, created.json()["id"])
    changed = await elsewhere.patch(url, json={"title": "Water the garden"})
    assert changed.status_code == 200

    stale = await client.patch(f"{url}/complete", headers={"If-Match": created.headers["ETag"]})
    assert stale.status_code == 412, stale.text
    assert _ok(await elsewhere.get(url))["completed"] is False

    current = await client.patch(f"{url}/complete", headers={"If-Match": changed.headers["ETag"]})
    assert _ok(current)["completed"] is True


async def test_a_write_that_changes_nothing_as_last_seen_is_still_made(
    client: httpx.AsyncClient, elsewhere: httpx.AsyncClient
) -> None:
    task = await create(client, USER, **REPEATING)
    url = task_url(USER, task["id"])
    _ok(await elsewhere.patch(url, json={"due_date": "2027-01-10"}))

    written = _ok(await client.patch(url, json={"due_date": "2027-01-04"}))

    assert written["due_date"] == "2027-01-04"
    assert _ok(await elsewhere.get(url))["due_date"] == "2027-01-04"


async def test_a_write_refused_as_last_seen_is_judged_as_the_task_is_now(
    client: httpx.AsyncClient, elsewhere: httpx.AsyncClient
) -> None:
    reminded: dict[str, Any] = {
        "title": "Call",
        "due_at": "2027-01-04T09:00:00Z",
        "reminder": {"minutes_before": 5},
    }
    # Taking the due away would leave a reminder before it with nothing to count from.
    as_seen = await create(client, USER, **reminded)
    refused = await client.patch(task_url(USER, as_seen["id"]), json={"due_at": None})
    assert refused.status_code == 422, refused.text
    task = await create(client, USER, **reminded)
    url = task_url(USER, task["id"])
    _ok(await elsewhere.patch(url, json={"reminder": None}))

    written = _ok(await client.patch(url, json={"due_at": None}))

    assert (written["due_at"], written["reminder"]) == (None, None)


async def test_a_write_accepted_as_last_seen_is_refused_as_the_task_is_now(
    client: httpx.AsyncClient, elsewhere: httpx.AsyncClient
) -> None:
    task = await create(client, USER, title="Report", due_date="2027-01-04")
    url = task_url(USER, task["id"])
    _ok(await elsewhere.patch(url, json={"due_date": None}))

    refused = await client.patch(url, json={"recurrence": {"frequency": "weekly"}})

    assert error_locations(refused) == [["body", "recurrence"]]
    assert _ok(await elsewhere.get(url))["recurrence"] is None


async def test_completing_a_task_completed_elsewhere_changes_nothing(
    client: httpx.AsyncClient, elsewhere: httpx.AsyncClient
) -> None:
    task = await create(client, USER, **REPEATING)
    url = task_url(USER, task["id"])
    first = await elsewhere.patch(url, json={"completed": True})
    assert first.status_code == 200, first.text

    again = await client.patch(url, json={"completed": True})

    assert again.status_code == 200, again.text
    assert again.headers["ETag"] == first.headers["ETag"]
    assert again.json()["next_occurrence_id"] == first.json()["next_occurrence_id"]
    listed = await elsewhere.get(f"/api/{USER}/tasks", params={"q": REPEATING["title"]})
    assert len(listed.json()) == 2  # the task and one next occurrence


async def test_complete_all_completes_each_task_as_it_is_now_once(
    client: httpx.AsyncClient, elsewhere: httpx.AsyncClient
) -> None:
    renamed, done, deleted, kept = [
        (await create(client, USER, **REPEATING))["id"] for _ in range(4)
    ]
    _ok(await elsewhere.patch(task_url(USER, renamed), json={"title": "Water the garden"}))
    _ok(await elsewhere.patch(f"{task_url(USER, done)}/complete"))
    assert (await elsewhere.delete(task_url(USER, deleted))).status_code == 204

    answer = _ok(await client.post(f"/api/{USER}/tasks/complete-all", json={"completed": True}))

    # The renamed task, the one kept as seen, and the occurrence the completion elsewhere made.
    assert answer == {"updated": 3}
    now = {task["id"]: task for task in (await elsewhere.get(f"/api/{USER}/tasks")).json()}
    assert now[renamed]["title"] == "Water the garden"
    assert all(now[task]["completed"] for task in (renamed, done, kept))
    assert deleted not in now
    assert sum(not task["completed"] for task in now.values()) == 3  # one of each series


async def test_a_listing_keeps_the_tasks_that_writes_are_planned_from(
    client: httpx.AsyncClient, elsewhere: httpx.AsyncClient, app: FastAPI
) -> None:
    # Made elsewhere: the listing is all that this server sees of them.
    repeating = await create(elsewhere, LISTING_OWNER, **REPEATING)
    reminded = await create(elsewhere, LISTING_OWNER, **REMINDED)
    plain = await create(elsewhere, LISTING_OWNER, title="Buy milk")
    made = {repeating["id"], reminded["id"], plain["id"]}
    recent: RecentTasks[Any] = app.state.database.recent_tasks

    listed = await client.get(f"/api/{LISTING_OWNER}/tasks")

    assert listed.status_code == 200, listed.text
    assert {task["id"] for task in listed.json()} == made
    kept = {task_id for task_id in made if recent.recall(LISTING_OWNER, task_id) is not None}
    assert kept == {repeating["id"], reminded["id"]}
    # What it kept plans the completion: the next occurrence is made from the rule.
    completed = _ok(await client.patch(f"{task_url(LISTING_OWNER, repeating['id'])}/complete"))
    assert completed["next_occurrence_id"] is not None


async def test_complete_all_of_tasks_seen_goes_to_the_database_once(
    client: httpx.AsyncClient,
    elsewhere: httpx.AsyncClient,
    app: FastAPI,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # With pages of 3: each use of a connection here is one round trip. An owner whose
    # tasks no other test made (their records would be out of date: each test empties the
    # table).
    monkeypatch.setattr(tasks, "_COMPLETE_ALL_PAGE", 3)
    database = app.state.database
    uses = 0
    session = database.session

    def counted() -> Any:
        nonlocal uses
        uses += 1
        return session()

    monkeypatch.setattr(database, "session", counted)

    async def complete_all() -> tuple[int, int]:
        nonlocal uses
        uses = 0
        answer = _ok(
            await client.post(f"/api/{OWNER_OF_PAGES}/tasks/complete-all", json={"completed": True})
        )
        return answer["updated"], uses

    for _ in range(3):
        await create(client, OWNER_OF_PAGES, **REPEATING)
    # A full page, all of it seen: nothing is read beyond it.
    assert await complete_all() == (3, 1)

    # The next occurrences it made, which this server keeps, go elsewhere; three more come.
    pending = (
        await elsewhere.get(f"/api/{OWNER_OF_PAGES}/tasks", params={"status": "pending"})
    ).json()
    for task in pending:
        assert (await elsewhere.delete(task_url(OWNER_OF_PAGES, task["id"]))).status_code == 204
    for _ in range(3):
        await create(client, OWNER_OF_PAGES, **REPEATING)
    # The records of the tasks gone take the places of the first round trip; a page finds
    # the new tasks. Forgotten then, they leave the places to those tasks' next occurrences.
    assert await complete_all() == (3, 2)
    assert await complete_all() == (3, 1)


async def test_a_task_at_the_same_version_with_other_contents_is_written_as_it_is_now(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    # What a database restored in place can hold: the task at the version it had when this
    # server saw it, but changed differently since (so at another time).
    task = await create(client, USER, **REPEATING)
    changed = (
        update(tasks_table)
        .where(tasks_table.c.id == task["id"])
        .values(title="Water the garden", updated_at=datetime(2026, 1, 1, tzinfo=UTC))
    )
    async with engine.begin() as connection:
        await connection.execute(changed)

    completed = _ok(await client.patch(f"{task_url(USER, task['id'])}/complete"))

    assert (completed["title"], completed["completed"]) == ("Water the garden", True)


async def test_a_keyed_create_keeps_the_task_as_stored_and_its_replay_keeps_nothing(
    client: httpx.AsyncClient, elsewhere: httpx.AsyncClient, app: FastAPI
) -> None:
    keyed = {"Idempotency-Key": "recalling-keyed"}
    made = await client.post(f"/api/{USER}/tasks", json=REPEATING, headers=keyed)
    assert made.status_code == 201, made.text
    task_id = made.json()["id"]
    database = app.state.database
    kept = database.recent_tasks.recall(USER, task_id)
    assert kept is not None
    assert kept == await tasks.get_task(database, owner=USER, task_id=task_id)  # read, as stored

    url = task_url(USER, task_id)
    _ok(await elsewhere.patch(url, json={"title": "Water the garden", "due_date": "2027-01-10"}))
    replayed = await client.post(f"/api/{USER}/tasks", json=REPEATING, headers=keyed)
    assert replayed.headers["Idempotent-Replayed"] == "true"
    assert replayed.json()["title"] == "Water the plants"  # the stored response, as it was
    completed = _ok(await client.patch(f"{url}/complete"))

    assert (completed["title"], completed["due_date"]) == ("Water the garden", "2027-01-10")
    following = _ok(await elsewhere.get(task_url(USER, completed["next_occurrence_id"])))
    assert following["due_date"] == "2027-01-11"


def test_the_records_kept_are_bounded_and_the_least_recently_used_go_first() -> None:
    recent: RecentTasks[str] = RecentTasks(size=2)
    recent.remember("alice", 1, "one")
    recent.remember("alice", 2, "two")
    assert recent.recall("alice", 1) == "one"
    recent.remember("alice", 3, "three")

    assert recent.recall("alice", 2) is None
    assert (recent.recall("alice", 1), recent.recall("alice", 3)) == ("one", "three")
    assert recent.recall("bob", 1) is None
    recent.forget("alice", 1)
    assert recent.recall("alice", 1) is None
