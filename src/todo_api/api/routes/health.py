"""Liveness and readiness probes."""

from typing import Literal

from fastapi import APIRouter
from pydantic import BaseModel

from todo_api.api.dependencies import EngineDep
from todo_api.api.problems import RETRY_AFTER_SECONDS, ProblemError, problem_responses
from todo_api.db.engine import READINESS_TIMEOUT_SECONDS, database_is_ready

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
async def check_readiness(engine: EngineDep) -> HealthStatus:
    if not await database_is_ready(engine):
        raise ProblemError(
            503,
            f"The database did not answer within {READINESS_TIMEOUT_SECONDS:g} seconds.",
            type_="urn:todo-api:database-unavailable",
            headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
        )
    return HealthStatus()
