"""The task endpoints: thin translation between HTTP and `todo_api.db.tasks`."""

from collections.abc import Awaitable
from typing import Annotated, Any, TypeVar
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Body, Depends, Path, Query, Request, Response, status
from starlette.convertors import Convertor, register_url_convertor

from todo_api.api.authorized_route import AuthorizedRoute
from todo_api.api.caller import CallerId
from todo_api.api.conditional import (
    IF_MATCH,
    IF_NONE_MATCH,
    NOT_MODIFIED,
    PublicTask,
    content_etag,
    etag_header,
    field_list,
    malformed,
    matching_versions,
    none_match,
    not_modified,
    public_task,
    task_etag,
)
from todo_api.api.dependencies import database_of
from todo_api.api.idempotency import (
    IDEMPOTENCY_KEY,
    idempotency_key,
    key_error,
    request_fingerprint,
)
from todo_api.api.json_encoding import to_json
from todo_api.api.list_query import (
    MAX_BIGINT,
    TIME_ZONE_DESCRIPTION,
    TaskListQuery,
    list_page,
    list_query,
)
from todo_api.api.problems import (
    IdempotencyKeyInFlightError,
    NoReminderError,
    PreconditionFailedError,
    Problem,
    TaskNotFoundError,
    problem_example,
    problem_responses,
)
from todo_api.api.public_url import page_headers, page_headers_schema, public_url
from todo_api.api.schemas import (
    TIME_ZONE_MAX_LENGTH,
    BulkCompletion,
    BulkDeleteResult,
    BulkUpdateResult,
    TaskCompletion,
    TaskCreate,
    TaskPublic,
    TaskReplace,
    TaskStats,
    TaskUpdate,
    TimeZoneName,
)
from todo_api.db import idempotency
from todo_api.db import tasks as task_queries
from todo_api.db.database import Database
from todo_api.db.tasks import TaskRecord, VersionMismatchError

_T = TypeVar("_T")

TimeZoneQuery = Annotated[
    TimeZoneName,
    Query(
        max_length=TIME_ZONE_MAX_LENGTH,
        description=TIME_ZONE_DESCRIPTION,
        examples=["Europe/Paris"],
    ),
]

TaskId = Annotated[
    int, Path(ge=1, le=MAX_BIGINT, description="The task's id, a positive 64-bit integer.")
]

# Fixed sub-paths of the collection. The task id segment never matches them, so a method
# they do not allow answers 405 instead of reaching "/{task_id}" as a malformed id.
STATS, COMPLETED, COMPLETE_ALL = "stats", "completed", "complete-all"


class _TaskIdSegment(Convertor[str]):
    regex = rf"(?!(?:{STATS}|{COMPLETED}|{COMPLETE_ALL})(?:/|$))[^/]+"

    def convert(self, value: str) -> str:
        return value  # validated as an integer by the TaskId parameter, with a 422

    def to_string(self, value: str) -> str:
        return str(value)


register_url_convertor("task_id", _TaskIdSegment())

router = APIRouter(
    prefix="/api/{user_id}/tasks",
    tags=["tasks"],
    responses=problem_responses(422, 503),
    route_class=AuthorizedRoute,
)
# Operations that take a JSON body: its size, media type and encoding can be wrong too
# (AuthorizedRoute, a JsonBodyRoute, answers the last two).
BODY_PROBLEMS = problem_responses(400, 413, 415)


def _json(content: Any, status_code: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(to_json(content), status_code, headers, media_type="application/json")


def _found(task: TaskRecord | None, task_id: int) -> PublicTask:
    """The task as sent to the client; 404 when there is none."""
    if task is None:
        raise TaskNotFoundError(task_id)
    return public_task(task)


def _task_response(task: PublicTask, request: Request) -> Response:
    headers = {"ETag": task["etag"]}
    next_id = task["next_occurrence_id"]
    if next_id is not None:
        owner = request.path_params["user_id"]
        url = public_url(request, "read_task", user_id=owner, task_id=str(next_id))
        headers["Link"] = f'<{url}>; rel="next-occurrence"'
    return _json(task, headers=headers)


async def _checking_version(write: Awaitable[_T], task_id: int, request: Request) -> _T:
    try:
        return await write
    except VersionMismatchError as mismatch:
        current = task_etag(task_id, mismatch.current.version)
        # `If-Match: 6.3` is a common slip: say so, rather than that the task changed.
        unquoted = malformed(field_list(request.headers, "if-match"))
        raise PreconditionFailedError(task_id, current, unquoted=unquoted) from None


def _if_match(request: Request, task_id: int) -> set[int] | None:
    return matching_versions(field_list(request.headers, "if-match"), task_id)


async def _update(
    database: Database, owner: str, task_id: int, changes: dict[str, Any], request: Request
) -> Response:
    """PUT, PATCH and the toggle with a body: `update_task`, honouring If-Match."""
    write = task_queries.update_task(
        database,
        owner=owner,
        task_id=task_id,
        changes=changes,
        if_version_in=_if_match(request, task_id),
    )
    return _task_response(
        _found(await _checking_version(write, task_id, request), task_id), request
    )


def _header(description: str) -> dict[str, Any]:
    return {"description": description, "schema": {"type": "string"}}


TASK_ETAG = {
    **etag_header("The task's current entity tag, for `If-Match` and `If-None-Match`."),
    "Link": _header(
        'A completed repeating task\'s `rel="next-occurrence"`: the task its completion created.'
    ),
}
# Writes to one task: it can have changed since the client read it.
CONDITIONAL_WRITE: dict[int | str, dict[str, Any]] = {
    412: {
        **problem_responses(412)[412],
        "headers": etag_header("The task's current entity tag."),
    }
}
WRITE_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"headers": TASK_ETAG},
    **problem_responses(404),
    **CONDITIONAL_WRITE,
    **BODY_PROBLEMS,
}


@router.get(
    "",
    operation_id="list_tasks",
    # Its query parameters (TaskListQuery) are published by todo_api.api.openapi.
    openapi_extra={"parameters": [IF_NONE_MATCH]},
    summary="List the caller's tasks",
    response_model=list[TaskPublic],
    responses={
        200: {
            "description": "One page of tasks.",
            "headers": {
                **etag_header("Entity tag of this page (its tasks and the total count)."),
                **page_headers_schema("tasks match the filter"),
            },
        },
        **NOT_MODIFIED,
    },
)
async def list_tasks(
    owner: CallerId,
    request: Request,
    query: Annotated[TaskListQuery, Depends(list_query)],
) -> Response:
    """Newest first by default, paginated with `limit` and `offset`. Filters combine: a
    task is listed if it passes all of them."""
    database = database_of(request)
    page = await list_page(database, owner, query)
    limit, offset = query.limit, query.offset
    total = str(page.total)
    body = to_json([public_task(task) for task in page.tasks])
    etag = content_etag(body, total.encode())
    if not none_match(field_list(request.headers, "if-none-match"), etag):
        return not_modified(etag)
    headers = {"ETag": etag, **page_headers(request, "list_tasks", offset, limit, page.total)}
    return Response(body, headers=headers, media_type="application/json")


@router.post(
    "",
    operation_id="create_task",
    summary="Create a task",
    status_code=status.HTTP_201_CREATED,
    response_model=TaskPublic,
    openapi_extra={"parameters": [IDEMPOTENCY_KEY]},
    responses={
        201: {
            "description": "The task was created, or this is the stored response to an "
            "earlier request with the same `Idempotency-Key`.",
            "headers": {
                "Location": _header("URL of the new task."),
                **TASK_ETAG,
                "Idempotent-Replayed": _header(
                    "`true` when this response is the stored one of an earlier request."
                ),
            },
        },
        **problem_responses(409),
        **BODY_PROBLEMS,
    },
)
async def create_task(
    owner: CallerId,
    task_in: TaskCreate,
    request: Request,
) -> Response:
    """The title is trimmed; `completed` defaults to false."""
    database = database_of(request)
    new_task = task_in.new_task()
    key = idempotency_key(request)
    if key is None:
        task = public_task(await task_queries.create_task(database, owner=owner, task=new_task))
        return _json(task, status.HTTP_201_CREATED, _created_headers(request, owner, task))
    try:
        keyed = await idempotency.create_task_once(
            database,
            owner=owner,
            key=key,
            fingerprint=request_fingerprint(await request.body()),
            task=new_task,
        )
    except idempotency.KeyInFlightError:
        raise IdempotencyKeyInFlightError() from None
    except idempotency.KeyReusedError:
        raise key_error(
            "Key was already used with a different request body", "idempotency_key_reused"
        ) from None
    task = public_task(keyed.task)
    headers = _created_headers(request, owner, task)
    if keyed.replayed:
        headers["Idempotent-Replayed"] = "true"
    return _json(task, status.HTTP_201_CREATED, headers)


def _created_headers(request: Request, owner: str, task: PublicTask) -> dict[str, str]:
    location = public_url(request, "read_task", user_id=owner, task_id=str(task["id"]))
    return {"Location": location, "ETag": task["etag"]}


@router.get(
    f"/{STATS}",
    operation_id="get_task_stats",
    summary="Count the caller's tasks",
    response_model=TaskStats,
)
async def get_task_stats(owner: CallerId, request: Request, tz: TimeZoneQuery = "UTC") -> Response:
    """Total, pending and completed, and the pending ones overdue or due today in `tz`,
    from one query."""
    database = database_of(request)
    counts = await task_queries.count_tasks(database, owner=owner, zone=ZoneInfo(tz))
    return _json(
        {
            "total": counts.total,
            "pending": counts.pending,
            "completed": counts.completed,
            "overdue": counts.overdue,
            "due_today": counts.due_today,
        }
    )


@router.post(
    f"/{COMPLETE_ALL}",
    operation_id="complete_all_tasks",
    summary="Set every task of the caller to completed or pending",
    response_model=BulkUpdateResult,
    responses=BODY_PROBLEMS,
)
async def complete_all_tasks(
    owner: CallerId, completion: BulkCompletion, request: Request
) -> Response:
    """One statement; `updated` counts the tasks whose state changed."""
    database = database_of(request)
    updated = await task_queries.set_all_completed(
        database, owner=owner, completed=completion.completed
    )
    return _json({"updated": updated})


@router.delete(
    f"/{COMPLETED}",
    operation_id="delete_completed_tasks",
    summary="Delete the caller's completed tasks",
    response_model=BulkDeleteResult,
)
async def delete_completed_tasks(owner: CallerId, request: Request) -> Response:
    """One statement; pending tasks stay."""
    database = database_of(request)
    return _json({"deleted": await task_queries.delete_completed(database, owner=owner)})


@router.get(
    "/{task_id:task_id}",
    operation_id="read_task",
    summary="Read one task",
    response_model=TaskPublic,
    responses={200: {"headers": TASK_ETAG}, **NOT_MODIFIED, **problem_responses(404)},
    openapi_extra={"parameters": [IF_NONE_MATCH]},
)
async def read_task(owner: CallerId, task_id: TaskId, request: Request) -> Response:
    database = database_of(request)
    task = _found(await task_queries.get_task(database, owner=owner, task_id=task_id), task_id)
    if not none_match(field_list(request.headers, "if-none-match"), task["etag"]):
        return not_modified(task["etag"])
    return _task_response(task, request)


@router.put(
    "/{task_id:task_id}",
    operation_id="replace_task",
    summary="Replace a task",
    response_model=TaskPublic,
    responses=WRITE_RESPONSES,
    openapi_extra={"parameters": [IF_MATCH]},
)
async def replace_task(
    owner: CallerId,
    task_id: TaskId,
    task_in: TaskReplace,
    request: Request,
) -> Response:
    """An absent `description` becomes null; an absent `completed`, `priority`, due, `tags`,
    `recurrence` or `reminder` is left as it is."""
    database = database_of(request)
    return await _update(database, owner, task_id, task_in.changes(), request)


@router.patch(
    "/{task_id:task_id}",
    operation_id="update_task",
    summary="Update some fields of a task",
    response_model=TaskPublic,
    responses=WRITE_RESPONSES,
    openapi_extra={"parameters": [IF_MATCH]},
)
async def update_task(
    owner: CallerId,
    task_id: TaskId,
    task_in: TaskUpdate,
    request: Request,
) -> Response:
    """Only the fields present change; `description: null` clears the description."""
    database = database_of(request)
    return await _update(database, owner, task_id, task_in.changes(), request)


@router.delete(
    "/{task_id:task_id}",
    operation_id="delete_task",
    summary="Delete a task",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses={**problem_responses(404), **CONDITIONAL_WRITE},
    openapi_extra={"parameters": [IF_MATCH]},
)
async def delete_task(owner: CallerId, task_id: TaskId, request: Request) -> Response:
    database = database_of(request)
    write = task_queries.delete_task(
        database, owner=owner, task_id=task_id, if_version_in=_if_match(request, task_id)
    )
    if await _checking_version(write, task_id, request) is None:
        raise TaskNotFoundError(task_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.patch(
    "/{task_id:task_id}/complete",
    operation_id="toggle_task_completion",
    summary="Toggle or set a task's completion",
    response_model=TaskPublic,
    responses=WRITE_RESPONSES,
    openapi_extra={"parameters": [IF_MATCH]},
)
async def toggle_task_completion(
    owner: CallerId,
    task_id: TaskId,
    request: Request,
    completion: Annotated[TaskCompletion | None, Body()] = None,
) -> Response:
    """Without a body the state flips; `{"completed": true|false}` sets it (idempotent)."""
    database = database_of(request)
    if completion is not None and completion.completed is not None:
        return await _update(database, owner, task_id, {"completed": completion.completed}, request)
    write = task_queries.toggle_task(
        database, owner=owner, task_id=task_id, if_version_in=_if_match(request, task_id)
    )
    return _task_response(
        _found(await _checking_version(write, task_id, request), task_id), request
    )


NO_REMINDER: dict[int | str, dict[str, Any]] = {
    409: {
        "model": Problem,
        "description": "The task has no reminder.",
        "content": {
            "application/json": {
                "examples": {
                    "no-reminder": problem_example(NoReminderError(1), "The task has no reminder")
                }
            }
        },
    }
}


@router.post(
    "/{task_id:task_id}/reminder/ack",
    operation_id="acknowledge_reminder",
    summary="Acknowledge a task's reminder",
    response_model=TaskPublic,
    responses={200: {"headers": TASK_ETAG}, **problem_responses(404), **NO_REMINDER},
)
async def acknowledge_reminder(owner: CallerId, task_id: TaskId, request: Request) -> Response:
    """It is no longer listed by GET /api/{user_id}/reminders, until the reminder is set again
    or the due moves. Acknowledging it again changes nothing."""
    database = database_of(request)
    try:
        task = await task_queries.acknowledge_reminder(database, owner=owner, task_id=task_id)
    except task_queries.NoReminderError:
        raise NoReminderError(task_id) from None
    return _task_response(_found(task, task_id), request)
