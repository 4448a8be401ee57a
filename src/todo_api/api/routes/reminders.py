"""The caller's reminders whose time has come."""

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response

from todo_api.api.authorized_route import AuthorizedRoute
from todo_api.api.caller import CallerId
from todo_api.api.conditional import public_task
from todo_api.api.dependencies import database_of
from todo_api.api.json_encoding import to_json
from todo_api.api.list_query import DEFAULT_PAGE_SIZE, MAX_BIGINT, MAX_PAGE_SIZE
from todo_api.api.problems import problem_responses
from todo_api.api.public_url import page_headers, page_headers_schema
from todo_api.api.schemas import TaskDueAt, TaskPublic
from todo_api.db import tasks as task_queries

router = APIRouter(
    prefix="/api/{user_id}/reminders",
    tags=["tasks"],
    responses=problem_responses(422, 503),
    route_class=AuthorizedRoute,
)


@router.get(
    "",
    operation_id="list_due_reminders",
    summary="List the caller's reminders whose time has come",
    response_model=list[TaskPublic],
    responses={
        200: {
            "description": "One page of tasks, the oldest reminder first.",
            "headers": page_headers_schema("reminders have come"),
        }
    },
)
async def list_due_reminders(
    owner: CallerId,
    request: Request,
    until: Annotated[
        TaskDueAt | None,
        Query(description="Reminders due by this instant (RFC 3339 with an offset); default now."),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE, description="Page size.")] = (
        DEFAULT_PAGE_SIZE
    ),
    offset: Annotated[int, Query(ge=0, le=MAX_BIGINT, description="Tasks to skip.")] = 0,
) -> Response:
    """The tasks whose reminder (`reminder.at`) has come and is not acknowledged (completing
    a task acknowledges it): what to show the user now. Acknowledge each with
    `POST /api/{user_id}/tasks/{task_id}/reminder/ack`, and it is not listed again."""
    database = database_of(request)
    page = await task_queries.due_reminders(
        database, owner=owner, until=until or datetime.now(UTC), limit=limit, offset=offset
    )
    headers = page_headers(request, "list_due_reminders", offset, limit, page.total)
    body = to_json([public_task(task) for task in page.tasks])
    return Response(body, headers=headers, media_type="application/json")
