"""Liveness and readiness probes."""

import httpx
from fastapi import FastAPI
from sqlalchemy import event

from tests.helpers import assert_problem


async def test_liveness_never_touches_the_database(
    client: httpx.AsyncClient, offline_client: httpx.AsyncClient, app: FastAPI
) -> None:
    statements: list[str] = []

    def record(*args: object) -> None:
        statements.append(str(args[2]))

    event.listen(app.state.engine.sync_engine, "before_cursor_execute", record)
    try:
        response = await client.get("/health")
    finally:
        event.remove(app.state.engine.sync_engine, "before_cursor_execute", record)
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
    assert statements == []
    assert (await offline_client.get("/health")).status_code == 200


async def test_readiness_reflects_the_database(
    client: httpx.AsyncClient, offline_client: httpx.AsyncClient
) -> None:
    ready = await client.get("/health/ready")
    assert ready.status_code == 200
    assert ready.json() == {"status": "ok"}

    not_ready = await offline_client.get("/health/ready")
    assert_problem(not_ready, 503)
    assert "retry-after" in not_ready.headers
