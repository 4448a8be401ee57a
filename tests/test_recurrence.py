"""Recurring tasks over HTTP: completing an occurrence makes the next one, once."""

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.helpers import create, error_locations, task_url, tasks_url
from todo_api.db import tasks as task_queries

WEEKLY_NEW_YORK = {"frequency": "weekly", "tz": "America/New_York"}


def complete_url(user: str, task_id: int) -> str:
    return f"{task_url(user, task_id)}/complete"


async def completed(client: httpx.AsyncClient, user: str, task_id: int) -> dict[str, Any]:
    response = await client.patch(complete_url(user, task_id), json={"completed": True})
    assert response.status_code == 200, response.text
    task: dict[str, Any] = response.json()
    return task


async def series_rows(engine: AsyncEngine, series_id: int) -> list[tuple[Any, ...]]:
    """(id, occurrence, completed) of every task of the series, in order."""
    async with engine.connect() as connection:
        result = await connection.execute(
            text(
                "SELECT id, occurrence, completed FROM tasks"
                " WHERE id = :series OR series_id = :series ORDER BY occurrence"
            ),
            {"series": series_id},
        )
        return [tuple(row) for row in result]


async def test_a_repeating_task_says_how_it_repeats(client: httpx.AsyncClient) -> None:
    task = await create(
        client,
        "alice",
        title="Stand-up",
        due_at="2027-03-08T09:00:00-05:00",
        recurrence={"frequency": "weekly", "days_of_week": ["we", "mo"], "tz": "America/New_York"},
    )
    assert task["recurrence"] == {
        "frequency": "weekly",
        "interval": 1,
        "days_of_week": ["mo", "we"],
        "month_day": None,
        "ends": None,
        "from": "due",
        "tz": "America/New_York",
        # The local time of day of the due is part of the rule.
        "rrule": "FREQ=WEEKLY;INTERVAL=1;BYDAY=MO,WE;BYHOUR=9;BYMINUTE=0;BYSECOND=0",
    }
    assert task["series_id"] == task["id"]
    assert task["next_occurrence_id"] is None
    plain = await create(client, "alice")
    assert (plain["recurrence"], plain["series_id"], plain["next_occurrence_id"]) == (
        None,
        None,
        None,
    )


async def test_completing_makes_the_next_occurrence_at_the_same_local_time_across_dst(
    client: httpx.AsyncClient,
) -> None:
    # New York moves its clocks on 2027-03-14 and 2027-11-07: 09:00 stays 09:00.
    task = await create(
        client,
        "alice",
        title="Team meeting",
        description="Room 4",
        priority="high",
        tags=["work"],
        due_at="2027-03-08T09:00:00-05:00",
        recurrence=WEEKLY_NEW_YORK,
    )
    done = await client.patch(complete_url("alice", task["id"]))
    assert done.status_code == 200, done.text
    next_id = done.json()["next_occurrence_id"]
    assert isinstance(next_id, int)
    assert done.headers["link"] == (
        f'<http://testserver{task_url("alice", next_id)}>; rel="next-occurrence"'
    )
    following = (await client.get(task_url("alice", next_id))).json()
    assert following["due_at"] == "2027-03-15T13:00:00Z"  # 09:00 EDT
    assert following["completed"] is False
    assert following["series_id"] == task["id"]
    for kept in ("title", "description", "priority", "tags", "recurrence"):
        assert following[kept] == task[kept]
    # Its tags are filterable like any task's.
    listed = (await client.get(tasks_url("alice"), params={"tags": "work"})).json()
    assert {listed_task["id"] for listed_task in listed} == {task["id"], next_id}

    autumn = await create(
        client, "alice", due_at="2027-11-01T09:00:00-04:00", recurrence=WEEKLY_NEW_YORK
    )
    after = (await client.patch(complete_url("alice", autumn["id"]))).json()
    later = (await client.get(task_url("alice", after["next_occurrence_id"]))).json()
    assert later["due_at"] == "2027-11-08T14:00:00Z"  # 09:00 EST


async def test_monthly_on_the_31st_skips_short_months_and_minus_one_is_the_last_day(
    client: httpx.AsyncClient,
) -> None:
    dues = []
    task = await create(
        client,
        "alice",
        due_date="2027-01-31",
        recurrence={"frequency": "monthly", "month_day": 31},
    )
    for _ in range(3):
        task = await completed(client, "alice", task["id"])
        task = (await client.get(task_url("alice", task["next_occurrence_id"]))).json()
        dues.append(task["due_date"])
    assert dues == ["2027-03-31", "2027-05-31", "2027-07-31"]

    last = await create(
        client, "alice", due_date="2027-01-31", recurrence={"frequency": "monthly", "month_day": -1}
    )
    following = await completed(client, "alice", last["id"])
    february = (await client.get(task_url("alice", following["next_occurrence_id"]))).json()
    assert february["due_date"] == "2027-02-28"
    assert february["recurrence"]["rrule"] == "FREQ=MONTHLY;INTERVAL=1;BYMONTHDAY=-1"


async def test_yearly_on_february_29_waits_for_leap_years(client: httpx.AsyncClient) -> None:
    task = await create(client, "alice", due_date="2028-02-29", recurrence={"frequency": "yearly"})
    done = await completed(client, "alice", task["id"])
    following = (await client.get(task_url("alice", done["next_occurrence_id"]))).json()
    assert following["due_date"] == "2032-02-29"


async def test_a_repeated_or_undone_completion_makes_one_next_occurrence(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    task = await create(client, "alice", due_date="2027-01-04", recurrence={"frequency": "daily"})
    first = await completed(client, "alice", task["id"])
    again = await completed(client, "alice", task["id"])
    assert again == first
    reopened = await client.patch(complete_url("alice", task["id"]), json={"completed": False})
    assert reopened.json()["completed"] is False
    # Reopening keeps the next occurrence, and completing again finds it.
    assert reopened.json()["next_occurrence_id"] == first["next_occurrence_id"]
    toggled = (await client.patch(complete_url("alice", task["id"]))).json()
    assert toggled["completed"] is True
    assert toggled["next_occurrence_id"] == first["next_occurrence_id"]
    rows = await series_rows(engine, task["id"])
    assert [(occurrence, done) for _, occurrence, done in rows] == [(1, True), (2, False)]


async def test_a_completion_or_a_new_due_moves_a_repeating_task_one_version(
    client: httpx.AsyncClient,
) -> None:
    # The single statement that leaves a repeating task to be written knowing it matches
    # the task, but must not change it: one write, one version.
    task = await create(client, "alice", due_date="2027-01-04", recurrence={"frequency": "daily"})
    toggled = await client.patch(complete_url("alice", task["id"]))
    assert toggled.status_code == 200, toggled.text
    assert toggled.json()["completed"] is True
    assert toggled.json()["next_occurrence_id"] is not None
    assert toggled.headers["etag"] == f'"{task["id"]}.2"'
    moved = await client.patch(
        task_url("alice", task["id"]),
        json={"due_date": "2027-01-05", "title": "Moved"},
        headers={"If-Match": toggled.headers["etag"]},
    )
    assert moved.status_code == 200, moved.text
    assert (moved.json()["due_date"], moved.json()["title"]) == ("2027-01-05", "Moved")
    assert moved.headers["etag"] == f'"{task["id"]}.3"'
    assert moved.json()["updated_at"] > toggled.json()["updated_at"]


async def test_a_deleted_next_occurrence_is_named_until_a_new_one_is_made(
    client: httpx.AsyncClient,
) -> None:
    task = await create(client, "alice", due_date="2027-01-04", recurrence={"frequency": "daily"})
    gone = (await completed(client, "alice", task["id"]))["next_occurrence_id"]
    assert (await client.delete(task_url("alice", gone))).status_code == 204
    kept = (await client.get(task_url("alice", task["id"]))).json()
    assert kept["next_occurrence_id"] == gone
    assert (await client.get(task_url("alice", gone))).status_code == 404
    # Reopened and completed again, it makes its next occurrence anew.
    await client.patch(complete_url("alice", task["id"]), json={"completed": False})
    redone = await completed(client, "alice", task["id"])
    assert redone["next_occurrence_id"] not in (None, gone)
    following = (await client.get(task_url("alice", redone["next_occurrence_id"]))).json()
    assert following["due_date"] == "2027-01-05"


async def test_twenty_concurrent_completions_make_one_next_occurrence(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    task = await create(client, "alice", due_date="2027-01-04", recurrence={"frequency": "weekly"})
    responses = await asyncio.gather(
        *(
            client.patch(complete_url("alice", task["id"]), json={"completed": True})
            for _ in range(20)
        )
    )
    assert [response.status_code for response in responses] == [200] * 20
    next_ids = {response.json()["next_occurrence_id"] for response in responses}
    assert len(next_ids) == 1
    rows = await series_rows(engine, task["id"])
    assert [(occurrence, done) for _, occurrence, done in rows] == [(1, True), (2, False)]
    assert rows[1][0] in next_ids


async def test_the_series_ends_after_its_count_or_its_last_day(
    client: httpx.AsyncClient,
) -> None:
    task = await create(
        client,
        "alice",
        due_date="2027-01-04",
        recurrence={"frequency": "daily", "ends": {"count": 2}},
    )
    assert task["recurrence"]["ends"] == {"count": 2}
    second_id = (await completed(client, "alice", task["id"]))["next_occurrence_id"]
    assert (await completed(client, "alice", second_id))["next_occurrence_id"] is None

    until = await create(
        client,
        "alice",
        due_date="2027-01-04",
        recurrence={"frequency": "weekly", "ends": {"until": "2027-01-11"}},
    )
    assert until["recurrence"]["rrule"] == "FREQ=WEEKLY;INTERVAL=1;UNTIL=20270111"
    last_id = (await completed(client, "alice", until["id"]))["next_occurrence_id"]
    assert (await client.get(task_url("alice", last_id))).json()["due_date"] == "2027-01-11"
    assert (await completed(client, "alice", last_id))["next_occurrence_id"] is None


async def test_from_completion_counts_from_the_day_it_is_done(client: httpx.AsyncClient) -> None:
    task = await create(
        client,
        "alice",
        due_date="2020-01-01",
        recurrence={"frequency": "daily", "interval": 3, "from": "completion"},
    )
    today = datetime.now(UTC).date()
    done = await completed(client, "alice", task["id"])
    following = (await client.get(task_url("alice", done["next_occurrence_id"]))).json()
    assert following["due_date"] in {
        str(today + timedelta(days=3)),
        str(datetime.now(UTC).date() + timedelta(days=3)),  # across midnight
    }


async def test_ending_the_series_and_the_recurring_filter(client: httpx.AsyncClient) -> None:
    task = await create(client, "alice", due_date="2027-01-04", recurrence={"frequency": "daily"})
    plain = await create(client, "alice", due_date="2027-01-04")
    repeating = (await client.get(tasks_url("alice"), params={"recurring": "true"})).json()
    assert [listed["id"] for listed in repeating] == [task["id"]]
    others = (await client.get(tasks_url("alice"), params={"recurring": "false"})).json()
    assert [listed["id"] for listed in others] == [plain["id"]]

    ended = await client.patch(task_url("alice", task["id"]), json={"recurrence": None})
    assert ended.status_code == 200, ended.text
    assert ended.json()["recurrence"] is None
    assert (await completed(client, "alice", task["id"]))["next_occurrence_id"] is None


async def test_put_keeps_an_absent_rule_and_completes_with_it(client: httpx.AsyncClient) -> None:
    task = await create(client, "alice", due_date="2027-01-04", recurrence={"frequency": "daily"})
    replaced = await client.put(
        task_url("alice", task["id"]),
        json={"title": "Renamed", "due_date": "2027-01-10", "completed": True},
    )
    assert replaced.status_code == 200, replaced.text
    body = replaced.json()
    assert body["recurrence"]["frequency"] == "daily"
    following = (await client.get(task_url("alice", body["next_occurrence_id"]))).json()
    assert (following["title"], following["due_date"]) == ("Renamed", "2027-01-11")


async def test_a_rule_is_set_later_with_patch(client: httpx.AsyncClient) -> None:
    task = await create(client, "alice", due_at="2027-01-04T09:00:00Z")
    patched = await client.patch(
        task_url("alice", task["id"]), json={"recurrence": {"frequency": "daily"}}
    )
    assert patched.status_code == 200, patched.text
    rrule = "FREQ=DAILY;INTERVAL=1;BYHOUR=9;BYMINUTE=0;BYSECOND=0"
    assert patched.json()["recurrence"]["rrule"] == rrule
    assert patched.headers["etag"] != f'"{task["id"]}.1"'
    done = await completed(client, "alice", task["id"])
    following = (await client.get(task_url("alice", done["next_occurrence_id"]))).json()
    assert following["due_at"] == "2027-01-05T09:00:00Z"


async def test_after_a_spring_forward_gap_the_series_is_back_at_its_time(
    client: httpx.AsyncClient,
) -> None:
    # 02:30 does not exist in New York on 2027-03-14: that occurrence is due at 03:30 EDT,
    # and the one after it at 02:30 again.
    daily = {"frequency": "daily", "tz": "America/New_York"}
    task = await create(client, "alice", due_at="2027-03-13T02:30:00-05:00", recurrence=daily)
    dues = []
    for _ in range(3):
        done = await completed(client, "alice", task["id"])
        task = (await client.get(task_url("alice", done["next_occurrence_id"]))).json()
        assert task["recurrence"]["rrule"] == (
            "FREQ=DAILY;INTERVAL=1;BYHOUR=2;BYMINUTE=30;BYSECOND=0"
        )
        dues.append(task["due_at"])
    assert dues == ["2027-03-14T07:30:00Z", "2027-03-15T06:30:00Z", "2027-03-16T06:30:00Z"]


async def test_moving_the_due_moves_the_series_time_of_day(client: httpx.AsyncClient) -> None:
    daily = {"frequency": "daily", "tz": "Europe/Paris"}
    task = await create(client, "alice", due_at="2027-01-04T09:00:00+01:00", recurrence=daily)
    moved = await client.patch(
        task_url("alice", task["id"]), json={"due_at": "2027-01-04T10:15:00+01:00"}
    )
    assert moved.status_code == 200, moved.text
    rrule = "FREQ=DAILY;INTERVAL=1;BYHOUR=10;BYMINUTE=15;BYSECOND=0"
    assert moved.json()["recurrence"]["rrule"] == rrule
    done = await completed(client, "alice", task["id"])
    following = (await client.get(task_url("alice", done["next_occurrence_id"]))).json()
    assert following["due_at"] == "2027-01-05T09:15:00Z"
    assert following["recurrence"]["rrule"] == rrule


@pytest.mark.parametrize(
    ("body", "location"),
    [
        ({"recurrence": {"frequency": "daily"}}, ["body", "recurrence"]),
        (
            {"due_date": "2027-01-04", "recurrence": {"frequency": "hourly"}},
            ["body", "recurrence", "frequency"],
        ),
        (
            {"due_date": "2027-01-04", "recurrence": {"frequency": "daily", "interval": 0}},
            ["body", "recurrence", "interval"],
        ),
        (
            {
                "due_date": "2027-01-04",
                "recurrence": {"frequency": "monthly", "days_of_week": ["mo"]},
            },
            ["body", "recurrence"],
        ),
        (
            {"due_date": "2027-01-04", "recurrence": {"frequency": "monthly", "month_day": 0}},
            ["body", "recurrence"],
        ),
        (
            {"due_date": "2027-02-04", "recurrence": {"frequency": "yearly", "month_day": 30}},
            ["body", "recurrence", "month_day"],
        ),
        (
            {"due_date": "2027-01-04", "recurrence": {"frequency": "daily", "tz": "Mars/Base"}},
            ["body", "recurrence", "tz"],
        ),
        (
            {"due_date": "2027-01-04", "recurrence": {"frequency": "daily", "ends": {}}},
            ["body", "recurrence", "ends"],
        ),
        # In the rule's zone the due falls past year 9999 (or before year 1).
        (
            {
                "due_at": "9999-12-31T23:00:00Z",
                "recurrence": {"frequency": "daily", "tz": "Asia/Tokyo"},
            },
            ["body", "recurrence", "tz"],
        ),
        (
            {
                "due_at": "0001-01-01T00:00:00Z",
                "recurrence": {"frequency": "daily", "tz": "America/New_York"},
            },
            ["body", "recurrence", "tz"],
        ),
    ],
)
async def test_a_rule_that_cannot_work_is_refused_with_where(
    client: httpx.AsyncClient, engine: AsyncEngine, body: dict[str, Any], location: list[Any]
) -> None:
    response = await client.post(tasks_url("alice"), json={"title": "x", **body})
    assert location in [loc[: len(location)] for loc in error_locations(response)]
    async with engine.connect() as connection:
        assert (await connection.execute(text("SELECT count(*) FROM tasks"))).scalar() == 0


async def test_a_repeating_task_keeps_a_due(client: httpx.AsyncClient) -> None:
    task = await create(client, "alice", due_date="2027-01-04", recurrence={"frequency": "daily"})
    for body in ({"due_date": None}, {"due_at": None, "due_date": None}):
        response = await client.patch(task_url("alice", task["id"]), json=body)
        assert error_locations(response) == [["body", "recurrence"]]
    assert (await client.get(task_url("alice", task["id"]))).json()["due_date"] == "2027-01-04"
    # Another kind of due is fine: the rule is spelled again for it.
    timed = await client.patch(
        task_url("alice", task["id"]), json={"due_at": "2027-01-04T09:00:00+01:00"}
    )
    assert timed.status_code == 200, timed.text
    assert (timed.json()["due_date"], timed.json()["due_at"]) == (None, "2027-01-04T08:00:00Z")


async def test_complete_all_makes_each_next_occurrence_once(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    daily = await create(client, "alice", due_date="2027-01-04", recurrence={"frequency": "daily"})
    weekly = await create(
        client, "alice", due_date="2027-01-04", recurrence={"frequency": "weekly"}
    )
    await create(client, "alice", title="plain")
    await create(client, "bob", due_date="2027-01-04", recurrence={"frequency": "daily"})
    response = await client.post(f"{tasks_url('alice')}/complete-all", json={"completed": True})
    assert response.json() == {"updated": 3}
    pending = (await client.get(tasks_url("alice"), params={"status": "pending"})).json()
    assert sorted(task["due_date"] for task in pending) == ["2027-01-05", "2027-01-11"]
    assert {task["series_id"] for task in pending} == {daily["id"], weekly["id"]}
    bobs = (await client.get(tasks_url("bob"))).json()
    assert [task["completed"] for task in bobs] == [False]


async def test_complete_all_pages_through_repeating_tasks_and_leaves_what_it_made_open(
    client: httpx.AsyncClient, engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Pages of two: five repeating tasks take three pages, each read with the previous
    # page's writes; the occurrences those make come after them and are not completed.
    monkeypatch.setattr(task_queries, "_COMPLETE_ALL_PAGE", 2)
    series = [
        (
            await create(
                client, "alice", due_date=f"2027-01-0{day}", recurrence={"frequency": "daily"}
            )
        )
        for day in range(1, 6)
    ]
    await create(client, "alice", title="plain")
    response = await client.post(f"{tasks_url('alice')}/complete-all", json={"completed": True})
    assert response.json() == {"updated": 6}
    for task in series:
        rows = await series_rows(engine, task["id"])
        assert [(occurrence, done) for _, occurrence, done in rows] == [(1, True), (2, False)]
    pending = (await client.get(tasks_url("alice"), params={"status": "pending"})).json()
    assert sorted(task["due_date"] for task in pending) == [
        f"2027-01-0{day}" for day in range(2, 7)
    ]


async def test_another_users_repeating_task_is_out_of_reach(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    task = await create(client, "alice", due_date="2027-01-04", recurrence={"frequency": "daily"})
    for response in (
        await client.patch(complete_url("bob", task["id"])),
        await client.patch(complete_url("bob", task["id"]), json={"completed": True}),
        await client.patch(task_url("bob", task["id"]), json={"recurrence": None}),
        await client.put(task_url("bob", task["id"]), json={"title": "mine", "completed": True}),
    ):
        assert response.status_code == 404
    assert (await series_rows(engine, task["id"])) == [(task["id"], 1, False)]


async def test_a_stale_etag_completes_nothing(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    task = await create(client, "alice", due_date="2027-01-04", recurrence={"frequency": "daily"})
    await client.patch(task_url("alice", task["id"]), json={"title": "moved on"})
    stale = await client.patch(
        complete_url("alice", task["id"]), headers={"If-Match": task["etag"]}
    )
    assert stale.status_code == 412
    assert (await series_rows(engine, task["id"])) == [(task["id"], 1, False)]
    current = (await client.get(task_url("alice", task["id"]))).json()
    fresh = await client.patch(
        complete_url("alice", task["id"]), headers={"If-Match": current["etag"]}
    )
    assert fresh.status_code == 200
    assert fresh.json()["next_occurrence_id"] is not None


async def test_a_keyed_create_keeps_its_rule(client: httpx.AsyncClient) -> None:
    body = {"title": "Water plants", "due_date": "2027-01-04", "recurrence": {"frequency": "daily"}}
    headers = {"Idempotency-Key": "plants-1"}
    first = await client.post(tasks_url("alice"), json=body, headers=headers)
    again = await client.post(tasks_url("alice"), json=body, headers=headers)
    assert first.status_code == again.status_code == 201
    assert again.headers["idempotent-replayed"] == "true"
    assert again.json() == first.json()
    assert first.json()["recurrence"]["rrule"] == "FREQ=DAILY;INTERVAL=1"
