"""The task endpoints: thin translation between HTTP and `todo_api.db.tasks`."""

from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Path, Query, Request, Response, status
from pydantic_core import to_json
from starlette.convertors import Convertor, register_url_convertor

from todo_api.api.caller import CallerId
from todo_api.api.dependencies import (
    EngineDep,
    reject_repeated_query_parameters,
    require_json_body,
)
from todo_api.api.problems import TaskNotFoundError, problem_responses
from todo_api.api.schemas import (
    BulkCompletion,
    BulkDeleteResult,
    BulkUpdateResult,
    TaskCompletion,
    TaskCreate,
    TaskPublic,
    TaskReplace,
    TaskStats,
    TaskUpdate,
)
from todo_api.db import tasks as task_queries
from todo_api.db.tasks import TaskRecord, TaskSort, TaskStatus

MAX_PAGE_SIZE = 200
DEFAULT_PAGE_SIZE = 100
MAX_BIGINT = 2**63 - 1
SEARCH_MAX_LENGTH = 200

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
)
# Operations that take a JSON body: its size and media type can be wrong too.
JSON_BODY = [Depends(require_json_body)]
BODY_PROBLEMS = problem_responses(400, 413, 415)


def _json(content: Any, status_code: int = 200, headers: dict[str, str] | None = None) -> Response:
    # Records come from the database already valid: they are encoded as they are, not
    # validated again through the response model (which documents them).
    return Response(to_json(content), status_code, headers, media_type="application/json")


def _found(task: TaskRecord | None, task_id: int) -> Response:
    if task is None:
        raise TaskNotFoundError(task_id)
    return _json(task)


def _header(description: str) -> dict[str, Any]:
    return {"description": description, "schema": {"type": "string"}}


@router.get(
    "",
    operation_id="list_tasks",
    # The only operation with query parameters.
    dependencies=[Depends(reject_repeated_query_parameters)],
    summary="List the caller's tasks",
    response_model=list[TaskPublic],
    responses={
        200: {
            "description": "One page of tasks.",
            "headers": {
                "X-Total-Count": {
                    "description": "How many tasks match the filter, over all pages.",
                    "schema": {"type": "integer"},
                },
                "Link": _header('RFC 8288 links to the `rel="next"` and `rel="prev"` pages.'),
            },
        }
    },
)
async def list_tasks(
    owner: CallerId,
    engine: EngineDep,
    request: Request,
    status: Annotated[TaskStatus, Query(description="Which tasks to include.")] = TaskStatus.ALL,
    sort: Annotated[
        TaskSort, Query(description="Sort key; a leading `-` means descending. Ties go by id.")
    ] = TaskSort.NEWEST,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE, description="Page size.")] = (
        DEFAULT_PAGE_SIZE
    ),
    offset: Annotated[int, Query(ge=0, le=MAX_BIGINT, description="Tasks to skip.")] = 0,
    q: Annotated[
        str | None,
        Query(
            min_length=1,
            max_length=SEARCH_MAX_LENGTH,
            pattern=r"^[^\x00-\x1f\x7f]+$",
            description="Only tasks whose title or description contains this text, "
            "ignoring case; `%` and `_` match themselves.",
        ),
    ] = None,
) -> Response:
    """Newest first by default, paginated with `limit` and `offset`."""
    page = await task_queries.list_tasks(
        engine, owner=owner, status=status, sort=sort, limit=limit, offset=offset, search=q
    )
    links = []
    if offset + limit < page.total:
        next_url = request.url.include_query_params(offset=offset + limit, limit=limit)
        links.append(f'<{next_url}>; rel="next"')
    if offset > 0:
        prev_offset = max(min(offset, page.total) - limit, 0)
        prev_url = request.url.include_query_params(offset=prev_offset, limit=limit)
        links.append(f'<{prev_url}>; rel="prev"')
    headers = {"X-Total-Count": str(page.total)}
    if links:
        headers["Link"] = ", ".join(links)
    return _json(page.tasks, headers=headers)


@router.post(
    "",
    operation_id="create_task",
    summary="Create a task",
    status_code=status.HTTP_201_CREATED,
    response_model=TaskPublic,
    dependencies=JSON_BODY,
    responses={201: {"headers": {"Location": _header("URL of the new task.")}}, **BODY_PROBLEMS},
)
async def create_task(
    owner: CallerId, engine: EngineDep, task_in: TaskCreate, request: Request
) -> Response:
    """The title is trimmed; `completed` defaults to false."""
    task = await task_queries.create_task(
        engine,
        owner=owner,
        title=task_in.title,
        description=task_in.description,
        completed=task_in.completed,
    )
    location = request.url_for("read_task", user_id=owner, task_id=str(task["id"]))
    return _json(task, status.HTTP_201_CREATED, {"Location": str(location)})


@router.get(
    f"/{STATS}",
    operation_id="get_task_stats",
    summary="Count the caller's tasks",
    response_model=TaskStats,
)
async def get_task_stats(owner: CallerId, engine: EngineDep) -> Response:
    """Total, pending and completed, from one query."""
    counts = await task_queries.count_tasks(engine, owner=owner)
    return _json({"total": counts.total, "pending": counts.pending, "completed": counts.completed})


@router.post(
    f"/{COMPLETE_ALL}",
    operation_id="complete_all_tasks",
    summary="Set every task of the caller to completed or pending",
    response_model=BulkUpdateResult,
    dependencies=JSON_BODY,
    responses=BODY_PROBLEMS,
)
async def complete_all_tasks(
    owner: CallerId, engine: EngineDep, completion: BulkCompletion
) -> Response:
    """One statement; `updated` counts the tasks whose state changed."""
    updated = await task_queries.set_all_completed(
        engine, owner=owner, completed=completion.completed
    )
    return _json({"updated": updated})


@router.delete(
    f"/{COMPLETED}",
    operation_id="delete_completed_tasks",
    summary="Delete the caller's completed tasks",
    response_model=BulkDeleteResult,
)
async def delete_completed_tasks(owner: CallerId, engine: EngineDep) -> Response:
    """One statement; pending tasks stay."""
    return _json({"deleted": await task_queries.delete_completed(engine, owner=owner)})


@router.get(
    "/{task_id:task_id}",
    operation_id="read_task",
    summary="Read one task",
    response_model=TaskPublic,
    responses=problem_responses(404),
)
async def read_task(owner: CallerId, engine: EngineDep, task_id: TaskId) -> Response:
    return _found(await task_queries.get_task(engine, owner=owner, task_id=task_id), task_id)


@router.put(
    "/{task_id:task_id}",
    operation_id="replace_task",
    summary="Replace a task",
    response_model=TaskPublic,
    dependencies=JSON_BODY,
    responses={**problem_responses(404), **BODY_PROBLEMS},
)
async def replace_task(
    owner: CallerId, engine: EngineDep, task_id: TaskId, task_in: TaskReplace
) -> Response:
    """An absent `description` becomes null; an absent `completed` is left as it is."""
    task = await task_queries.update_task(
        engine, owner=owner, task_id=task_id, changes=task_in.changes()
    )
    return _found(task, task_id)


@router.patch(
    "/{task_id:task_id}",
    operation_id="update_task",
    summary="Update some fields of a task",
    response_model=TaskPublic,
    dependencies=JSON_BODY,
    responses={**problem_responses(404), **BODY_PROBLEMS},
)
async def update_task(
    owner: CallerId, engine: EngineDep, task_id: TaskId, task_in: TaskUpdate
) -> Response:
    """Only the fields present change; `description: null` clears the description."""
    task = await task_queries.update_task(
        engine, owner=owner, task_id=task_id, changes=task_in.changes()
    )
    return _found(task, task_id)


@router.delete(
    "/{task_id:task_id}",
    operation_id="delete_task",
    summary="Delete a task",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses=problem_responses(404),
)
async def delete_task(owner: CallerId, engine: EngineDep, task_id: TaskId) -> Response:
    if not await task_queries.delete_task(engine, owner=owner, task_id=task_id):
        raise TaskNotFoundError(task_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.patch(
    "/{task_id:task_id}/complete",
    operation_id="toggle_task_completion",
    summary="Toggle or set a task's completion",
    response_model=TaskPublic,
    dependencies=JSON_BODY,
    responses={**problem_responses(404), **BODY_PROBLEMS},
)
async def toggle_task_completion(
    owner: CallerId,
    engine: EngineDep,
    task_id: TaskId,
    completion: Annotated[TaskCompletion | None, Body()] = None,
) -> Response:
    """Without a body the state flips; `{"completed": true|false}` sets it (idempotent)."""
    if completion is None or completion.completed is None:
        task = await task_queries.toggle_task(engine, owner=owner, task_id=task_id)
    else:
        task = await task_queries.update_task(
            engine, owner=owner, task_id=task_id, changes={"completed": completion.completed}
        )
    return _found(task, task_id)
