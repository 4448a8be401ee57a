"""What routes take from the request beyond their declared parameters."""

from collections import Counter
from typing import cast

from fastapi import Request
from fastapi.exceptions import RequestValidationError

from todo_api.db.database import Database


def database_of(request: Request) -> Database:
    """The app's database.

    Read from the app, not declared as a FastAPI dependency: FastAPI solves each dependency
    anew for every request, about 80,000 instructions (some 20 µs) for one attribute that
    never changes (docs/benchmarks.md).
    """
    return cast(Database, request.app.state.database)


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
