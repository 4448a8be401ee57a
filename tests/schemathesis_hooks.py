"""Schemathesis hooks for tests/test_schemathesis.py (loaded through SCHEMATHESIS_HOOKS)."""

import re
import uuid
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
