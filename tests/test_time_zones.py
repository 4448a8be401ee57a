"""Timestamps are UTC instants, whatever time zone the database server works in."""

import asyncio
from collections.abc import Callable
from datetime import datetime

import psycopg
import pytest
from alembic import command
from sqlalchemy import make_url

from tests.conftest import alembic_config
from tests.helpers import app_client, create, libpq_url, task_url, tasks_url


async def test_timestamps_are_utc_whatever_the_server_time_zone(
    new_database: Callable[[], str], backend: str
) -> None:
    if backend != "postgres":
        pytest.skip("SQLite has no session time zone")
    url = new_database()
    await asyncio.to_thread(command.upgrade, alembic_config(url), "head")
    name = make_url(url).database
    with psycopg.connect(libpq_url(url), autocommit=True) as admin:
        # Neon's default is GMT; any zone but UTC would show in a naive read.
        admin.execute(f"ALTER DATABASE \"{name}\" SET timezone TO 'America/New_York'")

    async with app_client(url) as client:
        created = await create(client, "alice")
        toggled = (await client.patch(f"{task_url('alice', created['id'])}/complete")).json()
        listed = (await client.get(tasks_url("alice"))).json()

    for stamp in (created["created_at"], toggled["completed_at"], listed[0]["updated_at"]):
        assert stamp.endswith("Z"), stamp
    with psycopg.connect(libpq_url(url)) as connection:
        stored = connection.execute(
            "SELECT created_at, completed_at FROM tasks WHERE id = %s", (created["id"],)
        ).fetchone()
    assert stored is not None
    # The same instants as stored, however the server would have spelled them.
    assert stored[0] == datetime.fromisoformat(created["created_at"])
    assert stored[1] == datetime.fromisoformat(toggled["completed_at"])
