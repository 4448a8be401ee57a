"""The `Idempotency-Key` request header, and what makes two requests "the same"."""

import hashlib
import json
from typing import Annotated

from fastapi import Header

from todo_api.api.schemas import without_null
from todo_api.db.models import IDEMPOTENCY_KEY_MAX_LENGTH

IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        json_schema_extra=without_null,
        min_length=1,
        max_length=IDEMPOTENCY_KEY_MAX_LENGTH,
        # Visible ASCII: what a UUID, a ULID or any token a client makes up consists of.
        pattern=r"^[!-~]+$",
        description="Makes the create safe to retry: within 24 hours a repeat with the same "
        "key and body gets the first response back (`Idempotent-Replayed: true`) and "
        "creates nothing; 409 while the first is still in progress; 422 if the body differs. "
        "Keys are per user.",
    ),
]


def request_fingerprint(body: bytes) -> str:
    """SHA-256 of the JSON body in canonical form: key order and spacing do not count."""
    canonical = json.dumps(json.loads(body), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()
