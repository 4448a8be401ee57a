"""Shared request dependencies."""

from collections import Counter
from typing import Annotated, cast

from fastapi import Depends, Request
from fastapi.exceptions import RequestValidationError

from todo_api.api.problems import ProblemError
from todo_api.db.database import Database


async def get_database(request: Request) -> Database:
    # async: a plain function would be run in FastAPI's thread pool on every request.
    return cast(Database, request.app.state.database)


DatabaseDep = Annotated[Database, Depends(get_database)]


def _is_json(media_type: str) -> bool:
    kind, _, subtype = media_type.partition("/")
    return kind == "application" and (subtype == "json" or subtype.endswith("+json"))


async def require_json_body(request: Request) -> None:
    """415 for a body not declared as JSON (FastAPI would not parse it, so say why)."""
    headers = request.headers
    has_body = headers.get("content-length", "0") != "0" or "transfer-encoding" in headers
    media_type = headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if has_body and not _is_json(media_type):
        raise ProblemError(
            415,
            "The request body must be JSON, sent with Content-Type: application/json.",
            type_="urn:todo-api:unsupported-media-type",
        )


async def reject_repeated_query_parameters(request: Request) -> None:
    """A parameter given twice is ambiguous; refuse it rather than silently pick one."""
    counts = Counter(name for name, _ in request.query_params.multi_items())
    repeated = sorted(name for name, count in counts.items() if count > 1)
    if repeated:
        raise RequestValidationError(
            [
                {
                    "loc": ("query", name),
                    "msg": "Parameter must be given at most once",
                    "type": "repeated_parameter",
                }
                for name in repeated
            ]
        )
