"""A database not at this code's migration: a clear word, not an outage that retrying fixes."""

import asyncio
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import text

from tests.conftest import alembic_config
from tests.helpers import app_client, assert_problem, inspection_engine, tasks_url
from todo_api.db.schema_version import code_revision

SCHEMA_PROBLEM = "urn:todo-api:schema-not-migrated"


def _serve(database_url: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """`python -m todo_api` as an operator starts it; it must exit at once here."""
    env = os.environ | {"DATABASE_URL": database_url, "PORT": "1", "LOG_LEVEL": "warning"}
    return subprocess.run(
        [sys.executable, "-m", "todo_api"],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=30,
    )


async def _set_revision(database_url: str, revision: str) -> None:
    engine = inspection_engine(database_url)
    async with engine.begin() as connection:
        await connection.execute(
            text("UPDATE alembic_version SET version_num = :r"), {"r": revision}
        )
    await engine.dispose()


async def _at_revision(new_database: Callable[[], str], revision: str) -> str:
    url = new_database()
    await asyncio.to_thread(command.upgrade, alembic_config(url), revision)
    return url


async def test_serving_an_unmigrated_database_stops_with_one_line(
    new_database: Callable[[], str], tmp_path: Path
) -> None:
    empty = new_database()
    behind = await _at_revision(new_database, "0001")
    unknown = await _at_revision(new_database, "head")
    await _set_revision(unknown, "9999_from_the_future")

    for url, says in [
        (empty, "has no schema yet"),
        (behind, "at revision 0001, behind"),
        (unknown, "does not know"),
    ]:
        finished = await asyncio.to_thread(_serve, url, tmp_path)
        assert finished.returncode == 3, finished.stderr
        [line] = finished.stderr.strip().splitlines()
        assert line.startswith("todo_api: The database"), line
        assert says in line
        assert code_revision() in line
        if says != "does not know":
            assert "make migrate" in line


@pytest.mark.parametrize("revision", [None, "0001"])
async def test_requests_on_an_unmigrated_database_say_so(
    new_database: Callable[[], str], revision: str | None
) -> None:
    url = new_database() if revision is None else await _at_revision(new_database, revision)
    async with app_client(url) as client:
        ready = await client.get("/health/ready")
        body = assert_problem(ready, 503)
        assert body["type"] == SCHEMA_PROBLEM
        assert "make migrate" in body["detail"]
        if revision is None:
            # Without the tables, task requests fail in the database; the answer names the
            # cause, and sends no Retry-After: retrying cannot help until someone migrates.
            response = await client.get(tasks_url("alice"))
            problem = assert_problem(response, 503)
            assert problem["type"] == SCHEMA_PROBLEM
            assert "migrat" in problem["detail"]
            assert "retry-after" not in response.headers


async def test_a_migrated_database_is_ready(database_url: str) -> None:
    async with app_client(database_url) as client:
        assert (await client.get("/health/ready")).json() == {"status": "ok"}


def test_the_check_reads_the_migrations_shipped_with_the_code() -> None:
    versions = Path(__file__).resolve().parents[1] / "src/todo_api/migrations/versions"
    newest = sorted(versions.glob("*.py"))[-1].read_text()
    assert f'revision: str = "{code_revision()}"' in newest
