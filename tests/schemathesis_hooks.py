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
