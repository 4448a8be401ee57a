"""The MCP tools: what an AI assistant may do with the caller's tasks.

Each tool goes through the same data layer and the same validation as the REST routes; who
it acts for is decided by `todo_api.api.caller.tool_caller`, from the verified token when
there is one. A failure is a tool error result with a sentence a model can act on, never a
protocol error, a traceback or another user's data.
"""

import logging
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from functools import wraps
from typing import Annotated, Any, Literal, ParamSpec, TypeVar
from zoneinfo import ZoneInfo

from mcp.server._otel import OpenTelemetryMiddleware
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError, UnexpectedToolError
from mcp.server.mcpserver.tools import Tool
from mcp_types import CallToolResult, InputRequiredResult, TextContent, ToolAnnotations
from pydantic import BaseModel, Field, ValidationError
from pydantic_core import to_json

from todo_api import __version__
from todo_api.api.caller import ToolCallerError, tool_caller
from todo_api.api.conditional import public_task
from todo_api.api.idempotency import VALID_KEY, request_fingerprint
from todo_api.api.list_query import MAX_BIGINT, TaskListQuery, list_page
from todo_api.api.middleware.request_log import current_request_id
from todo_api.api.problems import RETRY_AFTER_SECONDS
from todo_api.api.schemas import TaskCreate, TaskPublic, TaskStats, TaskUpdate
from todo_api.db import database as db_errors
from todo_api.db import idempotency
from todo_api.db import tasks as task_queries
from todo_api.db.database import Database
from todo_api.db.models import IDEMPOTENCY_KEY_MAX_LENGTH
from todo_api.db.recurrence import RecurrenceError
from todo_api.db.reminders import ReminderError
from todo_api.db.tasks import TaskSort

logger = logging.getLogger("todo_api.mcp")

_P = ParamSpec("_P")
_R = TypeVar("_R")

INSTRUCTIONS = (
    "Manage the signed-in user's tasks (a todo list). Use list_tasks to find task ids before "
    "changing a task; ids are numbers. Dates are YYYY-MM-DD; instants are ISO 8601 with an "
    "offset. When the user speaks of 'today' or 'overdue', pass their IANA time zone as tz."
)
DEFAULT_LIST_LIMIT = 50

UserId = Annotated[
    str | None,
    Field(
        description="The user whose tasks these are. With sign-in it may be omitted (the "
        "signed-in user is used) and must otherwise be that user; without sign-in it is "
        "required."
    ),
]
TaskIdArg = Annotated[
    int, Field(ge=1, le=MAX_BIGINT, description="The task's id, as list_tasks shows it.")
]
Priority = Literal["low", "medium", "high"]
RecurrenceArg = Annotated[
    dict[str, Any] | None,
    Field(
        description="Makes the task repeat (it needs due_date or due_at): completing it "
        'creates the next one. {"frequency": "daily"|"weekly"|"monthly"|"yearly", '
        '"interval": 1-365, "days_of_week": ["mo", ..., "su"] (weekly), "month_day": 1-31 '
        'or -1 for the last day (monthly, yearly), "ends": {"count": n} or {"until": '
        '"YYYY-MM-DD"}, "from": "due"|"completion", "tz": IANA zone}; only frequency is '
        "required."
    ),
]
ReminderArg = Annotated[
    dict[str, Any] | None,
    Field(
        description='When to remind the user: {"at": "ISO 8601 instant with an offset"}, or '
        '{"minutes_before": 0-40320} the due (it moves with the due; for a due_date add "tz", '
        "the user's IANA zone). due_reminders lists the reminders whose time has come."
    ),
]
TimeZoneArg = Annotated[
    str,
    Field(description="IANA time zone for dates and 'today', such as Europe/Paris."),
]


class TaskChange(BaseModel):
    """What a change did to one task."""

    task_id: int
    status: Literal["created", "completed", "reopened", "updated", "deleted"]
    title: str


def _answer(structured: Any, text: Any = None) -> CallToolResult:
    """A tool's result: `structured` (checked by the SDK against the tool's output schema)
    and, for clients that read only text, the same JSON as REST sends it (`text`, where the
    output schema wraps a list as {"result": [...]}, is the bare list).

    Built here rather than left to the SDK, which validates a returned model, dumps it, and
    writes its text again, list items one by one: for a read that was a fifth of the call.
    """
    payload = structured if text is None else text
    return CallToolResult(
        content=[TextContent(type="text", text=to_json(payload).decode())],
        structured_content=structured,
    )


def _changed(task_id: int, status: str, title: str) -> CallToolResult:
    return _answer({"task_id": task_id, "status": status, "title": title})


def _invalid(error: ValidationError) -> ToolError:
    """Each bad argument and why, by the REST rules; never the value that was sent."""
    reasons = "; ".join(
        f"{'.'.join(str(part) for part in item['loc']) or 'arguments'}: {item['msg']}"
        for item in error.errors(include_input=False, include_url=False)
    )
    return ToolError(f"invalid arguments: {reasons}")


_Model = TypeVar("_Model", bound=BaseModel)


def _validated(model: type[_Model], arguments: dict[str, Any]) -> _Model:
    """The arguments given (those not None) as `model` validates them, like a REST body or
    query; else a ToolError naming each bad one."""
    try:
        return model.model_validate(
            {name: value for name, value in arguments.items() if value is not None}
        )
    except ValidationError as invalid:
        raise _invalid(invalid) from None


def _not_found(task_id: int) -> ToolError:
    return ToolError(f"no task {task_id} for this user; call list_tasks to see ids")


class TaskTools:
    """The tools, bound to one app's database."""

    def __init__(self, database: Database, *, signed_in: bool) -> None:
        self.database = database
        self.signed_in = signed_in

    def _owner(self, context: Context, user_id: str | None) -> str:
        request = context.request_context.request
        verified = None if request is None else getattr(request.state, "caller", None)
        try:
            return tool_caller(verified, user_id, signed_in=self.signed_in)
        except ToolCallerError as refused:
            raise ToolError(str(refused)) from None

    async def add_task(
        self,
        ctx: Context,
        title: Annotated[str, Field(description="What to do, 1-200 characters.")],
        description: Annotated[str | None, Field(description="Details, optional.")] = None,
        priority: Annotated[Priority | None, Field(description="Default medium.")] = None,
        due_date: Annotated[
            str | None, Field(description="Due day, YYYY-MM-DD (or give due_at).")
        ] = None,
        due_at: Annotated[
            str | None, Field(description="Due instant, ISO 8601 with an offset.")
        ] = None,
        tags: Annotated[list[str] | None, Field(description="Labels such as work.")] = None,
        recurrence: RecurrenceArg = None,
        reminder: ReminderArg = None,
        request_id: Annotated[
            str | None,
            Field(
                description="Any id for this request (a UUID, say): calling again with the "
                "same one and the same arguments makes no second task."
            ),
        ] = None,
        user_id: UserId = None,
    ) -> Annotated[CallToolResult, TaskChange]:
        """Create a task for the user. Returns its id, to use with the other tools."""
        owner = self._owner(ctx, user_id)
        fields = {
            "title": title,
            "description": description,
            "priority": priority,
            "due_date": due_date,
            "due_at": due_at,
            "tags": tags,
            "recurrence": recurrence,
            "reminder": reminder,
        }
        new_task = _validated(TaskCreate, fields).new_task()
        if request_id is None:
            task = await task_queries.create_task(self.database, owner=owner, task=new_task)
            return _changed(task.id, "created", task.title)
        if VALID_KEY.fullmatch(request_id) is None:
            raise ToolError(
                f"invalid arguments: request_id: 1 to {IDEMPOTENCY_KEY_MAX_LENGTH} visible "
                "ASCII characters"
            )
        try:
            keyed = await idempotency.create_task_once(
                self.database,
                owner=owner,
                key=request_id,
                fingerprint=request_fingerprint(to_json(fields)),
                task=new_task,
            )
        except idempotency.KeyInFlightError:
            raise ToolError(
                "a call with this request_id is still running; call again in a second to "
                "get its result"
            ) from None
        except idempotency.KeyReusedError:
            raise ToolError(
                "request_id was already used with other arguments; use a new request_id "
                "for a new task"
            ) from None
        return _changed(keyed.task.id, "created", keyed.task.title)

    async def list_tasks(
        self,
        ctx: Context,
        status: Annotated[
            Literal["all", "pending", "completed"], Field(description="Which tasks.")
        ] = "all",
        q: Annotated[
            str | None, Field(description="Only tasks whose title or description has this.")
        ] = None,
        priority: Annotated[list[Priority] | None, Field(description="Only these.")] = None,
        tags: Annotated[
            list[str] | None, Field(description="Only tasks carrying all of these tags.")
        ] = None,
        due_from: Annotated[str | None, Field(description="Due on or after, YYYY-MM-DD.")] = None,
        due_to: Annotated[str | None, Field(description="Due on or before, YYYY-MM-DD.")] = None,
        overdue: Annotated[
            bool | None, Field(description="true: only pending tasks past due.")
        ] = None,
        recurring: Annotated[
            bool | None, Field(description="true: only repeating tasks; false: the others.")
        ] = None,
        sort: Annotated[
            TaskSort, Field(description="Order; a leading - is descending.")
        ] = TaskSort.NEWEST,
        limit: Annotated[int, Field(ge=1, le=100, description="At most this many.")] = (
            DEFAULT_LIST_LIMIT
        ),
        tz: TimeZoneArg = "UTC",
        user_id: UserId = None,
    ) -> Annotated[CallToolResult, list[TaskPublic]]:
        """List the user's tasks (the newest 50 unless limit says otherwise), with filters.
        Use it to find a task's id from its title."""
        owner = self._owner(ctx, user_id)
        arguments: dict[str, Any] = {
            "status": status,
            "q": q,
            "priority": None if priority is None else ",".join(priority),
            "tags": None if tags is None else ",".join(tags),
            "due_from": due_from,
            "due_to": due_to,
            "overdue": overdue,
            "recurring": recurring,
            "sort": sort,
            "limit": limit,
            "tz": tz,
        }
        query = _validated(TaskListQuery, arguments)
        page = await list_page(self.database, owner, query)
        tasks = [public_task(task) for task in page.tasks]
        return _answer({"result": tasks}, tasks)

    async def get_task(
        self, ctx: Context, task_id: TaskIdArg, user_id: UserId = None
    ) -> Annotated[CallToolResult, TaskPublic]:
        """Read one task of the user, with every field."""
        owner = self._owner(ctx, user_id)
        task = await task_queries.get_task(self.database, owner=owner, task_id=task_id)
        if task is None:
            raise _not_found(task_id)
        return _answer(public_task(task))

    async def _set_completed(
        self, ctx: Context, task_id: int, user_id: str | None, completed: bool
    ) -> Annotated[CallToolResult, TaskChange]:
        owner = self._owner(ctx, user_id)
        task = await task_queries.update_task(
            self.database, owner=owner, task_id=task_id, changes={"completed": completed}
        )
        if task is None:
            raise _not_found(task_id)
        status: Literal["completed", "reopened"] = "completed" if completed else "reopened"
        return _changed(task_id, status, task.title)

    async def complete_task(
        self, ctx: Context, task_id: TaskIdArg, user_id: UserId = None
    ) -> Annotated[CallToolResult, TaskChange]:
        """Mark a task done. Calling it again on a done task changes nothing."""
        return await self._set_completed(ctx, task_id, user_id, True)

    async def reopen_task(
        self, ctx: Context, task_id: TaskIdArg, user_id: UserId = None
    ) -> Annotated[CallToolResult, TaskChange]:
        """Mark a done task as not done again. Calling it again changes nothing."""
        return await self._set_completed(ctx, task_id, user_id, False)

    async def update_task(
        self,
        ctx: Context,
        task_id: TaskIdArg,
        title: Annotated[str | None, Field(description="New title.")] = None,
        description: Annotated[str | None, Field(description="New details.")] = None,
        priority: Annotated[Priority | None, Field(description="New priority.")] = None,
        due_date: Annotated[str | None, Field(description="New due day, YYYY-MM-DD.")] = None,
        due_at: Annotated[str | None, Field(description="New due instant, ISO 8601.")] = None,
        tags: Annotated[
            list[str] | None, Field(description="The new list of tags ([] removes all).")
        ] = None,
        recurrence: RecurrenceArg = None,
        reminder: ReminderArg = None,
        user_id: UserId = None,
    ) -> Annotated[CallToolResult, TaskChange]:
        """Change some fields of a task; the fields left out stay as they are."""
        owner = self._owner(ctx, user_id)
        fields = {
            "title": title,
            "description": description,
            "priority": priority,
            "due_date": due_date,
            "due_at": due_at,
            "tags": tags,
            "recurrence": recurrence,
            "reminder": reminder,
        }
        changes = _validated(TaskUpdate, fields).changes()
        task = await task_queries.update_task(
            self.database, owner=owner, task_id=task_id, changes=changes
        )
        if task is None:
            raise _not_found(task_id)
        return _changed(task_id, "updated", task.title)

    async def delete_task(
        self, ctx: Context, task_id: TaskIdArg, user_id: UserId = None
    ) -> Annotated[CallToolResult, TaskChange]:
        """Delete a task for good."""
        owner = self._owner(ctx, user_id)
        title = await task_queries.delete_task(self.database, owner=owner, task_id=task_id)
        if title is None:
            raise ToolError(
                f"no task {task_id} for this user: it was deleted already or never existed; "
                "call list_tasks to see ids"
            )
        return _changed(task_id, "deleted", title)

    async def task_stats(
        self, ctx: Context, tz: TimeZoneArg = "UTC", user_id: UserId = None
    ) -> Annotated[CallToolResult, TaskStats]:
        """Count the user's tasks: total, pending, completed, overdue and due today (in tz)."""
        owner = self._owner(ctx, user_id)
        zone = ZoneInfo(_validated(TaskListQuery, {"tz": tz}).tz)
        counts = await task_queries.count_tasks(self.database, owner=owner, zone=zone)
        stats = TaskStats(
            total=counts.total,
            pending=counts.pending,
            completed=counts.completed,
            overdue=counts.overdue,
            due_today=counts.due_today,
        )
        return _answer(stats.model_dump())

    async def due_reminders(
        self,
        ctx: Context,
        limit: Annotated[int, Field(ge=1, le=100, description="At most this many.")] = (
            DEFAULT_LIST_LIMIT
        ),
        user_id: UserId = None,
    ) -> Annotated[CallToolResult, list[TaskPublic]]:
        """List the user's tasks whose reminder time has come (oldest first), not yet
        acknowledged (completing a task acknowledges it): what to remind the user of now."""
        owner = self._owner(ctx, user_id)
        page = await task_queries.due_reminders(
            self.database, owner=owner, until=datetime.now(UTC), limit=limit
        )
        tasks = [public_task(task) for task in page.tasks]
        return _answer({"result": tasks}, tasks)

    async def acknowledge_reminder(
        self, ctx: Context, task_id: TaskIdArg, user_id: UserId = None
    ) -> Annotated[CallToolResult, TaskPublic]:
        """Mark a task's reminder as seen once the user has been told, so due_reminders no
        longer lists it. Calling it again changes nothing."""
        owner = self._owner(ctx, user_id)
        try:
            task = await task_queries.acknowledge_reminder(
                self.database, owner=owner, task_id=task_id
            )
        except task_queries.NoReminderError:
            raise ToolError(f"task {task_id} has no reminder") from None
        if task is None:
            raise _not_found(task_id)
        return _answer(public_task(task))


def _outages_answered(call: Callable[_P, Awaitable[_R]]) -> Callable[_P, Awaitable[_R]]:
    """A database that is away, or not as this code needs it, becomes an error result that
    says so (and when to retry), as the REST API's 503s do; a rule that does not fit the
    task's due, found where the due is known, an invalid-arguments result."""

    @wraps(call)
    async def answered(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        try:
            return await call(*args, **kwargs)
        except RecurrenceError as unfit:
            raise ToolError(f"invalid arguments: recurrence: {unfit}") from None
        except ReminderError as unfit:
            raise ToolError(f"invalid arguments: reminder: {unfit}") from None
        except db_errors.DatabaseSchemaError:
            raise ToolError("the task service is not set up yet (its schema is behind)") from None
        except db_errors.DatabaseMisconfiguredError:
            raise ToolError("the task service cannot reach its database as configured") from None
        except db_errors.DatabaseError:
            raise ToolError(
                f"the task service is temporarily unavailable; retry in {RETRY_AFTER_SECONDS} s"
            ) from None

    return answered


_READ_ONLY = ToolAnnotations(readOnlyHint=True, idempotentHint=True)
_IDEMPOTENT = ToolAnnotations(readOnlyHint=False, idempotentHint=True, destructiveHint=False)


class _TaskServer(MCPServer):
    tool_names: frozenset[str] = frozenset()

    async def call_tool(
        self, name: str, arguments: dict[str, Any], context: Context[Any, Any] | None = None
    ) -> CallToolResult | InputRequiredResult:
        """As MCPServer's, but an error says only what is wrong, and arguments of the wrong
        type as the REST API says them, each field and why, never the value (the SDK's
        message quotes it)."""
        started = time.perf_counter()
        outcome = "error"
        try:
            result = await super().call_tool(name, arguments, context)
            outcome = "ok"
        except UnexpectedToolError:
            raise  # a bug: the SDK logs it and answers a generic error
        except ToolError as failed:
            if isinstance(failed.__cause__, ValidationError):
                raise _invalid(failed.__cause__) from None
            # Without the SDK's "Error executing tool <name>: ", which the caller knows.
            raise ToolError(str(failed).removeprefix(f"Error executing tool {name}: ")) from None
        finally:
            # One line per call, whatever its outcome; never its arguments or task text.
            logger.info(
                "MCP tool %s %s %.1fms request_id=%s",
                name if name in self.tool_names else "(unknown tool)",
                outcome,
                (time.perf_counter() - started) * 1000,
                current_request_id.get(),
            )
        return result


def build_mcp_server(database: Database, *, signed_in: bool) -> MCPServer:
    """An MCP server whose tools act on `database` for the caller of each request;
    `signed_in`: every request carries a verified token (AUTH_MODE=jwt)."""
    task_tools = TaskTools(database, signed_in=signed_in)
    annotations: dict[str, ToolAnnotations | None] = {
        "add_task": None,
        "list_tasks": _READ_ONLY,
        "get_task": _READ_ONLY,
        "complete_task": _IDEMPOTENT,
        "reopen_task": _IDEMPOTENT,
        "update_task": _IDEMPOTENT,
        "delete_task": ToolAnnotations(destructiveHint=True, idempotentHint=True),
        "task_stats": _READ_ONLY,
        "due_reminders": _READ_ONLY,
        "acknowledge_reminder": _IDEMPOTENT,
    }
    tools = [
        Tool.from_function(
            _outages_answered(getattr(task_tools, name)),
            name=name,
            annotations=hints,
            structured_output=True,
        )
        for name, hints in annotations.items()
    ]
    for tool in tools:
        # Results are built from what the database holds, as the REST answers are, and are
        # not validated again on every call: the SDK publishes the schema, and validates
        # only against a model it is given (its FuncMetadata). MCP clients validate them
        # against the schema; tests/test_mcp.py does, with the SDK's client.
        tool.fn_metadata.output_model = None
    server = _TaskServer(
        "todo-api", title="Todo API", instructions=INSTRUCTIONS, version=__version__, tools=tools
    )
    server.tool_names = frozenset(annotations)
    # The SDK opens an OpenTelemetry span for every message, a no-op without an exporter,
    # which this service does not install; it still cost about 5% of a tool call. The SDK
    # documents dropping it from the chain to opt out.
    server.middleware[:] = [
        step for step in server.middleware if not isinstance(step, OpenTelemetryMiddleware)
    ]
    return server
