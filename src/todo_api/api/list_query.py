"""The list's query parameters: one model, validated in one call.

FastAPI validates each declared query parameter on its own, about 8 µs apiece on this
machine even when it is absent; with the twelve of the list that was a tenth of a listing's
time. Here they are one `TaskListQuery` validated at once, and `todo_api.api.openapi`
publishes them as FastAPI would have.
"""

from typing import Annotated
from zoneinfo import ZoneInfo

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError
from pydantic_core import PydanticCustomError

from todo_api.api.dependencies import reject_repeated_query_parameters
from todo_api.api.schemas import (
    TAG_LIST_PATTERN,
    TIME_ZONE_MAX_LENGTH,
    TaskDueDate,
    TimeZoneName,
    tag,
)
from todo_api.db import tasks as task_queries
from todo_api.db.database import Database
from todo_api.db.models import TAGS_MAX_COUNT
from todo_api.db.tasks import TaskPage, TaskSort, TaskStatus

MAX_PAGE_SIZE = 200
DEFAULT_PAGE_SIZE = 100
MAX_BIGINT = 2**63 - 1
SEARCH_MAX_LENGTH = 200
TIME_ZONE_DESCRIPTION = (
    "An IANA time zone (`Europe/Paris`): what `today`, a date range and an all-day task's end "
    "mean for this request."
)

_PRIORITY = "(?:low|medium|high)"
PRIORITY_LIST_PATTERN = rf"^{_PRIORITY}(?:,{_PRIORITY})*$"


def _tag_list(value: str) -> str:
    """The tags of `?tags=`, each trimmed, still separated by commas."""
    names = value.split(",")
    if len(names) > TAGS_MAX_COUNT:
        raise PydanticCustomError(
            "too_many_tags", "At most {limit} tags", {"limit": TAGS_MAX_COUNT}
        )
    return ",".join(tag(name) for name in names)


class TaskListQuery(BaseModel):
    """What `GET /api/{user_id}/tasks` takes after the `?`; other names are ignored."""

    model_config = ConfigDict(extra="ignore")

    status: Annotated[TaskStatus, Field(description="Which tasks to include.")] = TaskStatus.ALL
    sort: Annotated[
        TaskSort, Field(description="Sort key; a leading `-` means descending. Ties go by id.")
    ] = TaskSort.NEWEST
    limit: Annotated[int, Field(ge=1, le=MAX_PAGE_SIZE, description="Page size.")] = (
        DEFAULT_PAGE_SIZE
    )
    offset: Annotated[int, Field(ge=0, le=MAX_BIGINT, description="Tasks to skip.")] = 0
    q: Annotated[
        str | None,
        Field(
            min_length=1,
            max_length=SEARCH_MAX_LENGTH,
            pattern=r"^[^\x00-\x1f\x7f]+$",
            description="Only tasks whose title or description contains this text, "
            "ignoring case; `%` and `_` match themselves.",
        ),
    ] = None
    priority: Annotated[
        str | None,
        Field(
            pattern=PRIORITY_LIST_PATTERN,
            description="Only tasks of these priorities: one of `low`, `medium`, `high`, or "
            "several separated by commas (`high,medium`).",
            examples=["high"],
        ),
    ] = None
    tz: Annotated[
        TimeZoneName,
        Field(
            max_length=TIME_ZONE_MAX_LENGTH,
            description=TIME_ZONE_DESCRIPTION,
            examples=["Europe/Paris"],
        ),
    ] = "UTC"
    due_from: Annotated[
        TaskDueDate | None,
        Field(description="Only tasks due on this day or later (`YYYY-MM-DD`, in `tz`)."),
    ] = None
    due_to: Annotated[
        TaskDueDate | None,
        Field(description="Only tasks due on this day or earlier (`YYYY-MM-DD`, in `tz`)."),
    ] = None
    overdue: Annotated[
        bool | None,
        Field(
            description="`true`: only pending tasks past due (a day that has ended in `tz`, "
            "or an instant that has passed); `false`: all others."
        ),
    ] = None
    has_due: Annotated[
        bool | None, Field(description="`true`: only tasks with a due; `false`: without.")
    ] = None
    recurring: Annotated[
        bool | None,
        Field(description="`true`: only tasks that repeat (`recurrence`); `false`: the others."),
    ] = None
    tags: Annotated[
        Annotated[str, AfterValidator(_tag_list)] | None,
        Field(
            # Checked by _tag_list, whose messages say what is wrong.
            json_schema_extra={"pattern": TAG_LIST_PATTERN},
            description="Only tasks that carry every one of these tags (up to 20, separated "
            "by commas), ignoring case.",
            examples=["work,errands"],
        ),
    ] = None


async def list_query(request: Request) -> TaskListQuery:
    """The query, or 422 with an error per bad parameter (located under `query`)."""
    await reject_repeated_query_parameters(request)
    try:
        return TaskListQuery.model_validate(dict(request.query_params))
    except ValidationError as invalid:
        raise RequestValidationError(
            [
                {**error, "loc": ("query", *error["loc"])}
                for error in invalid.errors(include_url=False)
            ]
        ) from None


async def list_page(database: Database, owner: str, query: TaskListQuery) -> TaskPage:
    """The owner's page of tasks that `query` asks for: a task is listed if it passes every
    filter given."""
    return await task_queries.list_tasks(
        database,
        owner=owner,
        status=query.status,
        sort=query.sort,
        limit=query.limit,
        offset=query.offset,
        search=query.q,
        priorities=() if query.priority is None else query.priority.split(","),
        due=task_queries.DueQuery(
            zone=ZoneInfo(query.tz),
            has_due=query.has_due,
            due_from=query.due_from,
            due_to=query.due_to,
            overdue=query.overdue,
        ),
        tags=() if query.tags is None else query.tags.split(","),
        recurring=query.recurring,
    )
