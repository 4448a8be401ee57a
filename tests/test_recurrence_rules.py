"""The recurrence rules (todo_api.db.recurrence): pure functions, no database."""

from dataclasses import replace
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from todo_api.db.recurrence import (
    FREQUENCIES,
    MAX_COUNT,
    MAX_INTERVAL,
    PARSED_RULES_KEPT,
    WEEKDAYS,
    Recurrence,
    RecurrenceError,
    check,
    next_due,
    parse_rrule,
    public,
    rrule_text,
)

NEW_YORK = ZoneInfo("America/New_York")
# Irrelevant to rules that count from the due.
SOMETIME = datetime(2000, 1, 1, tzinfo=UTC)


def series(rule: Recurrence, due: date | datetime, length: int) -> list[date | datetime]:
    """The dues of the `length` occurrences after `due`, each completed when due."""
    dues: list[date | datetime] = []
    for occurrence in range(1, length + 1):
        following = next_due(rule, due, occurrence=occurrence, completed_at=SOMETIME)
        assert following is not None
        dues.append(following)
        due = following
    return dues


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


@pytest.mark.parametrize(
    ("due", "expected"),
    [
        # 2027: DST starts on Sunday March 14 ...
        (utc(2027, 3, 1, 14), [utc(2027, 3, 8, 14), utc(2027, 3, 15, 13), utc(2027, 3, 22, 13)]),
        # ... and ends on Sunday November 7.
        (
            utc(2027, 10, 25, 13),
            [utc(2027, 11, 1, 13), utc(2027, 11, 8, 14), utc(2027, 11, 15, 14)],
        ),
    ],
)
def test_weekly_keeps_local_time_across_dst(due: datetime, expected: list[datetime]) -> None:
    rule = Recurrence("weekly", tz="America/New_York")
    dues = series(rule, due, 3)
    assert dues == expected
    assert all(isinstance(d, datetime) and d.tzinfo is UTC for d in dues)
    assert {d.astimezone(NEW_YORK).hour for d in dues if isinstance(d, datetime)} == {9}


def test_monthly_31_skips_short_months() -> None:
    rule = Recurrence("monthly", month_day=31)
    assert series(rule, date(2027, 1, 31), 7) == [
        date(2027, 3, 31),
        date(2027, 5, 31),
        date(2027, 7, 31),
        date(2027, 8, 31),
        date(2027, 10, 31),
        date(2027, 12, 31),
        date(2028, 1, 31),
    ]


def test_monthly_last_day() -> None:
    rule = Recurrence("monthly", month_day=-1)
    days = [28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31]
    expected = [date(2027, month, day) for month, day in enumerate(days, start=2)]
    expected += [date(2028, 1, 31), date(2028, 2, 29)]
    assert series(rule, date(2027, 1, 31), 13) == expected


@pytest.mark.parametrize("month_day", [None, 29])
def test_yearly_from_february_29(month_day: int | None) -> None:
    rule = Recurrence("yearly", month_day=month_day)
    assert series(rule, date(2024, 2, 29), 2) == [date(2028, 2, 29), date(2032, 2, 29)]


def test_yearly_month_is_the_local_month_of_the_due() -> None:
    # 02:00 UTC on July 1 is still June 30 in New York.
    rule = Recurrence("yearly", month_day=1, tz="America/New_York")
    due = utc(2027, 7, 1, 2)
    assert rrule_text(rule, due) == (
        "FREQ=YEARLY;INTERVAL=1;BYMONTH=6;BYMONTHDAY=1;BYHOUR=22;BYMINUTE=0;BYSECOND=0"
    )
    assert next_due(rule, due, occurrence=1, completed_at=due) == utc(2028, 6, 2, 2)


def test_count_ends_the_series() -> None:
    rule = Recurrence("daily", count=3)
    due = date(2027, 5, 1)
    found = [next_due(rule, due, occurrence=n, completed_at=SOMETIME) for n in (1, 2, 3)]
    assert found == [date(2027, 5, 2), date(2027, 5, 2), None]


def test_until_is_inclusive() -> None:
    rule = Recurrence("daily", until=date(2027, 5, 2))
    assert series(rule, date(2027, 5, 1), 1) == [date(2027, 5, 2)]
    assert next_due(rule, date(2027, 5, 2), occurrence=2, completed_at=SOMETIME) is None


def test_until_compares_the_local_date() -> None:
    # 23:30 in Los Angeles is already the next day in UTC.
    rule = Recurrence("daily", until=date(2027, 5, 2), tz="America/Los_Angeles")
    first = next_due(rule, utc(2027, 5, 2, 6, 30), occurrence=1, completed_at=SOMETIME)
    assert first == utc(2027, 5, 3, 6, 30)
    assert next_due(rule, first, occurrence=2, completed_at=SOMETIME) is None


@pytest.mark.parametrize(
    ("tz", "completed_at", "expected"),
    [
        ("UTC", utc(2027, 12, 7, 0, 1), date(2027, 12, 10)),
        ("UTC", utc(2027, 12, 7, 23, 59), date(2027, 12, 10)),
        # Already December 8 in Auckland.
        ("Pacific/Auckland", utc(2027, 12, 7, 12), date(2027, 12, 11)),
    ],
)
def test_daily_from_completion(tz: str, completed_at: datetime, expected: date) -> None:
    rule = Recurrence("daily", interval=3, from_completion=True, tz=tz)
    assert next_due(rule, date(2027, 12, 1), occurrence=1, completed_at=completed_at) == expected


@pytest.mark.parametrize(
    ("completed_at", "expected"),
    [
        (utc(2027, 12, 7, 12), date(2027, 12, 8)),  # a Tuesday: that week's Wednesday
        (utc(2027, 12, 8, 12), date(2027, 12, 13)),  # a Wednesday: the next Monday
    ],
)
def test_weekly_days_from_completion(completed_at: datetime, expected: date) -> None:
    rule = Recurrence("weekly", days_of_week=("mo", "we"), from_completion=True)
    assert next_due(rule, date(2027, 11, 1), occurrence=1, completed_at=completed_at) == expected


@pytest.mark.parametrize(
    "completed_at",
    [utc(2027, 12, 7, 12), utc(2027, 12, 8, 3)],  # both on December 7 in New York
)
def test_from_completion_keeps_the_local_time_of_the_due(completed_at: datetime) -> None:
    rule = Recurrence("daily", interval=3, from_completion=True, tz="America/New_York")
    due = utc(2027, 12, 1, 14)  # 09:00 EST
    assert next_due(rule, due, occurrence=1, completed_at=completed_at) == utc(2027, 12, 10, 14)


def test_weekly_interval_2_on_days() -> None:
    rule = Recurrence("weekly", interval=2, days_of_week=("mo", "we"))
    # From Wednesday January 6: that week is done, the next is skipped.
    assert series(rule, date(2027, 1, 6), 3) == [
        date(2027, 1, 18),
        date(2027, 1, 20),
        date(2027, 2, 1),
    ]


def test_spring_forward_gap_resolves_after_the_gap() -> None:
    rule = Recurrence("daily", tz="America/New_York")
    due = utc(2027, 3, 13, 7, 30)  # 02:30 EST; March 14 has no 02:30
    assert next_due(rule, due, occurrence=1, completed_at=due) == utc(2027, 3, 14, 7, 30)


def test_after_a_gap_the_series_is_back_at_its_time() -> None:
    # Each occurrence is computed from the rule as stored, as completing one does.
    text = rrule_text(Recurrence("daily", tz="America/New_York"), utc(2027, 3, 13, 7, 30))
    assert text == "FREQ=DAILY;INTERVAL=1;BYHOUR=2;BYMINUTE=30;BYSECOND=0"
    due: date | datetime = utc(2027, 3, 13, 7, 30)
    dues = []
    for occurrence in range(1, 4):
        rule = parse_rrule(text, tz="America/New_York", from_completion=False)
        found = next_due(rule, due, occurrence=occurrence, completed_at=SOMETIME)
        assert found is not None
        text, due = rrule_text(rule, found), found
        dues.append(found)
    # 03:30 EDT on the day without 02:30, then 02:30 EDT again.
    assert dues == [utc(2027, 3, 14, 7, 30), utc(2027, 3, 15, 6, 30), utc(2027, 3, 16, 6, 30)]
    assert text == "FREQ=DAILY;INTERVAL=1;BYHOUR=2;BYMINUTE=30;BYSECOND=0"


def test_from_completion_after_a_gap_is_back_at_its_time() -> None:
    rule = Recurrence("daily", from_completion=True, tz="America/New_York", at=time(2, 30))
    completed_at = utc(2027, 3, 14, 12)
    found = next_due(rule, utc(2027, 3, 14, 7, 30), occurrence=1, completed_at=completed_at)
    assert found == utc(2027, 3, 15, 6, 30)


def test_days_of_week_are_stored_in_order() -> None:
    assert Recurrence("weekly", days_of_week=("we", "mo", "we")).days_of_week == ("mo", "we")


@pytest.mark.parametrize(
    ("rule", "due", "text"),
    [
        (Recurrence("daily"), date(2027, 1, 1), "FREQ=DAILY;INTERVAL=1"),
        (
            Recurrence("weekly", interval=2, days_of_week=("mo", "we"), count=10),
            date(2027, 1, 6),
            "FREQ=WEEKLY;INTERVAL=2;BYDAY=MO,WE;COUNT=10",
        ),
        (
            Recurrence("monthly", month_day=-1, until=date(2027, 1, 31), tz="Europe/Paris"),
            utc(2026, 5, 31, 12),
            "FREQ=MONTHLY;INTERVAL=1;BYMONTHDAY=-1;BYHOUR=14;BYMINUTE=0;BYSECOND=0;UNTIL=20270131",
        ),
        (
            Recurrence("yearly", month_day=-1, from_completion=True),
            date(2027, 2, 28),
            "FREQ=YEARLY;INTERVAL=1;BYMONTH=2;BYMONTHDAY=-1",
        ),
        (Recurrence("yearly", interval=3), date(2027, 6, 15), "FREQ=YEARLY;INTERVAL=3"),
        (
            Recurrence("weekly", days_of_week=("mo",), count=3, tz="America/New_York"),
            datetime(2027, 1, 4, 14, 5, 9, 250_000, tzinfo=UTC),
            "FREQ=WEEKLY;INTERVAL=1;BYDAY=MO;BYHOUR=9;BYMINUTE=5;BYSECOND=9;COUNT=3",
        ),
    ],
)
def test_text_round_trip(rule: Recurrence, due: date | datetime, text: str) -> None:
    assert rrule_text(rule, due) == text
    parsed = parse_rrule(text, tz=rule.tz, from_completion=rule.from_completion)
    assert parsed == replace(rule, at=_time_of_day(rule, due))


def _time_of_day(rule: Recurrence, due: date | datetime) -> time | None:
    """The time of day a rule for `due` is stored with."""
    if not isinstance(due, datetime):
        return None
    return due.astimezone(ZoneInfo(rule.tz)).time().replace(microsecond=0)


def test_a_stored_time_of_day_is_kept() -> None:
    rule = Recurrence("daily", tz="Europe/Paris", at=time(9, 0))
    assert rrule_text(rule, utc(2027, 3, 29, 8)) == (
        "FREQ=DAILY;INTERVAL=1;BYHOUR=9;BYMINUTE=0;BYSECOND=0"
    )


@pytest.mark.parametrize(
    "text",
    [
        "",
        "FREQ=DAILY",
        "FREQ=DAILY;INTERVAL=1;",
        "INTERVAL=1;FREQ=DAILY",
        "FREQ=daily;INTERVAL=1",
        "FREQ=HOURLY;INTERVAL=1",
        "FREQ=DAILY;INTERVAL=01",
        "FREQ=DAILY;INTERVAL=0",
        "FREQ=DAILY;INTERVAL=x",
        "FREQ=DAILY;INTERVAL=1;WKST=MO",
        "FREQ=DAILY;INTERVAL=1;INTERVAL=1",
        "FREQ=WEEKLY;INTERVAL=1;BYDAY=WE,MO",
        "FREQ=WEEKLY;INTERVAL=1;BYDAY=1MO",
        "FREQ=MONTHLY;INTERVAL=1;BYMONTH=2;BYMONTHDAY=3",
        "FREQ=YEARLY;INTERVAL=1;BYMONTHDAY=3",
        "FREQ=YEARLY;INTERVAL=1;BYMONTH=13;BYMONTHDAY=3",
        "FREQ=YEARLY;INTERVAL=1;BYMONTH=2;BYMONTHDAY=30",
        "FREQ=DAILY;INTERVAL=1;COUNT=2;UNTIL=20270101",
        "FREQ=DAILY;INTERVAL=1;UNTIL=2027-01-01",
        "FREQ=DAILY;INTERVAL=1;UNTIL=20270101T000000Z",
        "FREQ=DAILY;INTERVAL=1;BYHOUR=9;BYMINUTE=0",
        "FREQ=DAILY;INTERVAL=1;BYHOUR=24;BYMINUTE=0;BYSECOND=0",
        "FREQ=DAILY;INTERVAL=1;BYHOUR=09;BYMINUTE=0;BYSECOND=0",
        "FREQ=DAILY;INTERVAL=1;BYMINUTE=0;BYHOUR=9;BYSECOND=0",
        "FREQ=DAILY;INTERVAL=1;BYHOUR=9;BYMINUTE=0;BYSECOND=60",
    ],
)
def test_parse_rejects_other_texts(text: str) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - any ValueError, RecurrenceError included
        parse_rrule(text, tz="UTC", from_completion=False)


FEB = date(2027, 2, 10)


@pytest.mark.parametrize(
    ("rule", "due", "field"),
    [
        (Recurrence("hourly"), FEB, "frequency"),
        (Recurrence("daily", interval=0), FEB, "interval"),
        (Recurrence("daily", interval=MAX_INTERVAL + 1), FEB, "interval"),
        (Recurrence("daily", days_of_week=("mo",)), FEB, "days_of_week"),
        (Recurrence("monthly", days_of_week=("mo",)), FEB, "days_of_week"),
        (Recurrence("weekly", days_of_week=("xx",)), FEB, "days_of_week"),
        (Recurrence("daily", month_day=1), FEB, "month_day"),
        (Recurrence("weekly", month_day=1), FEB, "month_day"),
        (Recurrence("monthly", month_day=0), FEB, "month_day"),
        (Recurrence("monthly", month_day=32), FEB, "month_day"),
        (Recurrence("monthly", month_day=-2), FEB, "month_day"),
        (Recurrence("daily", count=0), FEB, "ends"),
        (Recurrence("daily", count=MAX_COUNT + 1), FEB, "ends"),
        (Recurrence("daily", count=2, until=date(2028, 1, 1)), FEB, "ends"),
        (Recurrence("daily", tz="Mars/Olympus_Mons"), FEB, "tz"),
        (Recurrence("daily", tz=""), FEB, "tz"),
        (Recurrence("yearly", month_day=30), FEB, "month_day"),
        (Recurrence("yearly", month_day=31), date(2027, 4, 1), "month_day"),
        # 03:00 UTC on May 1 is April 30 in New York.
        (
            Recurrence("yearly", month_day=31, tz="America/New_York"),
            utc(2027, 5, 1, 3),
            "month_day",
        ),
        (Recurrence("monthly", interval=12, month_day=31), FEB, "month_day"),
        (Recurrence("monthly", interval=12, month_day=30), FEB, "month_day"),
        # From April every 24 months: April only.
        (Recurrence("monthly", interval=24, month_day=31), date(2027, 4, 1), "month_day"),
        # Beyond the brief's list: grids that can never reach a day they need.
        (Recurrence("yearly", interval=4, month_day=29), FEB, "month_day"),
        (Recurrence("yearly", interval=4, month_day=29, from_completion=True), FEB, "month_day"),
        (
            Recurrence("monthly", interval=12, month_day=31, from_completion=True),
            date(2027, 1, 31),
            "month_day",
        ),
    ],
)
def test_check_rejects(rule: Recurrence, due: date | datetime, field: str) -> None:
    with pytest.raises(RecurrenceError) as raised:
        check(rule, due)
    assert raised.value.field == field


@pytest.mark.parametrize(
    ("rule", "due"),
    [
        (Recurrence("yearly", month_day=29), FEB),
        (Recurrence("yearly", month_day=29, from_completion=True), FEB),
        (Recurrence("yearly", interval=4, month_day=29), date(2028, 2, 1)),
        (Recurrence("yearly"), date(2024, 2, 29)),
        (Recurrence("monthly", interval=12, month_day=31), date(2027, 1, 31)),
        (Recurrence("monthly", interval=6, month_day=31), date(2027, 4, 1)),  # April, October
        (Recurrence("monthly", interval=12, month_day=-1, from_completion=True), FEB),
        (Recurrence("weekly", days_of_week=("mo", "su"), count=MAX_COUNT), FEB),
    ],
)
def test_check_accepts(rule: Recurrence, due: date | datetime) -> None:
    check(rule, due)


def test_naive_datetime_due_is_refused() -> None:
    with pytest.raises(ValueError, match="aware"):
        next_due(Recurrence("daily"), datetime(2027, 1, 1), occurrence=1, completed_at=SOMETIME)


def test_public() -> None:
    rule = Recurrence("weekly", days_of_week=("fr",), until=date(2027, 3, 1), tz="Europe/Oslo")
    text = rrule_text(rule, date(2027, 1, 1))
    assert public(rule, text) == {
        "frequency": "weekly",
        "interval": 1,
        "days_of_week": ["fr"],
        "month_day": None,
        "ends": {"until": "2027-03-01"},
        "from": "due",
        "tz": "Europe/Oslo",
        "rrule": "FREQ=WEEKLY;INTERVAL=1;BYDAY=FR;UNTIL=20270301",
    }
    monthly = Recurrence("monthly", month_day=-1, count=4, from_completion=True)
    assert public(monthly, "FREQ=MONTHLY;INTERVAL=1;BYMONTHDAY=-1;COUNT=4")["ends"] == {"count": 4}
    assert public(monthly, "")["from"] == "completion"
    assert public(Recurrence("daily"), "")["ends"] is None


ZONES = ("UTC", "America/New_York", "Europe/London", "Australia/Lord_Howe", "Pacific/Chatham")
EARLIEST, LATEST = datetime(2000, 1, 1), datetime(2100, 12, 31)


@st.composite
def rules_and_dues(draw: st.DrawFn) -> tuple[Recurrence, date | datetime]:
    frequency = draw(st.sampled_from(FREQUENCIES))
    ends = draw(st.sampled_from(("never", "count", "until")))
    days = draw(st.sets(st.sampled_from(WEEKDAYS))) if frequency == "weekly" else set()
    month_days = st.none() | st.sampled_from((-1, *range(1, 32)))
    rule = Recurrence(
        frequency=frequency,
        interval=draw(st.integers(1, MAX_INTERVAL)),
        days_of_week=tuple(days),
        month_day=draw(month_days) if frequency in ("monthly", "yearly") else None,
        count=draw(st.integers(1, MAX_COUNT)) if ends == "count" else None,
        until=draw(st.dates(EARLIEST.date(), LATEST.date())) if ends == "until" else None,
        from_completion=draw(st.booleans()),
        tz=draw(st.sampled_from(ZONES)),
    )
    due: date | datetime = draw(
        st.dates(EARLIEST.date(), LATEST.date())
        | st.datetimes(EARLIEST, LATEST, timezones=st.just(UTC))
    )
    try:
        check(rule, due)
    except RecurrenceError:
        assume(False)
    return rule, due


def local_date(moment: date | datetime, tz: str) -> date:
    return moment.astimezone(ZoneInfo(tz)).date() if isinstance(moment, datetime) else moment


@given(rules_and_dues())
def test_next_due_from_due_is_later(case: tuple[Recurrence, date | datetime]) -> None:
    rule, due = replace(case[0], from_completion=False), case[1]
    found = next_due(rule, due, occurrence=1, completed_at=SOMETIME)
    if rule.count is None and rule.until is None:
        assert found is not None
    if found is None:
        return
    assert isinstance(found, datetime) == isinstance(due, datetime)
    assert found > due  # both dates or both datetimes, as just asserted
    if isinstance(found, datetime):
        assert found.tzinfo is UTC
    if rule.until is not None:
        assert local_date(found, rule.tz) <= rule.until


@given(rules_and_dues(), st.integers(0, 3 * 366 * 24 * 60))
def test_next_due_from_completion_follows_it(
    case: tuple[Recurrence, date | datetime], minutes_late: int
) -> None:
    rule, due = replace(case[0], from_completion=True, count=None, until=None), case[1]
    try:
        check(rule, due)  # counting from the completion is stricter
    except RecurrenceError:
        assume(False)
    start = due if isinstance(due, datetime) else datetime(due.year, due.month, due.day, tzinfo=UTC)
    completed_at = start + timedelta(minutes=minutes_late)
    found = next_due(rule, due, occurrence=1, completed_at=completed_at)
    assert found is not None
    assert local_date(found, rule.tz) > local_date(completed_at, rule.tz)


@given(rules_and_dues())
def test_text_round_trips(case: tuple[Recurrence, date | datetime]) -> None:
    rule, due = case
    text = rrule_text(rule, due)
    parsed = parse_rrule(text, tz=rule.tz, from_completion=rule.from_completion)
    assert parsed == replace(rule, at=_time_of_day(rule, due))


def test_parsed_rules_are_kept_a_bounded_few() -> None:
    """A rule is parsed once for every task that has it, up to a bound any client can reach."""
    parse_rrule.cache_clear()
    zones = ("UTC", "Europe/Paris", "Asia/Tokyo", "America/New_York")
    for zone in zones:
        for interval in range(1, MAX_INTERVAL + 1):
            parse_rrule(f"FREQ=DAILY;INTERVAL={interval}", tz=zone, from_completion=False)
    assert len(zones) * MAX_INTERVAL > PARSED_RULES_KEPT
    assert parse_rrule.cache_info().currsize == PARSED_RULES_KEPT

    weekly = "FREQ=WEEKLY;INTERVAL=1;BYDAY=MO,WE"
    first = parse_rrule(weekly, tz="UTC", from_completion=True)
    assert parse_rrule(weekly, tz="UTC", from_completion=True) is first
    assert parse_rrule(weekly, tz="UTC", from_completion=False).from_completion is False
    for _ in range(2):  # a refusal is not kept as an answer
        with pytest.raises(ValueError, match="canonical"):
            parse_rrule("FREQ=WEEKLY;BYDAY=MO;INTERVAL=1", tz="UTC", from_completion=False)
