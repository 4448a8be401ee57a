"""The `Idempotency-Key` request header, and what makes two requests "the same"."""

import hashlib
import json
import re
from typing import Any

from fastapi import Request
from fastapi.exceptions import RequestValidationError

from todo_api.db.models import IDEMPOTENCY_KEY_MAX_LENGTH

# Visible ASCII: what a UUID, a ULID or any token a client makes up consists of.
_KEY_PATTERN = rf"^[!-~]{{1,{IDEMPOTENCY_KEY_MAX_LENGTH}}}$"
VALID_KEY = re.compile(_KEY_PATTERN)

# Read by `idempotency_key` rather than declared as a FastAPI Header parameter, whose
# validation would cost every create, keyed or not (see conditional.py).
IDEMPOTENCY_KEY: dict[str, Any] = {
    "name": "Idempotency-Key",
    "in": "header",
    "required": False,
    "schema": {
        "type": "string",
        "minLength": 1,
        "maxLength": IDEMPOTENCY_KEY_MAX_LENGTH,
        "pattern": _KEY_PATTERN,
    },
    "description": "Makes the create safe to retry: within 24 hours a repeat with the same "
    "key and body gets the first response back (`Idempotent-Replayed: true`) and creates "
    "nothing (a repeat sent while the first is running waits for it); 422 if the body "
    "differs. Keys are per user.",
}


def key_error(message: str, kind: str) -> RequestValidationError:
    """A 422 located at the header, like any other validation error."""
    return RequestValidationError(
        [{"loc": ("header", "Idempotency-Key"), "msg": message, "type": kind}]
    )


def idempotency_key(request: Request) -> str | None:
    """The request's key, or None without one; 422 for a malformed or repeated one."""
    keys = request.headers.getlist("idempotency-key")
    if not keys:
        return None
    if len(keys) > 1:
        raise key_error("Header must be given at most once", "repeated_header")
    if VALID_KEY.fullmatch(keys[0]) is None:
        raise key_error(
            f"Must be 1 to {IDEMPOTENCY_KEY_MAX_LENGTH} visible ASCII characters",
            "idempotency_key_invalid",
        )
    return keys[0]


def request_fingerprint(body: bytes) -> str:
    """SHA-256 of the JSON body in canonical form: key order and spacing do not count."""
    canonical = json.dumps(json.loads(body), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()
