"""Schemathesis hooks for tests/test_schemathesis.py (loaded through SCHEMATHESIS_HOOKS)."""

import re
import uuid
import zoneinfo
from typing import Any

import schemathesis

_VALID_KEY = re.compile(r"[!-~]{1,255}")


@schemathesis.hook
def before_call(context: Any, case: Any, **kwargs: Any) -> None:
    # Generated keys repeat ("0", "00"...) with other bodies, which the API rightly refuses
    # (422); a fresh key per request keeps that state out of the body checks. Invalid keys
    # are left as generated, so their refusal is still checked.
    headers = case.headers or {}
    for name in list(headers):
        if name.lower() == "idempotency-key" and _VALID_KEY.fullmatch(str(headers[name])):
            headers[name] = uuid.uuid4().hex
    # The schema cannot list the IANA zones (that list is the system's tz database), so a
    # generated `tz` is rarely a zone; the API rightly refuses those (422, tested in
    # tests/test_due.py). Names that fit the schema but are no zone become one that is.
    query = case.query or {}
    tz = query.get("tz")
    zones = zoneinfo.available_timezones() - {"localtime"}
    if isinstance(tz, str) and len(tz) <= 64 and tz not in zones:
        query["tz"] = "Europe/Paris"
    # Nor can it say that tags differing only by case or by surrounding spaces are one
    # tag, which the API refuses (422, tested in tests/test_tags.py): keep the first.
    # A list with other items than strings is invalid anyway and stays as generated.
    body = case.body
    tags = body.get("tags") if isinstance(body, dict) else None
    if isinstance(tags, list) and all(isinstance(name, str) for name in tags):
        distinct: dict[str, str] = {}
        for name in tags:
            distinct.setdefault(name.strip().casefold(), name)
        body["tags"] = list(distinct.values())
    # Nor that a repeating task or a reminder before the due needs a due, nor that a rule's
    # days must fit its frequency and the due's month (refused with 422, tested in
    # tests/test_recurrence.py and tests/test_reminders.py): a rule is made to fit, a body
    # with a reminder before the due gets a due, and one that clears the due clears both.
    if isinstance(body, dict):
        _fit_recurrence(body, zones)
        _fit_reminder(body, zones)


def _clears_due(body: dict[str, Any]) -> bool:
    return ("due_date" in body or "due_at" in body) and (
        body.get("due_date") is None and body.get("due_at") is None
    )


def _give_a_due(body: dict[str, Any]) -> None:
    if body.get("due_date") is None and body.get("due_at") is None:
        body["due_date"] = "2027-01-04"
        body.pop("due_at", None)


def _fit_reminder(body: dict[str, Any], zones: set[str]) -> None:
    reminder = body.get("reminder")
    if isinstance(reminder, dict) and "at" in reminder and "minutes_before" in reminder:
        # The schema's oneOf says one or the other; schemathesis's coverage phase combines
        # the two examples regardless.
        del reminder["at"]
    if isinstance(reminder, dict):
        tz = reminder.get("tz")
        if isinstance(tz, str) and len(tz) <= 64 and tz not in zones:
            reminder["tz"] = "Europe/Paris"
    minutes = reminder.get("minutes_before") if isinstance(reminder, dict) else None
    if type(minutes) in (int, float):
        _give_a_due(body)
    elif _clears_due(body) and "reminder" not in body:
        body["reminder"] = None


def _fit_recurrence(body: dict[str, Any], zones: set[str]) -> None:
    rule = body.get("recurrence")
    if not (isinstance(rule, dict) and isinstance(rule.get("frequency"), str)):
        if _clears_due(body) and "recurrence" not in body:
            body["recurrence"] = None
        return
    if rule["frequency"] != "weekly":
        rule.pop("days_of_week", None)
    elif isinstance(days := rule.get("days_of_week"), list) and all(
        isinstance(day, str) for day in days
    ):
        rule["days_of_week"] = list(dict.fromkeys(days))
    if rule["frequency"] in ("daily", "weekly"):
        rule.pop("month_day", None)
    elif type(rule.get("month_day")) in (int, float):
        rule["month_day"] = -1  # every month has a last day
    tz = rule.get("tz")
    if isinstance(tz, str) and len(tz) <= 64 and tz not in zones:
        rule["tz"] = "Europe/Paris"
    _give_a_due(body)
