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


#: A task as the API sends it (TaskPublic), ready to be encoded.
PublicTask = dict[str, Any]


def public_task(task: TaskRecord) -> PublicTask:
    """The task as TaskPublic describes it: its version is sent only inside the ETag,
    its rule and its reminder as one object each."""
    recurrence = None
    # The first occurrence is its series' until a second one names it.
    series_id = task.series_id
    rule = task.rule()
    if rule is not None and task.recurrence is not None:
        recurrence = rules.public(rule, task.recurrence)
        series_id = series_id or task.id
    reminder = None
    if task.remind_at is not None:
        reminder = {
            "at": task.remind_at,
            "minutes_before": task.reminder_minutes_before,
            "tz": task.reminder_tz,
            "acknowledged_at": task.reminder_acknowledged_at,
        }
    return {
        "title": task.title,
        "description": task.description,
        "completed": task.completed,
        "id": task.id,
        "user_id": task.user_id,
        "completed_at": task.completed_at,
        "created_at": task.created_at,
        "updated_at": task.updated_at,
        "due_date": task.due_date,
        "due_at": task.due_at,
        "priority": task.priority,
        "tags": task.tags,
        "recurrence": recurrence,
        "series_id": series_id,
        "next_occurrence_id": task.next_occurrence_id,
        "reminder": reminder,
        "etag": task_etag(task.id, task.version),
    }


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
