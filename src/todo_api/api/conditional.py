"""Entity tags and the conditional request headers of RFC 9110 (section 13)."""

import hashlib
import re
from typing import Any

from starlette.datastructures import Headers
from starlette.responses import Response

from todo_api.db import recurrence as rules
from todo_api.db.tasks import TaskRecord

# `W/"opaque"` or `"opaque"`, then a comma or the end; list elements may be empty.
_ENTITY_TAG = re.compile(r'[\s,]*(W/)?"([\x21\x23-\x7e\x80-\xff]*)"[ \t]*(?:,|$)')

_VERSION_DIGITS = 18

# Read straight from `request.headers` and published through `openapi_extra`: a FastAPI
# Header parameter costs about 10 µs per request in validation, on every request, mostly
# sent without it.
IF_MATCH: dict[str, Any] = {
    "name": "If-Match",
    "in": "header",
    "required": False,
    "schema": {"type": "string"},
    "description": "Change the task only if its current `ETag` is one of these (or `*`). "
    "Otherwise 412 and nothing changes.",
}
IF_NONE_MATCH: dict[str, Any] = {
    "name": "If-None-Match",
    "in": "header",
    "required": False,
    "schema": {"type": "string"},
    "description": "ETags the client already holds: if the current one is among them, "
    "the answer is 304 with no body.",
}


def task_etag(task_id: int, version: int) -> str:
    # The id keeps one task's tag from ever matching another's with the same version.
    return f'"{task_id}.{version}"'


def public_task(task: TaskRecord) -> TaskRecord:
    """The record as TaskPublic describes it: its version is sent only inside the ETag,
    its rule and its reminder as one object each."""
    version = task.pop("version")
    zone = task.pop("recurrence_tz")
    from_completion = task.pop("recurrence_from_completion")
    del task["occurrence"]
    text = task["recurrence"]
    if text is not None:
        rule = rules.parse_rrule(text, tz=zone, from_completion=from_completion)
        task["recurrence"] = rules.public(rule, text)
        # The first occurrence is its series' until a second one names it.
        if task["series_id"] is None:
            task["series_id"] = task["id"]
    remind_at = task.pop("remind_at")
    minutes_before = task.pop("reminder_minutes_before")
    reminder_zone = task.pop("reminder_tz")
    acknowledged_at = task.pop("reminder_acknowledged_at")
    task["reminder"] = (
        None
        if remind_at is None
        else {
            "at": remind_at,
            "minutes_before": minutes_before,
            "tz": reminder_zone,
            "acknowledged_at": acknowledged_at,
        }
    )
    task["etag"] = task_etag(task["id"], version)
    return task


def content_etag(*parts: bytes) -> str:
    """A strong tag for a representation that has no version of its own (a list page)."""
    digest = hashlib.blake2b(digest_size=16)
    for part in parts:
        digest.update(part)
    return f'"{digest.hexdigest()}"'


def _entity_tags(header: str) -> list[tuple[bool, str]]:
    """The (weak, tag) pairs of a header; a malformed header holds none.

    Linear in the header's length: each step consumes what it matched, and the end is
    found once (a header can be as long as the header limit allows).
    """
    tags = []
    position = 0
    end = len(header.rstrip(" \t,"))
    while position < end:
        match = _ENTITY_TAG.match(header, position)
        if match is None:
            return []
        tags.append((match[1] is not None, f'"{match[2]}"'))
        position = match.end()
    return tags


def none_match(header: str | None, etag: str) -> bool:
    """False when If-None-Match names `etag` (weak comparison) or is `*`."""
    if header is None:
        return True
    if header.strip() == "*":
        return False
    return all(tag != etag for _weak, tag in _entity_tags(header))


def matching_versions(header: str | None, task_id: int) -> set[int] | None:
    """Versions of task `task_id` that If-Match accepts; None means any (absent or `*`).

    Strong comparison: a weak tag, another task's tag or a malformed header accepts none.
    """
    if header is None or header.strip() == "*":
        return None
    versions = set()
    prefix = f'"{task_id}.'
    for weak, tag in _entity_tags(header):
        number = tag.removeprefix(prefix).removesuffix('"')
        # Shorter than any 64-bit overflow: a longer number is no version of ours.
        plausible = number.isascii() and number.isdigit() and len(number) <= _VERSION_DIGITS
        if not weak and tag.startswith(prefix) and plausible:
            versions.add(int(number))
    return versions


def malformed(header: str | None) -> bool:
    """Whether a conditional header holds no entity tag at all: `6.3` for `"6.3"`, say."""
    return header is not None and header.strip() != "*" and not _entity_tags(header)


def etag_header(description: str) -> dict[str, Any]:
    return {"ETag": {"description": description, "schema": {"type": "string"}}}


NOT_MODIFIED: dict[int | str, dict[str, Any]] = {
    304: {
        "description": "`If-None-Match` names the current ETag: the copy the client holds is "
        "current. No body.",
        "headers": etag_header("The current entity tag."),
    }
}


def field_list(headers: Headers, name: str) -> str | None:
    """All lines of a list-valued header as one list (RFC 9110 §5.3), or None if absent."""
    lines = headers.getlist(name)
    return ", ".join(lines) if lines else None


def not_modified(etag: str) -> Response:
    return Response(status_code=304, headers={"ETag": etag})
