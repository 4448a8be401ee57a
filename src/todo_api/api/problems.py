"""One error shape for every failure: RFC 9457 problem details as `application/problem+json`."""

import copy
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from todo_api.db import database
from todo_api.db.models import USER_ID_MAX_LENGTH
from todo_api.db.recurrence import RecurrenceError
from todo_api.db.reminders import ReminderError
from todo_api.settings import Settings

PROBLEM_MEDIA_TYPE = "application/problem+json"
RETRY_AFTER_SECONDS = 5

#: What a user id may be, in words: the 422 for a bad one says this, not the pattern.
USER_ID_RULE = (
    f"A user id is 1 to {USER_ID_MAX_LENGTH} of the characters A-Z a-z 0-9 _ - . : @ | "
    "(but . and .. alone are not user ids)"
)

_DEFAULT_DETAILS = {
    400: "The request body could not be read as UTF-8 JSON.",
    404: "Nothing exists at this URL.",
    405: "This method is not allowed on this URL; the Allow header lists those that are.",
}


class Problem(BaseModel):
    type: str = Field(default="about:blank", description="URI identifying the problem type.")
    title: str = Field(description="Short summary of the problem type.")
    status: int = Field(description="The HTTP status code.")
    detail: str = Field(description="What went wrong with this request, as a sentence.")


class FieldError(BaseModel):
    loc: list[str | int] = Field(description="Where the error is: body, query or path, then keys.")
    msg: str
    type: str


class ValidationProblem(Problem):
    errors: list[FieldError]


class ProblemResponse(JSONResponse):
    media_type = PROBLEM_MEDIA_TYPE


class ProblemError(Exception):
    """Raise to answer with a problem response."""

    def __init__(
        self,
        status: int,
        detail: str,
        *,
        type_: str = "about:blank",
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.type = type_
        self.headers = headers


class DatabaseUnavailableError(ProblemError):
    def __init__(
        self, detail: str = "The database is unavailable right now; retry shortly."
    ) -> None:
        super().__init__(
            503,
            detail,
            type_="urn:todo-api:database-unavailable",
            headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
        )


class DatabaseBusyError(DatabaseUnavailableError):
    """The database is up, but this request's work did not finish within its time limits."""

    def __init__(self) -> None:
        super().__init__(
            "The database could not finish this request in time; nothing was changed. "
            "Retry shortly."
        )


class DatabaseNoAnswerError(DatabaseUnavailableError):
    """A statement was sent and no answer came back in time: a write may have been made."""

    def __init__(self) -> None:
        super().__init__(
            "The database did not answer in time; a change this request asked for may or "
            "may not have been made. Retry shortly: with the same Idempotency-Key for a "
            "create, with If-Match for a change."
        )


class SchemaNotMigratedError(ProblemError):
    """The database's schema is not the one this code needs: only an operator can fix it."""

    def __init__(self, detail: str | None = None) -> None:
        super().__init__(
            503,
            detail
            or "The database schema is not migrated to what this version of the service "
            "needs; retrying will not help until an operator runs the migrations "
            "(`make migrate`).",
            type_="urn:todo-api:schema-not-migrated",
        )


class DatabaseMisconfiguredError(ProblemError):
    """The database refuses the service's configuration: only an operator can fix it."""

    def __init__(self) -> None:
        super().__init__(
            503,
            "The database refuses this service's configuration (its credentials, database "
            "name, TLS or connection settings); retrying will not help until an operator "
            "fixes it. The server's log says what was refused.",
            type_="urn:todo-api:database-misconfigured",
        )


class RequestCutOffError(DatabaseUnavailableError):
    """The server stopped (its shutdown grace period ended) before the request finished."""

    def __init__(self) -> None:
        super().__init__(
            "The server stopped before this request finished; a change it asked for may or "
            "may not have been made. Retry shortly: with the same Idempotency-Key for a "
            "create, with If-Match for a change."
        )
        self.type = "urn:todo-api:request-cut-off"


class TaskNotFoundError(ProblemError):
    """Also what a caller sees for another user's task: the two must be indistinguishable."""

    def __init__(self, task_id: int) -> None:
        super().__init__(404, f"Task {task_id} was not found.", type_="urn:todo-api:task-not-found")


class PreconditionFailedError(ProblemError):
    """If-Match named other versions; the current ETag goes back so the client can catch up."""

    def __init__(self, task_id: int, current_etag: str, *, unquoted: bool = False) -> None:
        if unquoted:
            detail = (
                "If-Match holds no entity tag: send the ETag exactly as it was given, double "
                f"quotes included (If-Match: {current_etag}); nothing was changed."
            )
        else:
            detail = (
                f"Task {task_id} has changed since the ETag in If-Match; nothing was changed. "
                "Read it again and retry."
            )
        super().__init__(
            412,
            detail,
            type_="urn:todo-api:precondition-failed",
            headers={"ETag": current_etag},
        )


class NoReminderError(ProblemError):
    def __init__(self, task_id: int) -> None:
        super().__init__(
            409,
            f"Task {task_id} has no reminder to acknowledge.",
            type_="urn:todo-api:no-reminder",
        )


class IdempotencyKeyInFlightError(ProblemError):
    def __init__(self) -> None:
        super().__init__(
            409,
            "A request with this Idempotency-Key is still in progress; retry shortly to get "
            "its response.",
            type_="urn:todo-api:idempotency-key-in-flight",
            headers={"Retry-After": "1"},
        )


def problem_response(
    status: int,
    detail: str,
    *,
    type_: str = "about:blank",
    headers: dict[str, str] | None = None,
    extra: dict[str, Any] | None = None,
) -> ProblemResponse:
    body = Problem(type=type_, title=HTTPStatus(status).phrase, status=status, detail=detail)
    return ProblemResponse(body.model_dump() | (extra or {}), status_code=status, headers=headers)


def _describe_location(loc: tuple[int | str, ...]) -> str:
    return ".".join(str(part) for part in loc) or "request"


async def _handle_validation_error(request: Request, exc: Exception) -> ProblemResponse:
    assert isinstance(exc, RequestValidationError)
    # Only loc, msg and type: the raw input and context could echo back bytes that cannot
    # even be encoded (a lone surrogate) or a secret the client sent by mistake.
    errors = [
        FieldError(loc=list(error["loc"]), msg=error["msg"], type=error["type"])
        for error in exc.errors()
    ]
    first = errors[0]
    if first.type == "json_invalid":
        detail = "The request body is not valid JSON."
    else:
        detail = f"{_describe_location(tuple(first.loc))}: {first.msg}."
    if len(errors) > 1:
        detail += f" ({len(errors) - 1} more in `errors`.)"
    return problem_response(
        422,
        detail,
        type_="urn:todo-api:validation-error",
        extra={"errors": [error.model_dump() for error in errors]},
    )


async def _handle_recurrence_error(request: Request, exc: Exception) -> ProblemResponse:
    """A rule or a reminder that does not fit the task's due, found where the due is known:
    a 422 at the body's `recurrence` or `reminder`, like any other validation error."""
    if isinstance(exc, RecurrenceError):
        loc = ("body", "recurrence", *((exc.field,) if exc.field else ()))
        error = {"loc": loc, "msg": exc.message, "type": "recurrence_invalid"}
    else:
        error = {"loc": ("body", "reminder"), "msg": str(exc), "type": "reminder_invalid"}
    return await _handle_validation_error(request, RequestValidationError([error]))


async def _handle_problem_error(request: Request, exc: Exception) -> ProblemResponse:
    assert isinstance(exc, ProblemError)
    return problem_response(exc.status, exc.detail, type_=exc.type, headers=exc.headers)


_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
# No route lists HEAD, but todo_api.api.middleware.head answers it wherever GET is.
_ROUTED_AS = {"HEAD": "GET"}


def _allowed_methods(request: Request) -> str:
    """Every method some route accepts on this path (Starlette names one route's only)."""
    routes = request.app.router.routes
    return ", ".join(
        method
        for method in _METHODS
        if any(
            route.matches({**request.scope, "method": _ROUTED_AS.get(method, method)})[0]
            is Match.FULL
            for route in routes
        )
    )


def _routed_without_slash(request: Request) -> bool:
    path: str = request.scope["path"]
    if path == "/" or not path.endswith("/"):
        return False
    without = {**request.scope, "path": path.rstrip("/")}
    return any(route.matches(without)[0] is not Match.NONE for route in request.app.router.routes)


async def _handle_http_exception(request: Request, exc: Exception) -> ProblemResponse:
    assert isinstance(exc, StarletteHTTPException)
    phrase = HTTPStatus(exc.status_code).phrase
    # Our own details are sentences; Starlette's and FastAPI's defaults are replaced.
    detail = exc.detail if isinstance(exc.detail, str) and exc.detail.endswith(".") else None
    if detail is None:
        detail = _DEFAULT_DETAILS.get(exc.status_code, f"{phrase}.")
    headers = dict(exc.headers or {})
    if exc.status_code == 405:
        headers["Allow"] = _allowed_methods(request)
    elif exc.status_code == 404 and exc.detail == "Not Found" and _routed_without_slash(request):
        detail = "Nothing exists at this URL, but it does without the trailing slash."
    return problem_response(exc.status_code, detail, headers=headers)


async def _handle_database_error(request: Request, exc: Exception) -> ProblemResponse:
    # No traceback: the data layer logged an outage once when it began, and a statement
    # timeout, a lock wait or a full pool is the database being busy, not a bug.
    if isinstance(exc, database.DatabaseSchemaError):
        problem: ProblemError = SchemaNotMigratedError()
    elif isinstance(exc, database.DatabaseMisconfiguredError):
        problem = DatabaseMisconfiguredError()
    elif isinstance(exc, database.DatabaseBusyError):
        problem = DatabaseBusyError()
    elif isinstance(exc, database.DatabaseUnavailableError) and exc.outcome_unknown:
        problem = DatabaseNoAnswerError()
    else:
        problem = DatabaseUnavailableError()
    return await _handle_problem_error(request, problem)


def install_problem_handlers(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, _handle_validation_error)
    app.add_exception_handler(ProblemError, _handle_problem_error)
    app.add_exception_handler(RecurrenceError, _handle_recurrence_error)
    app.add_exception_handler(ReminderError, _handle_recurrence_error)
    app.add_exception_handler(StarletteHTTPException, _handle_http_exception)
    # Any other error of the database is unexpected: see unexpected_errors.
    app.add_exception_handler(database.DatabaseError, _handle_database_error)


ExampleSet = dict[str, dict[str, Any]]
"""OpenAPI Example objects by name, as a media type's `examples` holds them."""


def problem_example(problem: ProblemError, summary: str) -> dict[str, Any]:
    """An OpenAPI Example object: the body that answers `problem`, as the handler sends it."""
    body = Problem(
        type=problem.type,
        title=HTTPStatus(problem.status).phrase,
        status=problem.status,
        detail=problem.detail,
    )
    return {"summary": summary, "value": body.model_dump()}


def validation_example(
    summary: str, loc: list[str | int], msg: str, error_type: str
) -> dict[str, Any]:
    """An OpenAPI Example object of a 422 with one error, as `_handle_validation_error` says it.

    The published document keeps it only on operations that have the input `loc` names
    (`todo_api.api.openapi`).
    """
    body = ValidationProblem(
        type="urn:todo-api:validation-error",
        title=HTTPStatus(422).phrase,
        status=422,
        detail=f"{_describe_location(tuple(loc))}: {msg}.",
        errors=[FieldError(loc=loc, msg=msg, type=error_type)],
    )
    return {"summary": summary, "value": body.model_dump()}


def retry_after_header(description: str) -> dict[str, Any]:
    return {
        "Retry-After": {"description": description, "schema": {"type": "integer", "minimum": 1}}
    }


_BODY_LIMIT_BYTES: int = Settings.model_fields["max_body_bytes"].default

# What the API sends for each status an operation declares, first the most common. The bodies
# come from the errors the handlers raise; tests/test_openapi.py provokes them and compares.
PROBLEM_EXAMPLES: dict[int, ExampleSet] = {
    400: {
        "not-utf8-json": problem_example(
            ProblemError(400, _DEFAULT_DETAILS[400]), "The body is not UTF-8 (UTF-16, say)"
        ),
    },
    404: {
        "task-not-found": problem_example(
            TaskNotFoundError(1), "No such task, or it belongs to another user"
        ),
    },
    409: {
        "idempotency-key-in-flight": problem_example(
            IdempotencyKeyInFlightError(), "The first request with this key is not done yet"
        ),
    },
    412: {
        "precondition-failed": problem_example(
            PreconditionFailedError(1, '"1.3"'), "The task changed since the client read it"
        ),
        "unquoted-etag": problem_example(
            PreconditionFailedError(1, '"1.3"', unquoted=True),
            "If-Match without the ETag's double quotes (`If-Match: 1.3`)",
        ),
    },
    413: {
        "body-too-large": problem_example(
            ProblemError(
                413, f"The request body is larger than the limit of {_BODY_LIMIT_BYTES} bytes."
            ),
            "Over MAX_BODY_BYTES (64 KiB unless configured)",
        ),
    },
    415: {
        "not-json": problem_example(
            ProblemError(
                415,
                "The request body must be JSON, sent with Content-Type: application/json.",
                type_="urn:todo-api:unsupported-media-type",
            ),
            "A body sent without Content-Type: application/json",
        ),
    },
    422: {
        "invalid-body": validation_example(
            "An empty title",
            ["body", "title"],
            "String should have at least 1 character",
            "string_too_short",
        ),
        "invalid-completed": validation_example(
            "`completed` as a string",
            ["body", "completed"],
            "Input should be a valid boolean",
            "bool_type",
        ),
        "invalid-task-id": validation_example(
            "A task id that is not an integer",
            ["path", "task_id"],
            "Input should be a valid integer, unable to parse string as an integer",
            "int_parsing",
        ),
        "invalid-query": validation_example(
            "A page larger than 200",
            ["query", "limit"],
            "Input should be less than or equal to 200",
            "less_than_equal",
        ),
        "idempotency-key-reused": validation_example(
            "An Idempotency-Key already used with another body",
            ["header", "Idempotency-Key"],
            "Key was already used with a different request body",
            "idempotency_key_reused",
        ),
        "invalid-user-id": validation_example(
            f"A user id longer than {USER_ID_MAX_LENGTH} characters",
            ["path", "user_id"],
            USER_ID_RULE,
            "user_id",
        ),
    },
    503: {
        "database-unavailable": problem_example(
            DatabaseUnavailableError(), "The database cannot be reached"
        ),
        "database-busy": problem_example(
            DatabaseBusyError(), "The database did not finish in time; nothing was changed"
        ),
        "database-no-answer": problem_example(
            DatabaseNoAnswerError(), "A write was sent but no answer came back in time"
        ),
        "schema-not-migrated": problem_example(
            SchemaNotMigratedError(), "The database is not migrated (no Retry-After)"
        ),
        "database-misconfigured": problem_example(
            DatabaseMisconfiguredError(),
            "The database refuses the configuration: password, database name, TLS (no Retry-After)",
        ),
        "request-cut-off": problem_example(
            RequestCutOffError(), "The server stopped before the request finished"
        ),
    },
}

_DESCRIPTIONS = {
    400: "The request body is not UTF-8 JSON.",
    404: "The task does not exist or belongs to someone else.",
    409: "A request with the same `Idempotency-Key` is still held by a server of an earlier "
    "version (during an upgrade); retry after "
    "`Retry-After` seconds to get its response.",
    412: "`If-Match` does not name the task's current ETag, which is sent back in `ETag`.",
    413: "The request body is larger than the configured limit.",
    415: "The request body is not declared as JSON.",
    422: "The request is invalid; `errors` says where.",
    503: "The database is unavailable or busy, or the server stopped before the request "
    "finished: retry after `Retry-After` seconds. Or its schema is not migrated "
    "(`urn:todo-api:schema-not-migrated`) or it refuses the configuration "
    "(`urn:todo-api:database-misconfigured`), both without `Retry-After`: retrying will not "
    "help until an operator acts.",
}
_HEADERS = {
    409: retry_after_header("Seconds to wait before retrying with the same key."),
    503: retry_after_header(
        "Seconds to wait before retrying. Not sent when the schema is not migrated."
    ),
}


def problem_responses(
    *statuses: int, examples: dict[int, ExampleSet] | None = None
) -> dict[int | str, dict[str, Any]]:
    """OpenAPI entries for the error statuses an operation can answer.

    Each has examples of what is sent (`examples` replaces the defaults of a status) and
    declares the headers that come with it. `todo_api.api.openapi` moves the content to
    `application/problem+json`.
    """
    chosen = PROBLEM_EXAMPLES | (examples or {})
    responses: dict[int | str, dict[str, Any]] = {}
    for status in statuses:
        response: dict[str, Any] = {
            "model": ValidationProblem if status == 422 else Problem,
            "description": _DESCRIPTIONS.get(status, HTTPStatus(status).phrase),
        }
        if status in chosen:
            # A copy each time: FastAPI adds the schema to the media type in place.
            content = {"examples": copy.deepcopy(chosen[status])}
            response["content"] = {"application/json": content}
        if status in _HEADERS:
            response["headers"] = copy.deepcopy(_HEADERS[status])
        responses[status] = response
    return responses
