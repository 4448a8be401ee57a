"""Reminders over HTTP: listed once their time has come, until acknowledged or re-armed."""

from typing import Any

import httpx
import pytest

from tests.helpers import assert_problem, create, error_locations, task_url

LATER = "2030-01-01T00:00:00Z"


def reminders_url(user: str) -> str:
    return f"/api/{user}/reminders"


def ack_url(user: str, task_id: int) -> str:
    return f"{task_url(user, task_id)}/reminder/ack"


async def due_ids(client: httpx.AsyncClient, user: str, until: str = LATER) -> list[int]:
    response = await client.get(reminders_url(user), params={"until": until})
    assert response.status_code == 200, response.text
    return [task["id"] for task in response.json()]


async def test_a_reminder_at_an_instant_fires_once_acknowledged(
    client: httpx.AsyncClient,
) -> None:
    task = await create(client, "alice", reminder={"at": "2027-01-04T08:30:00+01:00"})
    assert task["reminder"] == {
        "at": "2027-01-04T07:30:00Z",
        "minutes_before": None,
        "tz": None,
        "acknowledged_at": None,
    }
    assert await due_ids(client, "alice", until="2027-01-04T07:29:59Z") == []
    assert await due_ids(client, "alice", until="2027-01-04T07:30:00Z") == [task["id"]]
    assert await due_ids(client, "alice") == [task["id"]]

    acknowledged = await client.post(ack_url("alice", task["id"]))
    assert acknowledged.status_code == 200, acknowledged.text
    body = acknowledged.json()
    assert body["reminder"]["acknowledged_at"] is not None
    assert acknowledged.headers["etag"] == body["etag"] != task["etag"]
    assert await due_ids(client, "alice") == []
    again = await client.post(ack_url("alice", task["id"]))
    assert again.json() == body  # acknowledging again changes nothing


async def test_a_reminder_before_the_due_moves_with_it_and_is_armed_again(
    client: httpx.AsyncClient,
) -> None:
    task = await create(
        client, "alice", due_at="2027-01-04T09:00:00Z", reminder={"minutes_before": 30}
    )
    assert task["reminder"]["at"] == "2027-01-04T08:30:00Z"
    assert task["reminder"]["minutes_before"] == 30
    await client.post(ack_url("alice", task["id"]))
    assert await due_ids(client, "alice") == []

    moved = await client.patch(
        task_url("alice", task["id"]), json={"due_at": "2027-01-05T09:00:00Z"}
    )
    assert moved.status_code == 200, moved.text
    assert moved.json()["reminder"]["at"] == "2027-01-05T08:30:00Z"
    assert moved.json()["reminder"]["acknowledged_at"] is None
    assert await due_ids(client, "alice", until="2027-01-05T08:30:00Z") == [task["id"]]
    assert await due_ids(client, "alice", until="2027-01-05T08:29:00Z") == []

    await client.post(ack_url("alice", task["id"]))
    reset = await client.patch(
        task_url("alice", task["id"]), json={"reminder": {"minutes_before": 60}}
    )
    assert reset.json()["reminder"]["at"] == "2027-01-05T08:00:00Z"
    assert await due_ids(client, "alice") == [task["id"]]


async def test_a_reminder_before_a_due_day_counts_from_that_day_where_the_user_is(
    client: httpx.AsyncClient,
) -> None:
    task = await create(
        client,
        "alice",
        due_date="2027-07-01",
        reminder={"minutes_before": 120, "tz": "Europe/Paris"},
    )
    # The day starts at 00:00 in Paris, 22:00 UTC the day before in summer.
    assert task["reminder"] == {
        "at": "2027-06-30T20:00:00Z",
        "minutes_before": 120,
        "tz": "Europe/Paris",
        "acknowledged_at": None,
    }


@pytest.mark.parametrize(
    "complete",
    [
        lambda client, task: client.patch(f"{task_url('alice', task)}/complete"),
        lambda client, task: client.patch(
            f"{task_url('alice', task)}/complete", json={"completed": True}
        ),
        lambda client, task: client.patch(task_url("alice", task), json={"completed": True}),
        lambda client, task: client.put(
            task_url("alice", task), json={"title": "done", "completed": True}
        ),
        lambda client, _task: client.post(
            "/api/alice/tasks/complete-all", json={"completed": True}
        ),
    ],
    ids=["toggle", "set", "patch", "put", "complete-all"],
)
async def test_completing_or_deleting_disarms_it(client: httpx.AsyncClient, complete: Any) -> None:
    done = await create(client, "alice", reminder={"at": "2027-01-04T08:00:00Z"})
    assert (await complete(client, done["id"])).status_code == 200
    gone = await create(client, "alice", reminder={"at": "2027-01-04T08:00:00Z"})
    kept = await create(client, "alice", reminder={"at": "2027-01-04T09:00:00Z"})
    assert await due_ids(client, "alice") == [gone["id"], kept["id"]]
    await client.delete(task_url("alice", gone["id"]))
    assert await due_ids(client, "alice") == [kept["id"]]
    completed = (await client.get(task_url("alice", done["id"]))).json()
    assert completed["reminder"]["acknowledged_at"] == completed["completed_at"]
    # Reopened, it stays acknowledged until the reminder is set again or the due moves.
    await client.patch(task_url("alice", done["id"]), json={"completed": False})
    assert await due_ids(client, "alice") == [kept["id"]]
    await client.patch(task_url("alice", done["id"]), json={"reminder": {"at": LATER}})
    assert await due_ids(client, "alice") == [kept["id"], done["id"]]


async def test_a_task_created_completed_has_its_reminder_acknowledged(
    client: httpx.AsyncClient,
) -> None:
    task = await create(client, "alice", completed=True, reminder={"at": "2027-01-04T08:00:00Z"})
    assert task["reminder"]["acknowledged_at"] == task["completed_at"]
    assert await due_ids(client, "alice") == []


async def test_the_next_occurrence_inherits_a_reminder_before_its_due(
    client: httpx.AsyncClient,
) -> None:
    task = await create(
        client,
        "alice",
        due_at="2027-01-04T09:00:00Z",
        recurrence={"frequency": "daily"},
        reminder={"minutes_before": 15},
    )
    done = (await client.patch(f"{task_url('alice', task['id'])}/complete")).json()
    following = (await client.get(task_url("alice", done["next_occurrence_id"]))).json()
    assert following["reminder"]["at"] == "2027-01-05T08:45:00Z"
    assert await due_ids(client, "alice") == [following["id"]]

    once = await create(
        client,
        "alice",
        due_at="2027-01-04T09:00:00Z",
        recurrence={"frequency": "daily"},
        reminder={"at": "2027-01-04T07:00:00Z"},
    )
    done = (await client.patch(f"{task_url('alice', once['id'])}/complete")).json()
    following = (await client.get(task_url("alice", done["next_occurrence_id"]))).json()
    assert following["reminder"] is None


async def test_reminders_are_the_callers_own(client: httpx.AsyncClient) -> None:
    task = await create(client, "alice", reminder={"at": "2027-01-04T08:00:00Z"})
    assert await due_ids(client, "bob") == []
    assert_problem(await client.post(ack_url("bob", task["id"])), 404)
    assert await due_ids(client, "alice") == [task["id"]]


async def test_oldest_first_in_pages(client: httpx.AsyncClient) -> None:
    ids = [
        (await create(client, "alice", reminder={"at": f"2027-01-0{day}T08:00:00Z"}))["id"]
        for day in (3, 1, 2)
    ]
    first = await client.get(reminders_url("alice"), params={"until": LATER, "limit": 2})
    assert [task["id"] for task in first.json()] == [ids[1], ids[2]]
    assert first.headers["x-total-count"] == "3"
    assert 'rel="next"' in first.headers["link"]
    second = await client.get(
        reminders_url("alice"), params={"until": LATER, "limit": 2, "offset": 2}
    )
    assert [task["id"] for task in second.json()] == [ids[0]]


async def test_now_is_the_default(client: httpx.AsyncClient) -> None:
    past = await create(client, "alice", reminder={"at": "2020-01-01T00:00:00Z"})
    await create(client, "alice", reminder={"at": "2999-01-01T00:00:00Z"})
    listed = await client.get(reminders_url("alice"))
    assert [task["id"] for task in listed.json()] == [past["id"]]


@pytest.mark.parametrize(
    ("body", "location"),
    [
        ({"reminder": {"minutes_before": 10}}, ["body", "reminder"]),
        ({"due_date": "2027-01-04", "reminder": {"minutes_before": 40321}}, ["body", "reminder"]),
        ({"reminder": {"at": "2027-01-04T08:00:00"}}, ["body", "reminder"]),
        ({"reminder": {"at": "2027-01-04T08:00:00Z", "minutes_before": 5}}, ["body", "reminder"]),
        # Before year 1, where Python's calendar (and so the reminder) cannot go.
        (
            {"due_at": "0001-01-01T00:01:00Z", "reminder": {"minutes_before": 5}},
            ["body", "reminder"],
        ),
        (
            {"due_date": "0001-01-01", "reminder": {"minutes_before": 5, "tz": "Asia/Tokyo"}},
            ["body", "reminder"],
        ),
    ],
)
async def test_a_reminder_that_cannot_work_is_refused(
    client: httpx.AsyncClient, body: dict[str, Any], location: list[Any]
) -> None:
    response = await client.post("/api/alice/tasks", json={"title": "x", **body})
    assert location in [loc[:2] for loc in error_locations(response)]


async def test_a_due_that_a_reminder_counts_from_cannot_be_removed(
    client: httpx.AsyncClient,
) -> None:
    task = await create(
        client, "alice", due_at="2027-01-04T09:00:00Z", reminder={"minutes_before": 5}
    )
    response = await client.patch(task_url("alice", task["id"]), json={"due_at": None})
    assert error_locations(response) == [["body", "reminder"]]
    cleared = await client.patch(
        task_url("alice", task["id"]), json={"due_at": None, "reminder": None}
    )
    assert cleared.status_code == 200, cleared.text
    assert (cleared.json()["due_at"], cleared.json()["reminder"]) == (None, None)


async def test_acknowledging_a_task_without_a_reminder_is_a_conflict(
    client: httpx.AsyncClient,
) -> None:
    task = await create(client, "alice")
    body = assert_problem(await client.post(ack_url("alice", task["id"])), 409)
    assert body["type"] == "urn:todo-api:no-reminder"
    assert_problem(await client.post(ack_url("alice", 123456)), 404)
