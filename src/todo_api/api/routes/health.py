"""Liveness and readiness probes."""

import asyncio
from typing import Literal

from fastapi import APIRouter, Request
from pydantic import BaseModel

from todo_api.api.problems import (
    DatabaseMisconfiguredError,
    DatabaseUnavailableError,
    SchemaNotMigratedError,
    problem_example,
    problem_responses,
)
from todo_api.db import database
from todo_api.db.schema_version import code_revision, schema_mismatch
from todo_api.db.setup import READINESS_TIMEOUT_SECONDS

router = APIRouter(prefix="/health", tags=["health"])


class HealthStatus(BaseModel):
    status: Literal["ok"] = "ok"


@router.get("", operation_id="check_liveness", summary="Liveness: the process answers")
async def check_liveness() -> HealthStatus:
    """Never touches the database, so probing it cannot keep a Neon compute awake."""
    return HealthStatus()


@router.get(
    "/ready",
    operation_id="check_readiness",
    summary="Readiness: the database answers, at the schema this code needs",
    responses=problem_responses(
        503,
        examples={
            503: {
                "database-unavailable": problem_example(
                    DatabaseUnavailableError(
                        f"The database did not answer within {READINESS_TIMEOUT_SECONDS:g} seconds."
                    ),
                    "The database cannot be reached",
                ),
                "schema-not-migrated": problem_example(
                    SchemaNotMigratedError(
                        f"The database has no schema yet (this code needs revision "
                        f"{code_revision()}): run `make migrate` (or `alembic upgrade head`) "
                        "first."
                    ),
                    "The database is not migrated (no Retry-After)",
                ),
                "database-misconfigured": problem_example(
                    DatabaseMisconfiguredError(),
                    "The database refuses the configuration (no Retry-After)",
                ),
            }
        },
    ),
)
async def check_readiness(request: Request) -> HealthStatus:
    """`200` when the database answers within 2 seconds and is migrated to this code's
    revision; `503` otherwise (`urn:todo-api:schema-not-migrated` for the second).

    Asked over a connection kept apart from the requests' pool, so a busy instance is
    still ready as long as its database is.
    """
    try:
        mismatch = await asyncio.wait_for(
            schema_mismatch(request.app.state.readiness_database), READINESS_TIMEOUT_SECONDS
        )
    except database.DatabaseMisconfiguredError:
        raise DatabaseMisconfiguredError() from None
    except (TimeoutError, database.DatabaseError) as exc:
        availability = request.app.state.database_availability
        if availability.refusal is not None:
            # Nothing has connected since the configuration was refused (a pooler holds
            # new logins for a while after a failed one): that is still the news.
            raise DatabaseMisconfiguredError() from None
        failure = str(exc) or f"no answer within {READINESS_TIMEOUT_SECONDS:g} s"
        availability.mark_unavailable(failure)
        raise DatabaseUnavailableError(
            f"The database did not answer within {READINESS_TIMEOUT_SECONDS:g} seconds."
        ) from None
    if mismatch is not None:
        raise SchemaNotMigratedError(mismatch.message)
    return HealthStatus()
