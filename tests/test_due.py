"""Due dates: a day (all day, no zone) or an instant; filters and counts in the user's zone."""

from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest

from tests.helpers import assert_problem, create, error_locations, task_url, tasks_url

# Local dates in these two zones are 26 hours apart: whatever the time, the first's today is
# at least a day after the second's.
EARLIEST, LATEST = ZoneInfo("Pacific/Kiritimati"), ZoneInfo("Etc/GMT+12")


async def test_a_due_date_is_kept_as_sent_and_a_due_time_comes_back_in_utc(
    client: httpx.AsyncClient,
) -> None:
    day = await create(client, "alice", title="Rent", due_date="2026-12-03")
    timed = await create(client, "alice", title="Call", due_at="2026-12-03T09:00:00+05:00")
    plain = await create(client, "alice", title="Plain")

    assert (day["due_date"], day["due_at"]) == ("2026-12-03", None)
    assert (timed["due_date"], timed["due_at"]) == (None, "2026-12-03T04:00:00Z")
    assert (plain["due_date"], plain["due_at"]) == (None, None)
    read = (await client.get(task_url("alice", timed["id"]))).json()
    assert read["due_at"] == "2026-12-03T04:00:00Z"


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("due_date", "2026-02-30"),  # no such day
        ("due_date", "10000-01-01"),
        ("due_date", "2026-12-03T00:00:00"),
        ("due_date", 1764720000),
        ("due_at", "2026-12-03T09:00:00"),  # no offset
        ("due_at", "0001-01-01T00:00:00+05:00"),  # before year 1 in UTC
        ("due_at", "9999-12-31T23:00:00-05:00"),  # after year 9999 in UTC
        ("due_at", 1764720000),
        ("due_at", "1764720000"),  # a Unix time, which pydantic alone would take
        ("due_at", "0.5"),
    ],
)
async def test_impossible_or_ambiguous_dues_are_422_never_500(
    client: httpx.AsyncClient, field: str, value: Any
) -> None:
    response = await client.post(tasks_url("alice"), json={"title": "T", field: value})
    assert error_locations(response) == [["body", field]]


async def test_a_day_and_a_time_together_are_422(client: httpx.AsyncClient) -> None:
    both = {"due_date": "2026-12-03", "due_at": "2026-12-03T09:00:00Z"}
    task = await create(client, "alice")
    for method, url, body in [
        ("POST", tasks_url("alice"), {"title": "T", **both}),
        ("PUT", task_url("alice", task["id"]), {"title": "T", **both}),
        ("PATCH", task_url("alice", task["id"]), both),
    ]:
        response = await client.request(method, url, json=body)
        assert assert_problem(response, 422)["errors"][0]["type"] == "due_conflict"


async def test_setting_one_due_clears_the_other_and_put_keeps_them_when_absent(
    client: httpx.AsyncClient,
) -> None:
    task = await create(client, "alice", due_date="2026-12-03")
    timed = (
        await client.patch(task_url("alice", task["id"]), json={"due_at": "2026-12-04T10:00:00Z"})
    ).json()
    assert (timed["due_date"], timed["due_at"]) == (None, "2026-12-04T10:00:00Z")
    assert timed["etag"] != task["etag"]

    # An older client's PUT, without the fields, leaves them.
    kept = (await client.put(task_url("alice", task["id"]), json={"title": "Renamed"})).json()
    assert kept["due_at"] == "2026-12-04T10:00:00Z"

    same = await client.patch(
        task_url("alice", task["id"]), json={"due_at": "2026-12-04T15:30:00+05:30"}
    )
    assert same.json()["etag"] == kept["etag"]  # the same instant: nothing changed

    cleared = (
        await client.put(task_url("alice", task["id"]), json={"title": "R", "due_at": None})
    ).json()
    assert (cleared["due_date"], cleared["due_at"]) == (None, None)


async def _listed(client: httpx.AsyncClient, **params: str) -> list[str]:
    response = await client.get(tasks_url("alice"), params={"sort": "created_at", **params})
    assert response.status_code == 200, response.text
    assert response.headers["x-total-count"] == str(len(response.json()))
    return [task["title"] for task in response.json()]


async def test_date_ranges_follow_the_zone_around_midnight(client: httpx.AsyncClient) -> None:
    # New York, 2026-03-07 23:30 and 2026-03-08 00:30 (EST, UTC-5).
    await create(client, "alice", title="late", due_at="2026-03-08T04:30:00Z")
    await create(client, "alice", title="early", due_at="2026-03-08T05:30:00Z")
    await create(client, "alice", title="all day", due_date="2026-03-08")
    await create(client, "alice", title="none")

    new_york = {"tz": "America/New_York"}
    assert await _listed(client, due_from="2026-03-08", **new_york) == ["early", "all day"]
    assert await _listed(client, due_to="2026-03-07", **new_york) == ["late"]
    # In UTC both instants fall on the 8th.
    assert await _listed(client, due_from="2026-03-08", due_to="2026-03-08") == [
        "late",
        "early",
        "all day",
    ]
    assert await _listed(client, has_due="false") == ["none"]
    assert await _listed(client, has_due="true") == ["late", "early", "all day"]


async def test_date_ranges_span_the_whole_day_across_a_dst_change(
    client: httpx.AsyncClient,
) -> None:
    # New York falls back on 2026-11-01: that day runs 04:00Z to 05:00Z the next day (25 h).
    await create(client, "alice", title="last hour", due_at="2026-11-02T04:30:00Z")
    await create(client, "alice", title="next day", due_at="2026-11-02T05:00:00Z")
    # ...and springs forward on 2026-03-08, a 23-hour day: 05:00Z to 04:00Z.
    await create(client, "alice", title="spring last", due_at="2026-03-09T03:59:00Z")
    await create(client, "alice", title="spring next", due_at="2026-03-09T04:00:00Z")

    new_york = {"tz": "America/New_York"}
    assert await _listed(client, due_from="2026-11-01", due_to="2026-11-01", **new_york) == [
        "last hour"
    ]
    assert await _listed(client, due_from="2026-11-02", due_to="2026-11-02", **new_york) == [
        "next day"
    ]
    assert await _listed(client, due_from="2026-03-08", due_to="2026-03-08", **new_york) == [
        "spring last"
    ]


async def test_overdue_depends_on_where_the_user_is(client: httpx.AsyncClient) -> None:
    now = datetime.now(UTC)
    # Today where the day is latest: still today there, long past where it began earliest.
    day = now.astimezone(LATEST).date()
    await create(client, "alice", title="all day", due_date=day.isoformat())
    await create(
        client, "alice", title="an hour ago", due_at=(now - timedelta(hours=1)).isoformat()
    )
    await create(client, "alice", title="in an hour", due_at=(now + timedelta(hours=1)).isoformat())
    done = await create(client, "alice", title="done late", due_date="2020-01-01")
    await client.patch(f"{task_url('alice', done['id'])}/complete")
    await create(client, "alice", title="none")

    assert await _listed(client, overdue="true", tz=str(LATEST)) == ["an hour ago"]
    assert await _listed(client, overdue="true", tz=str(EARLIEST)) == ["all day", "an hour ago"]
    assert await _listed(client, overdue="false", tz=str(LATEST)) == [
        "all day",
        "in an hour",
        "done late",
        "none",
    ]

    async def stats(zone: ZoneInfo) -> dict[str, int]:
        response = await client.get(f"{tasks_url('alice')}/stats", params={"tz": str(zone)})
        assert response.status_code == 200, response.text
        counts: dict[str, int] = response.json()
        return counts

    latest, earliest = await stats(LATEST), await stats(EARLIEST)
    assert (latest["overdue"], earliest["overdue"]) == (1, 2)
    # Today in the latest zone is the all-day task's day; it is yesterday in the earliest.
    assert latest["due_today"] >= 1
    assert earliest["due_today"] <= latest["due_today"]
    assert latest["total"] == 5
    assert latest["completed"] == 1


async def test_due_today_counts_the_users_day(client: httpx.AsyncClient) -> None:
    today = datetime.now(UTC).astimezone(ZoneInfo("Asia/Tokyo")).date()
    await create(client, "alice", title="today", due_date=today.isoformat())
    await create(
        client, "alice", title="tomorrow", due_date=(today + timedelta(days=1)).isoformat()
    )
    counts = (await client.get(f"{tasks_url('alice')}/stats", params={"tz": "Asia/Tokyo"})).json()
    assert counts["due_today"] == 1
    assert counts["overdue"] == 0


@pytest.mark.parametrize(
    "zone",
    [
        "Mars/Olympus",
        "utc",
        "../etc/passwd",
        "/etc/localtime",
        "",
        "localtime",
        "posix/Europe/Paris",
    ],
)
async def test_an_unknown_zone_is_422(client: httpx.AsyncClient, zone: str) -> None:
    for path in (tasks_url("alice"), f"{tasks_url('alice')}/stats"):
        response = await client.get(path, params={"tz": zone})
        assert error_locations(response) == [["query", "tz"]]


async def test_query_dates_must_be_dates(client: httpx.AsyncClient) -> None:
    for value in ["0", "2026-02-30", "2026-12-03T00:00:00", "tomorrow"]:
        response = await client.get(tasks_url("alice"), params={"due_from": value})
        assert error_locations(response) == [["query", "due_from"]]


def test_the_zones_used_here_are_a_day_apart() -> None:
    now = datetime.now(UTC)
    assert now.astimezone(EARLIEST).date() - now.astimezone(LATEST).date() >= timedelta(days=1)


async def test_dues_at_the_ends_of_the_calendar_sort_and_filter_in_any_zone(
    client: httpx.AsyncClient,
) -> None:
    # The last is on 10000-01-01 in Tokyo, the first on 0000-12-31 in New York: past Python's
    # dates.
    await create(client, "alice", title="Last", due_at="9999-12-31T23:00:00Z")
    await create(client, "alice", title="Before it", due_date="9999-12-30")
    await create(client, "alice", title="First", due_at="0001-01-01T00:00:00Z")
    tokyo, new_york = {"tz": "Asia/Tokyo"}, {"tz": "America/New_York"}

    assert await _listed(client, sort="due", **tokyo) == ["First", "Before it", "Last"]
    assert await _listed(client, sort="due", **new_york) == ["First", "Before it", "Last"]
    assert await _listed(client, overdue="true", **new_york) == ["First"]
    assert await _listed(client, due_from="9999-12-31", **tokyo) == ["Last"]
    # Days whose bounds fall past the calendar's ends in the zone.
    every_due = ["Last", "Before it", "First"]
    assert await _listed(client, due_from="0001-01-01", **tokyo) == every_due
    assert await _listed(client, due_to="9999-12-31", **new_york) == every_due
    assert await _listed(client, due_to="9999-12-30", **new_york) == ["Before it", "First"]
    stats = await client.get(f"{tasks_url('alice')}/stats", params=tokyo)
    assert stats.status_code == 200, stats.text


async def test_sorting_by_due_goes_by_the_users_day(client: httpx.AsyncClient) -> None:
    await create(client, "alice", title="A", due_date="2026-03-08")
    await create(client, "alice", title="B", due_at="2026-03-08T04:30:00Z")  # NY: 7th, 23:30
    await create(client, "alice", title="C", due_at="2026-03-08T05:30:00Z")  # NY: 8th, 00:30
    await create(client, "alice", title="D")
    await create(client, "alice", title="E", due_date="2026-03-07")
    await create(client, "alice", title="F", due_at="2026-03-08T02:00:00Z")  # NY: 7th, 21:00

    new_york = {"tz": "America/New_York"}
    # Day by day; all-day tasks first within a day; no due last in both directions.
    assert await _listed(client, sort="due", **new_york) == ["E", "F", "B", "A", "C", "D"]
    assert await _listed(client, sort="due") == ["E", "A", "F", "B", "C", "D"]
    assert await _listed(client, sort="-due", **new_york) == ["A", "C", "E", "B", "F", "D"]
    # Combines with the filters; the page holds what the total counts.
    assert await _listed(client, sort="due", due_to="2026-03-07", **new_york) == ["E", "F", "B"]
