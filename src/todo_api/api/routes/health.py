"""Liveness and readiness probes."""

from typing import Literal

from fastapi import APIRouter, Request
from pydantic import BaseModel

from todo_api.api.problems import DatabaseUnavailableError, problem_responses
from todo_api.db.setup import READINESS_TIMEOUT_SECONDS, readiness_failure

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
    summary="Readiness: the database answers a trivial query in time",
    responses=problem_responses(503),
)
async def check_readiness(request: Request) -> HealthStatus:
    """`200` when the database answers `SELECT 1` within 2 seconds.

    Asked over a connection kept apart from the requests' pool, so a busy instance is
    still ready as long as its database is.
    """
    failure = await readiness_failure(request.app.state.readiness_database)
    if failure is not None:
        request.app.state.database_availability.mark_unavailable(failure)
        raise DatabaseUnavailableError(
            f"The database did not answer a trivial query within "
            f"{READINESS_TIMEOUT_SECONDS:g} seconds."
        )
    return HealthStatus()
