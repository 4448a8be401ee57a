"""Liveness and readiness probes."""

from typing import Literal

from fastapi import APIRouter
from pydantic import BaseModel

from todo_api.api.dependencies import EngineDep
from todo_api.api.problems import ProblemError, problem_responses
from todo_api.db.engine import database_is_ready

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
    summary="Readiness: the database answers within 2 seconds",
    responses=problem_responses(503),
)
async def check_readiness(engine: EngineDep) -> HealthStatus:
    if not await database_is_ready(engine):
        raise ProblemError(
            503,
            "The database did not answer a trivial query within 2 seconds.",
            type_="urn:todo-api:database-unavailable",
            headers={"Retry-After": "5"},
        )
    return HealthStatus()
