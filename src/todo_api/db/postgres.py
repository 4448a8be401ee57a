"""PostgreSQL through psycopg 3: direct, or behind any transaction-mode pooler."""

import logging
import select
from collections.abc import Mapping
from contextlib import suppress
from typing import Any

import psycopg
from psycopg import pq
from sqlalchemy.dialects.postgresql.psycopg import PGDialect_psycopg

from todo_api.db.database import (
    CANCEL_GRACE_SECONDS,
    Database,
    DatabaseAvailability,
    DatabaseBusyError,
    DatabaseError,
    DatabaseSchemaError,
    DatabaseUnavailableError,
    Row,
    describe_database_error,
)
from todo_api.db.models import UTCDateTime
from todo_api.db.pool import ConnectionPool

logger = logging.getLogger(__name__)

# Server-side codes of a connection being refused or cut: the database (or the way to it)
# is gone, as opposed to a statement that took too long or waited for a lock.
_CONNECTION_LOST_STATES = frozenset({"57P01", "57P02", "57P03"})
# A pooler that hands each transaction to any server connection (PgBouncer before 1.21 in
# transaction mode) loses statements prepared on another: "does not exist", "already
# exists", or a Bind that meets another statement of the same name. None of them ran.
_PREPARED_STATEMENT_STATES = frozenset({"26000", "42P05"})
_PROTOCOL_VIOLATION = "08P01"
# Undefined table, undefined column: the schema is behind the code.
_SCHEMA_MISSING_STATES = frozenset({"42P01", "42703"})

POOLER_ADVICE = (
    "set DB_TRANSACTION_POOLER=true when DATABASE_URL goes through a transaction-mode "
    "pooler (PgBouncer), to skip this"
)


class PostgresDatabase(Database):
    dialect = PGDialect_psycopg()  # type: ignore[no-untyped-call]
    # Every connection's session time zone is UTC (see _connect), so psycopg's timestamps
    # come as UTC already, with the same tzinfo UTCDateTime would give them.
    loaded_as_is = (UTCDateTime,)

    def __init__(
        self,
        conninfo: str,
        *,
        connect_options: Mapping[str, Any],
        behind_pooler: bool,
        availability: DatabaseAvailability,
        pool_size: int,
        max_overflow: int,
        pool_timeout: float,
        pool_recycle: float,
        deadline: float | None,
    ) -> None:
        pool: ConnectionPool[psycopg.AsyncConnection[Any]] = ConnectionPool(
            connect=self._connect,
            close=_close,
            usable=_usable,
            size=pool_size,
            overflow=max_overflow,
            timeout=pool_timeout,
            recycle=pool_recycle,
        )
        super().__init__(pool, availability=availability, deadline=deadline)
        self._conninfo = conninfo
        self._options = dict(connect_options)
        # Prepared statements save a parse and plan per execution where the server keeps
        # them; behind a pooler that cannot, they are switched off (see
        # _statement_never_ran), or never used when the URL says it is a pooler.
        self._prepare = not behind_pooler
        if behind_pooler:
            self._options["prepare_threshold"] = None

    async def _connect(self) -> psycopg.AsyncConnection[Any]:
        connection = await self._open()
        try:
            if connection.info.parameter_status("TimeZone") != "UTC":
                # A session setting that poolers keep: PgBouncer tracks TimeZone and sets
                # it on whichever server connection serves this client next.
                await connection.execute("SET TIME ZONE 'UTC'")
        except BaseException:
            await _close(connection)
            raise
        return connection

    async def _open(self) -> psycopg.AsyncConnection[Any]:
        try:
            return await psycopg.AsyncConnection.connect(
                self._conninfo, autocommit=True, **self._options
            )
        except psycopg.OperationalError as exc:
            # PgBouncer refuses startup parameters it does not know, such as the `options`
            # that carry the statement timeout. The client-side deadline still bounds
            # every statement, so connect without them.
            if "unsupported startup parameter" not in str(exc):
                raise
            if self._options.pop("options", None) is not None:
                logger.warning(
                    "The database refused the statement timeout as a startup parameter "
                    "(%s); statements are bounded by the client-side deadline only; %s.",
                    describe_database_error(exc),
                    POOLER_ADVICE,
                )
            return await psycopg.AsyncConnection.connect(
                self._conninfo, autocommit=True, **self._options
            )

    async def _run(
        self, connection: psycopg.AsyncConnection[Any], sql: str, params: Mapping[str, Any]
    ) -> list[Row]:
        if not self._prepare:
            connection.prepare_threshold = None
        cursor = await connection.execute(sql, params)
        return await cursor.fetchall()

    async def _run_counting(
        self, connection: psycopg.AsyncConnection[Any], sql: str, params: Mapping[str, Any]
    ) -> int:
        if not self._prepare:
            connection.prepare_threshold = None
        cursor = await connection.execute(sql, params)
        return cursor.rowcount

    async def _cancel(self, connection: psycopg.AsyncConnection[Any]) -> None:
        await connection.cancel_safe(timeout=CANCEL_GRACE_SECONDS)

    # Never prepared: nothing to gain, and behind a transaction pooler a prepared BEGIN
    # fails like any other prepared statement, even after the fallback turned them off.
    async def _begin(self, connection: psycopg.AsyncConnection[Any]) -> None:
        await connection.execute("BEGIN", prepare=False)

    async def _end(self, connection: psycopg.AsyncConnection[Any], *, commit: bool) -> None:
        await connection.execute("COMMIT" if commit else "ROLLBACK", prepare=False)

    def _reusable(self, connection: psycopg.AsyncConnection[Any]) -> bool:
        pgconn = connection.pgconn
        return pgconn.status == pq.ConnStatus.OK and (
            pgconn.transaction_status == pq.TransactionStatus.IDLE
        )

    def _in_transaction(self, connection: psycopg.AsyncConnection[Any]) -> bool:
        status = connection.pgconn.transaction_status
        return status in (pq.TransactionStatus.INTRANS, pq.TransactionStatus.INERROR)

    def _statement_never_ran(self, exc: BaseException) -> bool:
        if not isinstance(exc, psycopg.Error):
            return False
        state = exc.sqlstate
        if state not in _PREPARED_STATEMENT_STATES and not (
            state == _PROTOCOL_VIOLATION and "prepared statement" in str(exc)
        ):
            return False
        if self._prepare:
            self._prepare = False
            self._options["prepare_threshold"] = None
            logger.warning(
                "Prepared statements failed (%s): the database is behind a pooler that "
                "cannot keep them, so they are off from now on; %s.",
                describe_database_error(exc),
                POOLER_ADVICE,
            )
        return True

    def _classify(self, exc: BaseException) -> DatabaseError | None:
        if not isinstance(exc, psycopg.Error):
            return None
        reason = describe_database_error(exc)
        if is_connection_failure(exc):
            return DatabaseUnavailableError(reason)
        if exc.sqlstate in _SCHEMA_MISSING_STATES:
            return DatabaseSchemaError(reason)
        if isinstance(exc, psycopg.OperationalError):
            # A statement timeout, a lock wait, too many connections: busy, not gone.
            return DatabaseBusyError(reason)
        return None


def is_connection_failure(exc: psycopg.Error) -> bool:
    state = exc.sqlstate
    # No code at all: the client library could not connect or lost the socket.
    return state is None or state.startswith("08") or state in _CONNECTION_LOST_STATES


def _usable(connection: psycopg.AsyncConnection[Any]) -> bool:
    """Whether an idle pooled connection is still open on the server's side.

    An idle connection receives nothing unless the server is ending it (Neon's suspend,
    a restart, pg_terminate_backend): then its FATAL message or EOF is waiting on the
    socket, which a zero-timeout poll sees without a round trip. poll(), unlike select(),
    takes descriptors of any number (select() fails at 1024 and above).
    """
    try:
        pgconn = connection.pgconn
        if pgconn.status != pq.ConnStatus.OK:
            return False
        return not _has_input(pgconn.socket)
    except Exception:
        return False


def _has_input(descriptor: int) -> bool:
    if not hasattr(select, "poll"):  # Windows: its select() has no 1024 limit
        return bool(select.select([descriptor], [], [], 0)[0])
    poller = select.poll()
    poller.register(descriptor, select.POLLIN | select.POLLPRI)
    return bool(poller.poll(0))


async def _close(connection: psycopg.AsyncConnection[Any]) -> None:
    # Closing a broken connection has nothing left to save.
    with suppress(Exception):
        await connection.close()
