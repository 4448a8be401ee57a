"""Reminders: when a task's reminder fires, from an instant or from its due.

Pure: no database. A reminder is stored as the instant it fires (`remind_at`) plus, for one
relative to the due, how long before it (`reminder_minutes_before`) and, for a due that is a
day, the zone whose start of that day it counts from (`reminder_tz`): so moving the due moves
the reminder, and a series' next occurrence gets its own.
"""

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from todo_api.db.local_date import day_starts

#: Four weeks: the furthest ahead of its due a relative reminder may be.
MAX_MINUTES_BEFORE = 40320


@dataclass(frozen=True, slots=True)
class Reminder:
    """Either `at` an instant, or `minutes_before` the due (in `tz` for a due that is a day)."""

    at: datetime | None = None
    minutes_before: int | None = None
    tz: str = "UTC"

    @property
    def relative(self) -> bool:
        return self.minutes_before is not None


class ReminderError(ValueError):
    """A reminder that cannot be used with the task's due."""


def values(
    reminder: Reminder | None, due_date: date | None, due_at: datetime | None
) -> dict[str, Any]:
    """The columns that store `reminder` for a task with this due, armed (not acknowledged).

    Raises ReminderError for a relative reminder without a due.
    """
    if reminder is None:
        return {"remind_at": None, "reminder_minutes_before": None, "reminder_tz": None}
    if reminder.minutes_before is None:
        return {"remind_at": reminder.at, "reminder_minutes_before": None, "reminder_tz": None}
    try:
        if due_at is not None:
            start, zone = due_at, None
        elif due_date is not None:
            # The day begins where the user is.
            start = day_starts(due_date, ZoneInfo(reminder.tz))
            zone = reminder.tz
        else:
            raise ReminderError("A reminder minutes_before the due needs a due_date or a due_at")
        remind_at = start - timedelta(minutes=reminder.minutes_before)
    except OverflowError:
        # Python's datetimes begin at year 1 (and end at 9999).
        raise ReminderError("The reminder would fall outside years 1 to 9999") from None
    return {
        "remind_at": remind_at,
        "reminder_minutes_before": reminder.minutes_before,
        "reminder_tz": zone,
    }


def stored(task: Mapping[str, Any]) -> Reminder | None:
    """The reminder a task's columns hold."""
    if task["remind_at"] is None:
        return None
    minutes = task["reminder_minutes_before"]
    if minutes is None:
        return Reminder(at=task["remind_at"])
    return Reminder(minutes_before=minutes, tz=task["reminder_tz"] or "UTC")
