"""The embedded SQLite file: in WAL mode from start-up, and opened by many connections at once."""

import asyncio
import sqlite3
from pathlib import Path

from sqlalchemy import literal_column, select

from todo_api.db.database import DatabaseAvailability
from todo_api.db.setup import create_database
from todo_api.db.startup import wait_for_database
from todo_api.settings import Settings

BURST = 24


def _journal_mode(path: Path) -> str:
    connection = sqlite3.connect(path)
    try:
        mode: str = connection.execute("PRAGMA journal_mode").fetchone()[0]
    finally:
        connection.close()
    return mode


async def test_start_up_leaves_the_file_in_wal_mode(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'todo.sqlite3'}"
    await wait_for_database(Settings(_env_file=None, database_url=url), url)
    assert _journal_mode(tmp_path / "todo.sqlite3") == "wal"


async def test_a_new_file_opened_by_many_connections_at_once_serves_them_all(
    tmp_path: Path,
) -> None:
    # Each connection switches the file to WAL as it opens; together, on a file that is
    # not WAL yet (no start-up, as in a test client), some were refused "database is locked".
    for attempt in range(20):
        path = tmp_path / f"todo-{attempt}.sqlite3"
        settings = Settings(_env_file=None, database_url=f"sqlite:///{path}", db_pool_size=BURST)
        database = create_database(settings, DatabaseAvailability())
        try:
            rows = await asyncio.gather(
                *(database.fetch_one(select(literal_column("1")), {}) for _ in range(BURST))
            )
        finally:
            await database.close()
        assert [tuple(row) for row in rows if row is not None] == [(1,)] * BURST
        assert _journal_mode(path) == "wal"
