"""Liveness and readiness probes."""

from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from tests.helpers import assert_problem


async def test_liveness_never_touches_the_database(
    client: httpx.AsyncClient,
    offline_client: httpx.AsyncClient,
    app: FastAPI,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sessions: list[Any] = []
    for database in (app.state.database, app.state.readiness_database):
        monkeypatch.setattr(database, "session", lambda: sessions.append(1))
    response = await client.get("/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
    assert sessions == []
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
