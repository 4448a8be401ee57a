"""Recurring tasks: RFC 5545 rules, their canonical RRULE text, and the next occurrence's due.

Pure: no database, no I/O. A rule is stored as its RRULE value (`rrule_text`) plus the IANA
zone it is computed in plus whether it counts from the completion. A rule of a task due at an
instant holds its wall-clock time of day (BYHOUR, BYMINUTE, BYSECOND): an occurrence that falls
in a spring-forward gap is due just after the gap, and the next one is at the rule's time again.
"""

from calendar import isleap, monthrange
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, time
from functools import lru_cache
from math import gcd
from typing import Any, Final, Literal
from zoneinfo import ZoneInfo

from dateutil.rrule import DAILY, FR, MO, MONTHLY, SA, SU, TH, TU, WE, WEEKLY, YEARLY, rrule

WEEKDAYS: tuple[str, ...] = ("mo", "tu", "we", "th", "fr", "sa", "su")
FREQUENCIES: tuple[str, ...] = ("daily", "weekly", "monthly", "yearly")
MAX_INTERVAL = 365
MAX_COUNT = 1000

_FREQS: Final[dict[str, Literal[0, 1, 2, 3]]] = {
    "daily": DAILY,
    "weekly": WEEKLY,
    "monthly": MONTHLY,
    "yearly": YEARLY,
}
_DAYS: Final = dict(zip(WEEKDAYS, (MO, TU, WE, TH, FR, SA, SU), strict=True))
_PARTS: Final = (
    "FREQ",
    "INTERVAL",
    "BYDAY",
    "BYMONTH",
    "BYMONTHDAY",
    "BYHOUR",
    "BYMINUTE",
    "BYSECOND",
    "COUNT",
    "UNTIL",
)
_TIME_PARTS: Final = ("BYHOUR", "BYMINUTE", "BYSECOND")
# Month lengths are taken from a leap year: February 29 is a day some Februaries have.
_LEAP_YEAR: Final = 2000


@dataclass(frozen=True, slots=True)
class Recurrence:
    """How a task repeats. `check` says whether it can be used with a given due."""

    frequency: str
    interval: int = 1
    days_of_week: tuple[str, ...] = ()
    month_day: int | None = None
    count: int | None = None
    until: date | None = None
    from_completion: bool = False
    tz: str = "UTC"
    #: The wall-clock time of day of a rule for a due instant, as stored; None: the due's.
    at: time | None = None

    def __post_init__(self) -> None:
        # One canonical form, so that equal rules compare equal and write the same text;
        # unknown names sort last and are left for `check` to report.
        def order(day: str) -> tuple[int, str]:
            return (WEEKDAYS.index(day) if day in WEEKDAYS else len(WEEKDAYS), day)

        object.__setattr__(self, "days_of_week", tuple(sorted(set(self.days_of_week), key=order)))


class RecurrenceError(ValueError):
    """A rule that cannot be used with this due; `field` names the offending field
    relative to the recurrence object, e.g. "month_day" or "days_of_week" or "ends"."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}" if field else message)
        self.field = field
        self.message = message


def _wall(moment: datetime, zone: ZoneInfo) -> datetime:
    """The naive wall-clock time of an aware `moment` in `zone`."""
    if moment.utcoffset() is None:
        raise ValueError("expected an aware datetime")
    return moment.astimezone(zone).replace(tzinfo=None)


def _local(due: date | datetime, zone: ZoneInfo) -> datetime:
    """The due as a naive local datetime: midnight for a date."""
    return _wall(due, zone) if isinstance(due, datetime) else datetime.combine(due, time())


def _has_month(rule: Recurrence) -> bool:
    # Without BYMONTH a YEARLY;BYMONTHDAY rule would fire in every month.
    return rule.frequency == "yearly" and rule.month_day is not None


def _fits(month_day: int, month: int) -> bool:
    return month_day == -1 or month_day <= monthrange(_LEAP_YEAR, month)[1]


def _reaches(cycle: int, interval: int, start: int | None, hit: Callable[[int], bool]) -> bool:
    """Whether the grid start + k * interval (mod cycle) ever hits; for every start if None."""
    # The grid visits exactly the residues congruent to its start modulo gcd(interval, cycle),
    # so this is decided without stepping through any calendar.
    step = gcd(interval, cycle)
    starts = range(step) if start is None else (start % step,)
    return all(any(hit(residue) for residue in range(s, cycle, step)) for s in starts)


def _text(rule: Recurrence, bymonth: int | None) -> str:
    parts = [f"FREQ={rule.frequency.upper()}", f"INTERVAL={rule.interval}"]
    if rule.frequency == "weekly" and rule.days_of_week:
        parts.append("BYDAY=" + ",".join(day.upper() for day in rule.days_of_week))
    if bymonth is not None:
        parts.append(f"BYMONTH={bymonth}")
    if rule.month_day is not None:
        parts.append(f"BYMONTHDAY={rule.month_day}")
    if rule.at is not None:
        parts += [f"BYHOUR={rule.at.hour}", f"BYMINUTE={rule.at.minute}"]
        parts.append(f"BYSECOND={rule.at.second}")
    if rule.count is not None:
        parts.append(f"COUNT={rule.count}")
    elif rule.until is not None:
        parts.append(f"UNTIL={rule.until.isoformat().replace('-', '')}")
    return ";".join(parts)


def rrule_text(rule: Recurrence, due: date | datetime) -> str:
    """The canonical RRULE value of `rule` for a series starting at `due`.

    Raises RecurrenceError if the rule cannot be used with the due.
    """
    try:
        check(rule, due)
        local = _local(due, ZoneInfo(rule.tz))
    except OverflowError:
        # Python's datetimes end at years 1 and 9999; a due at either end can fall past it
        # in the rule's zone.
        raise RecurrenceError("tz", "the due falls outside years 1 to 9999 in this zone") from None
    month = local.month if _has_month(rule) else None
    if isinstance(due, datetime) and rule.at is None:
        rule = replace(rule, at=local.time().replace(microsecond=0))
    return _text(rule, month)


def _number(value: str | None) -> int | None:
    return None if value is None else int(value)


#: Rules kept parsed (`parse_rrule`): a few hundred bytes each. A listing of repeating tasks
#: parses one per task, and completing one parses its rule to plan and again to answer.
PARSED_RULES_KEPT = 1024


@lru_cache(maxsize=PARSED_RULES_KEPT)  # Recurrence is frozen: one can be shared
def parse_rrule(text: str, *, tz: str, from_completion: bool) -> Recurrence:
    """The rule `rrule_text` wrote as `text`; ValueError for any other text."""
    values: dict[str, str] = {}
    for part in text.split(";"):
        name, equals, value = part.partition("=")
        if not equals or name not in _PARTS or name in values:
            raise ValueError(f"unexpected RRULE part {part!r}")
        values[name] = value
    if "FREQ" not in values or "INTERVAL" not in values:
        raise ValueError("an RRULE needs FREQ and INTERVAL")
    days = values.get("BYDAY")
    hour, minute, second = (values.get(part) for part in _TIME_PARTS)
    at = None
    if hour is not None or minute is not None or second is not None:
        if hour is None or minute is None or second is None:
            raise ValueError("BYHOUR, BYMINUTE and BYSECOND go together")
        at = time(int(hour), int(minute), int(second))  # ValueError for an impossible time
    rule = Recurrence(
        frequency=values["FREQ"].lower(),
        interval=int(values["INTERVAL"]),
        days_of_week=() if days is None else tuple(days.lower().split(",")),
        month_day=_number(values.get("BYMONTHDAY")),
        count=_number(values.get("COUNT")),
        until=date.fromisoformat(values["UNTIL"]) if "UNTIL" in values else None,
        from_completion=from_completion,
        tz=tz,
        at=at,
    )
    _check_fields(rule)
    month = _number(values.get("BYMONTH"))
    if (month is None) == _has_month(rule):
        raise ValueError("BYMONTH belongs to exactly the yearly rules with BYMONTHDAY")
    if month is not None and not (1 <= month <= 12 and _fits(rule.month_day or 1, month)):
        raise ValueError(f"invalid BYMONTH={month}")
    # Anything parsed from a non-canonical spelling (order, case, padding) writes differently.
    if _text(rule, month) != text:
        raise ValueError(f"not a canonical RRULE: {text!r}")
    return rule


def _check_fields(rule: Recurrence) -> None:
    """The checks that do not depend on the due."""
    if rule.frequency not in FREQUENCIES:
        raise RecurrenceError("frequency", f"must be one of {', '.join(FREQUENCIES)}")
    if not 1 <= rule.interval <= MAX_INTERVAL:
        raise RecurrenceError("interval", f"must be from 1 to {MAX_INTERVAL}")
    if rule.days_of_week and rule.frequency != "weekly":
        raise RecurrenceError("days_of_week", "only a weekly rule has days of the week")
    if not set(rule.days_of_week) <= set(WEEKDAYS):
        raise RecurrenceError("days_of_week", f"days are among {', '.join(WEEKDAYS)}")
    if rule.month_day is not None and rule.frequency in ("daily", "weekly"):
        raise RecurrenceError("month_day", "only a monthly or yearly rule has a month day")
    if rule.month_day is not None and not (1 <= rule.month_day <= 31 or rule.month_day == -1):
        raise RecurrenceError("month_day", "must be from 1 to 31, or -1 for the last day")
    if rule.count is not None and rule.until is not None:
        raise RecurrenceError("ends", "a series ends after a count or on a date, not both")
    if rule.count is not None and not 1 <= rule.count <= MAX_COUNT:
        raise RecurrenceError("ends", f"count must be from 1 to {MAX_COUNT}")
    try:
        ZoneInfo(rule.tz)
    except (KeyError, ValueError, OSError) as error:  # ZoneInfoNotFoundError is a KeyError
        raise RecurrenceError("tz", f"unknown time zone {rule.tz!r}") from error


def check(rule: Recurrence, due: date | datetime) -> None:
    """Raise RecurrenceError unless `rule` is well formed and can ever recur from `due`."""
    _check_fields(rule)
    day = rule.month_day
    if day is None or day == -1:
        return
    start = _local(due, ZoneInfo(rule.tz))
    # From the completion, the grid of months (or years) starts wherever the completion falls,
    # so the rule must work from every start.
    if rule.frequency == "monthly":
        month = None if rule.from_completion else start.month - 1
        if not _reaches(12, rule.interval, month, lambda m: _fits(day, m + 1)):
            raise RecurrenceError("month_day", f"none of the months this visits has day {day}")
    elif not _fits(day, start.month):
        raise RecurrenceError("month_day", f"month {start.month} has no day {day}")
    elif start.month == 2 and day == 29:
        year = None if rule.from_completion else start.year
        # The Gregorian calendar repeats every 400 years.
        if not _reaches(400, rule.interval, year, isleap):
            raise RecurrenceError("month_day", "none of the years this visits is a leap year")


def next_due(
    rule: Recurrence, due: date | datetime, *, occurrence: int, completed_at: datetime
) -> date | datetime | None:
    """The due of the occurrence after number `occurrence` (from 1), completed at
    `completed_at`: a date for a date due, a UTC datetime for a datetime due; None once the
    series has ended."""
    if rule.count is not None and occurrence >= rule.count:
        return None
    zone = ZoneInfo(rule.tz)
    # Wall-clock time in the rule's zone, so 09:00 stays 09:00 across DST changes; the
    # rule's own time of day where it has one, which a due moved by a gap does not change.
    local_due = _local(due, zone)
    at = rule.at if rule.at is not None and isinstance(due, datetime) else local_due.time()
    start = local_due
    if rule.from_completion:
        start = datetime.combine(_wall(completed_at, zone).date(), at)
    found = rrule(
        _FREQS[rule.frequency],
        dtstart=start,
        interval=rule.interval,
        byweekday=[_DAYS[day] for day in rule.days_of_week] or None,
        bymonthday=rule.month_day,
        # The due's month even from the completion: BYMONTH is part of the stored text.
        bymonth=local_due.month if _has_month(rule) else None,
        byhour=at.hour,
        byminute=at.minute,
        bysecond=at.second,
    ).after(start)
    if found is None or (rule.until is not None and found.date() > rule.until):
        return None
    if not isinstance(due, datetime):
        return found.date()
    # dateutil drops microseconds from dtstart. fold=0: an ambiguous time (autumn) is its
    # first occurrence, and one in a spring-forward gap takes the offset from before the
    # gap, so 02:30 on the day New York skips it is 03:30 EDT (zoneinfo's reading).
    moment = found.replace(microsecond=local_due.microsecond, tzinfo=zone, fold=0)
    return moment.astimezone(UTC)


def public(rule: Recurrence, text: str) -> dict[str, Any]:
    """The API's JSON object for a rule stored as `text`."""
    ends: dict[str, Any] | None = None
    if rule.count is not None:
        ends = {"count": rule.count}
    elif rule.until is not None:
        ends = {"until": rule.until.isoformat()}
    return {
        "frequency": rule.frequency,
        "interval": rule.interval,
        "days_of_week": list(rule.days_of_week),
        "month_day": rule.month_day,
        "ends": ends,
        "from": "completion" if rule.from_completion else "due",
        "tz": rule.tz,
        "rrule": text,
    }
