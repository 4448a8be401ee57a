"""The embedded SQLite file (no DATABASE_URL), through aiosqlite."""

import asyncio
import sqlite3
from collections.abc import Sequence
from contextlib import suppress
from typing import cast

import aiosqlite
from sqlalchemy.dialects.sqlite.pysqlite import SQLiteDialect_pysqlite

from todo_api.db.database import (
    Database,
    DatabaseAvailability,
    DatabaseBusyError,
    DatabaseError,
    DatabaseMisconfiguredError,
    DatabaseSchemaError,
    DatabaseUnavailableError,
    Params,
    Row,
    describe_database_error,
)
from todo_api.db.local_date import SQLITE_FUNCTION, sqlite_local_date
from todo_api.db.pool import ConnectionPool
from todo_api.db.statements import CompiledStatement

# How long a SQLite writer waits for another's lock before giving up.
SQLITE_BUSY_TIMEOUT_SECONDS = 10.0


class SqliteDatabase(Database):
    # Named placeholders, so that parameters go to sqlite3 as the same mapping as to psycopg.
    dialect = SQLiteDialect_pysqlite(paramstyle="named")

    def __init__(
        self,
        path: str,
        *,
        availability: DatabaseAvailability,
        pool_size: int,
        max_overflow: int,
        pool_timeout: float,
    ) -> None:
        pool: ConnectionPool[aiosqlite.Connection] = ConnectionPool(
            connect=self._new_connection,
            close=_close,
            usable=lambda _connection: True,
            size=pool_size,
            overflow=max_overflow,
            timeout=pool_timeout,
            recycle=None,
        )
        # No deadline: the file is local, and the busy timeout already bounds lock waits.
        super().__init__(
            pool,
            availability=availability,
            deadline=None,
            close_wait=pool_timeout + SQLITE_BUSY_TIMEOUT_SECONDS,
        )
        self.path = path
        # Connections switching a new file to WAL together fail at once with "database is
        # locked", whatever the busy timeout: one at a time, the later ones find it done.
        self._switching_to_wal = asyncio.Lock()

    async def _connect(self) -> aiosqlite.Connection:
        # isolation_level=None: each statement commits on its own unless inside an
        # explicit BEGIN, as on PostgreSQL.
        connection = await aiosqlite.connect(
            self.path, timeout=SQLITE_BUSY_TIMEOUT_SECONDS, isolation_level=None
        )
        try:
            # WAL lets readers proceed during a write; FULL syncs every commit so an
            # acknowledged write survives a crash.
            async with self._switching_to_wal:
                await connection.execute("PRAGMA journal_mode=WAL")
            await connection.execute("PRAGMA synchronous=FULL")
            # Off by default in SQLite: deleting a task must delete its tag rows.
            await connection.execute("PRAGMA foreign_keys=ON")
            # SQLite knows no time zones: sorting by due day uses Python's.
            await connection.create_function(
                SQLITE_FUNCTION, 2, sqlite_local_date, deterministic=True
            )
        except BaseException:
            await _close(connection)
            raise
        return connection

    async def _run(
        self, connection: aiosqlite.Connection, statement: CompiledStatement, params: Params
    ) -> list[Row]:
        # Without a row factory, sqlite3's rows are plain tuples.
        rows = await connection.execute_fetchall(statement.sql, params)
        return cast(list[Row], list(rows))

    async def _run_counting(
        self, connection: aiosqlite.Connection, statement: CompiledStatement, params: Params
    ) -> int:
        cursor = await connection.execute(statement.sql, params)
        count = cursor.rowcount
        await cursor.close()
        return count

    async def _run_together(
        self,
        connection: aiosqlite.Connection,
        steps: Sequence[tuple[CompiledStatement, Params]],
    ) -> list[list[Row]]:
        # The file is local: one statement after the other costs no distance.
        await connection.execute("BEGIN")
        results = [
            cast(list[Row], list(await connection.execute_fetchall(statement.sql, params)))
            for statement, params in steps
        ]
        await connection.execute("COMMIT")
        return results

    async def _end(self, connection: aiosqlite.Connection, *, commit: bool) -> None:
        await connection.execute("COMMIT" if commit else "ROLLBACK")

    def _reusable(self, connection: aiosqlite.Connection) -> bool:
        try:
            return not connection.in_transaction
        except ValueError:  # closed
            return False

    def _in_transaction(self, connection: aiosqlite.Connection) -> bool:
        try:
            return connection.in_transaction
        except ValueError:  # closed
            return False

    def _classify(
        self, exc: BaseException, connection: aiosqlite.Connection | None
    ) -> DatabaseError | None:
        if not isinstance(exc, sqlite3.OperationalError):
            return None
        reason = describe_database_error(exc)
        message = str(exc)
        if connection is None and "unable to open database file" in message:
            # A directory that does not exist, or one the server may not write to.
            return DatabaseMisconfiguredError(f"{reason} ({self.path})")
        if "locked" in message or "busy" in message:
            return DatabaseBusyError(reason)
        if message.startswith(("no such table", "no such column")):
            return DatabaseSchemaError(reason)
        # Anything else (a disk error, a file that went away) is reported as an outage.
        return DatabaseUnavailableError(reason)


async def _close(connection: aiosqlite.Connection) -> None:
    # Closing a broken connection has nothing left to save.
    with suppress(Exception):
        await connection.close()
