"""One error shape for every failure: RFC 9457 problem details as `application/problem+json`."""

from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from todo_api.db import database

PROBLEM_MEDIA_TYPE = "application/problem+json"
RETRY_AFTER_SECONDS = 5

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


class TaskNotFoundError(ProblemError):
    """Also what a caller sees for another user's task: the two must be indistinguishable."""

    def __init__(self, task_id: int) -> None:
        super().__init__(404, f"Task {task_id} was not found.", type_="urn:todo-api:task-not-found")


class PreconditionFailedError(ProblemError):
    """If-Match named other versions; the current ETag goes back so the client can catch up."""

    def __init__(self, task_id: int, current_etag: str) -> None:
        super().__init__(
            412,
            f"Task {task_id} has changed since the ETag in If-Match; nothing was changed. "
            "Read it again and retry.",
            type_="urn:todo-api:precondition-failed",
            headers={"ETag": current_etag},
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
    return problem_response(exc.status_code, detail, headers=headers)


async def _handle_database_error(request: Request, exc: Exception) -> ProblemResponse:
    # No traceback: the data layer logged an outage once when it began, and a statement
    # timeout, a lock wait or a full pool is the database being busy, not a bug.
    if isinstance(exc, database.DatabaseBusyError):
        problem: ProblemError = DatabaseBusyError()
    elif isinstance(exc, database.DatabaseUnavailableError) and exc.outcome_unknown:
        problem = DatabaseNoAnswerError()
    else:
        problem = DatabaseUnavailableError()
    return await _handle_problem_error(request, problem)


def install_problem_handlers(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, _handle_validation_error)
    app.add_exception_handler(ProblemError, _handle_problem_error)
    app.add_exception_handler(StarletteHTTPException, _handle_http_exception)
    # Any other error of the database is unexpected: see unexpected_errors.
    app.add_exception_handler(database.DatabaseError, _handle_database_error)


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI entries for the error statuses an operation can answer."""
    descriptions = {
        400: "The request body is not UTF-8 JSON.",
        404: "The task does not exist or belongs to someone else.",
        409: "A request with the same `Idempotency-Key` is still in progress.",
        412: "`If-Match` does not name the task's current ETag, which is sent back in `ETag`.",
        413: "The request body is larger than the configured limit.",
        415: "The request body is not declared as JSON.",
        422: "The request is invalid; `errors` says where.",
        503: "The database is unavailable; retry after `Retry-After` seconds.",
    }
    return {
        status: {
            "model": ValidationProblem if status == 422 else Problem,
            "description": descriptions.get(status, HTTPStatus(status).phrase),
        }
        for status in statuses
    }
