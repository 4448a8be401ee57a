"""PostgreSQL through psycopg 3: direct, or behind any transaction-mode pooler."""

import asyncio
import logging
import secrets
import select
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from contextlib import suppress
from typing import Any
from weakref import WeakKeyDictionary

import psycopg
from psycopg import pq
from psycopg.adapt import AdaptersMap
from psycopg.types.numeric import Int8BinaryDumper
from sqlalchemy.dialects.postgresql.psycopg import PGDialect_psycopg

from todo_api.db.database import (
    CANCEL_GRACE_SECONDS,
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
from todo_api.db.models import UTCDateTime
from todo_api.db.pool import ConnectionPool
from todo_api.db.statements import CompiledStatement

logger = logging.getLogger(__name__)

# Server-side codes of a connection being refused or cut: the database (or the way to it)
# is gone, as opposed to a statement that took too long or waited for a lock.
_CONNECTION_LOST_STATES = frozenset({"57P01", "57P02", "57P03"})
# Authentication, an unknown database, a missing privilege: what only an operator can fix.
_MISCONFIGURATION_STATES = frozenset({"28000", "28P01", "3D000", "42501"})
# A prepared statement that does not exist or already exists on the server connection.
_PREPARED_STATEMENT_STATES = frozenset({"26000", "42P05"})
# Undefined table, undefined column: the schema is behind the code.
_SCHEMA_MISSING_STATES = frozenset({"42P01", "42703"})
# How libpq, PgBouncer and Neon word a refused configuration when a connection is opened
# (no SQLSTATE comes with those): credentials, database, TLS, the URL's own options.
_MISCONFIGURATION_SIGNS = (
    "authentication failed",
    "no pg_hba.conf entry",
    "does not exist",
    "no password supplied",
    "ssl was required",
    "does not support ssl",
    "channel binding",
    "certificate",
    "invalid connection option",
    "invalid uri",
    "invalid sslmode",
    "invalid integer value",
    "invalid port",
    "no such database",
    "no such user",
    "endpoint id is not specified",
    "endpoint has been disabled",
    # Only seen here when DB_TRANSACTION_POOLER=false says there is no pooler (see _open).
    "unsupported startup parameter",
)

#: psycopg's default: a statement is prepared on the server at its sixth run.
PREPARE_THRESHOLD = 5
#: Statements whose runs the app counts per connection: as many as psycopg keeps by default
#: (`prepared_max`: 100 it counts runs of, and 100 prepared).
COUNTED_STATEMENTS = 200
#: A setting each connection's startup options give a random value: see _own_session.
SESSION_MARK = "todo_api.session_mark"

POOLER_ADVICE = (
    "set DB_TRANSACTION_POOLER=true when DATABASE_URL goes through a transaction-mode "
    "pooler (PgBouncer), to skip this"
)


def _adapters() -> AdaptersMap:
    """psycopg's adapters, but every Python int sent as int8.

    psycopg sends an int as int2, int4 or int8 by its size, and keeps (and prepares) a
    statement once for each set of parameter types: a task id past 32,767 would be another
    statement than the id of an older task, prepared again, in a round trip of its own. Every
    integer parameter has its type cast in the SQL (`%(task_id)s::BIGINT`, SQLAlchemy's
    psycopg dialect renders them), so the type sent does not change what a statement means.
    """
    adapters = AdaptersMap(psycopg.adapters)
    adapters.register_dumper(int, Int8BinaryDumper)
    return adapters


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
        prepared_statements: bool | None,
        declared_direct: bool,
        availability: DatabaseAvailability,
        pool_size: int,
        max_overflow: int,
        pool_timeout: float,
        pool_recycle: float,
        deadline: float | None,
        close_wait: float,
    ) -> None:
        pool: ConnectionPool[psycopg.AsyncConnection[Any]] = ConnectionPool(
            connect=self._new_connection,
            close=_close,
            usable=_usable,
            size=pool_size,
            overflow=max_overflow,
            timeout=pool_timeout,
            recycle=pool_recycle,
        )
        super().__init__(pool, availability=availability, deadline=deadline, close_wait=close_wait)
        self._conninfo = conninfo
        # Every connection opens with nothing prepared; `_connect` turns preparation on for
        # the connections that keep their statements (todo_api.db.setup decides which).
        self._options = {**connect_options, "prepare_threshold": None, "context": _adapters()}
        #: True or False for every connection; None: each finds out when it opens.
        self.prepared_statements = prepared_statements
        # DB_TRANSACTION_POOLER=false: a pooler's refusal of the startup options is then a
        # contradiction to report, not a reason to carry on without them.
        self._declared_direct = declared_direct
        #: How many times each connection has run each statement it may prepare, since it
        #: opened or last rolled back, for the most recently run (see `_prepare_option`).
        self._runs: WeakKeyDictionary[psycopg.AsyncConnection[Any], OrderedDict[str, int]] = (
            WeakKeyDictionary()
        )

    async def _connect(self) -> psycopg.AsyncConnection[Any]:
        identify = self.prepared_statements is None and "options" in self._options
        connection, mark = await self._open(secrets.token_hex(16) if identify else None)
        abandoned = False

        def close_afterwards(task: "asyncio.Future[Any]") -> None:
            nonlocal abandoned
            abandoned = True
            task.add_done_callback(lambda _task: self._pool.close_later(connection))

        try:
            # Statements run here have the deadline like every other: a paused or
            # queueing pooler accepts a connection and then does not answer.
            if mark is not None:
                dedicated = await self._within_deadline(
                    _own_session(connection, mark), connection, close_afterwards, may_write=False
                )
            else:
                dedicated = bool(self.prepared_statements)
            if dedicated:
                connection.prepare_threshold = PREPARE_THRESHOLD
            if connection.info.parameter_status("TimeZone") != "UTC":
                # The startup options that set it were refused (a pooler), or set otherwise
                # by the URL. SET TIME ZONE is a session setting that poolers keep:
                # PgBouncer tracks TimeZone and sets it on whichever server connection
                # serves this client next.
                await self._within_deadline(
                    connection.execute("SET TIME ZONE 'UTC'", prepare=False),
                    connection,
                    close_afterwards,
                    may_write=False,
                )
        except BaseException:
            if not abandoned:
                await _close(connection)
            raise
        return connection

    async def _open(self, mark: str | None) -> tuple[psycopg.AsyncConnection[Any], str | None]:
        """A new connection, and the `mark` its startup options carry (None if they did not)."""
        options = dict(self._options)
        if mark is not None:
            options["options"] += f" -c {SESSION_MARK}={mark}"
        try:
            connection = await psycopg.AsyncConnection.connect(
                self._conninfo, autocommit=True, **options
            )
            return connection, mark
        except psycopg.OperationalError as exc:
            # PgBouncer refuses startup parameters it does not know, such as the `options`
            # that carry the statement timeout. The client-side deadline still bounds
            # every statement, so connect without them.
            if "unsupported startup parameter" not in str(exc):
                raise
            if self._declared_direct:
                raise psycopg.OperationalError(
                    f"{exc} (DB_TRANSACTION_POOLER=false, but a pooler answers: set it to "
                    "true, or leave it unset)"
                ) from exc
            if self._options.pop("options", None) is not None:
                logger.warning(
                    "The database refused the statement timeout as a startup parameter "
                    "(%s); statements are bounded by the client-side deadline only; %s.",
                    describe_database_error(exc),
                    POOLER_ADVICE,
                )
            options.pop("options", None)
            connection = await psycopg.AsyncConnection.connect(
                self._conninfo, autocommit=True, **options
            )
            return connection, None

    async def _run(
        self, connection: psycopg.AsyncConnection[Any], statement: CompiledStatement, params: Params
    ) -> list[Row]:
        cursor = await self._execute(connection, statement, params)
        return await cursor.fetchall()

    async def _run_counting(
        self, connection: psycopg.AsyncConnection[Any], statement: CompiledStatement, params: Params
    ) -> int:
        cursor = await self._execute(connection, statement, params)
        return cursor.rowcount

    async def _execute(
        self, connection: psycopg.AsyncConnection[Any], statement: CompiledStatement, params: Params
    ) -> psycopg.AsyncCursor[Any]:
        prepare = self._prepare_option(connection, statement)
        if prepare:
            # Prepared in a pipeline: outside one, psycopg sends the statement to be prepared
            # and waits for the answer before it sends the run, a round trip of its own.
            async with connection.pipeline():
                return await connection.execute(statement.sql, params, prepare=True)
        return await connection.execute(statement.sql, params, prepare=prepare)

    def _prepare_option(
        self, connection: psycopg.AsyncConnection[Any], statement: CompiledStatement
    ) -> bool | None:
        """psycopg's `prepare` for this run of `statement` on `connection`: True on the run
        that prepares it, the first for the few marked `prepare=True` and otherwise the one
        on which psycopg would (after PREPARE_THRESHOLD runs); False if it is never to be;
        else None, which runs it as prepared once it is.

        Never True on a connection that does not prepare (a transaction pooler's:
        `prepare_threshold` None makes psycopg ignore `prepare=True`). psycopg keys what it
        prepared by the SQL and the parameters' types, and every int goes as int8
        (`_adapters`), so counting runs by the SQL mostly agrees with its count. Where it
        does not (a NULL goes without a type, where a date or a time has one), psycopg
        prepares a statement earlier than it would have, or, as left to itself, later.

        Counts are kept for COUNTED_STATEMENTS, the least recently run forgotten first: a
        client can make thousands of different listings, each of which would otherwise stay
        for the connection's life.
        """
        if statement.prepare is False:
            return False
        if connection.prepare_threshold is None:
            return None
        runs = self._runs.get(connection)
        if runs is None:
            runs = self._runs[connection] = OrderedDict()
        count = runs.get(statement.sql, 0)
        runs[statement.sql] = count + 1
        runs.move_to_end(statement.sql)
        if len(runs) > COUNTED_STATEMENTS:
            runs.popitem(last=False)
        return count == (0 if statement.prepare else connection.prepare_threshold) or None

    async def _run_together(
        self,
        connection: psycopg.AsyncConnection[Any],
        steps: Sequence[tuple[CompiledStatement, Params]],
    ) -> list[list[Row]]:
        # Everything is sent before any answer is awaited: the answers are read when the
        # pipeline ends. A failing step makes the server skip the rest, COMMIT included,
        # and leaves the transaction failed for the caller to roll back.
        async with connection.pipeline():
            await connection.execute("BEGIN", prepare=False)
            cursors = [
                await connection.execute(
                    statement.sql, params, prepare=self._prepare_option(connection, statement)
                )
                for statement, params in steps
            ]
            await connection.execute("COMMIT", prepare=False)
        return [await cursor.fetchall() if _has_rows(cursor) else [] for cursor in cursors]

    async def _cancel(self, connection: psycopg.AsyncConnection[Any]) -> None:
        await connection.cancel_safe(timeout=CANCEL_GRACE_SECONDS)

    # Never prepared: there is nothing to plan.
    async def _end(self, connection: psycopg.AsyncConnection[Any], *, commit: bool) -> None:
        await connection.execute("COMMIT" if commit else "ROLLBACK", prepare=False)
        if not commit:
            # psycopg forgets what it prepared at a ROLLBACK (and deallocates it all).
            self._runs.pop(connection, None)

    def _reusable(self, connection: psycopg.AsyncConnection[Any]) -> bool:
        pgconn = connection.pgconn
        return pgconn.status == pq.ConnStatus.OK and (
            pgconn.transaction_status == pq.TransactionStatus.IDLE
        )

    def _in_transaction(self, connection: psycopg.AsyncConnection[Any]) -> bool:
        status = connection.pgconn.transaction_status
        return status in (pq.TransactionStatus.INTRANS, pq.TransactionStatus.INERROR)

    def _classify(
        self, exc: BaseException, connection: psycopg.AsyncConnection[Any] | None
    ) -> DatabaseError | None:
        if not isinstance(exc, psycopg.Error):
            return None
        reason = describe_database_error(exc)
        if connection is None:
            # Opening a connection failed: refused by configuration, or not reached.
            if refuses_configuration(exc):
                return DatabaseMisconfiguredError(reason)
            return DatabaseUnavailableError(reason)
        state = exc.sqlstate
        if state is None:
            # The client library's own error: the connection was lost, or it was used in
            # a way it does not allow, which is a bug, not an outage.
            if isinstance(exc, psycopg.OperationalError) and connection.broken:
                return DatabaseUnavailableError(reason)
            return None
        if self.prepared_statements and (
            state in _PREPARED_STATEMENT_STATES
            or (state == "08P01" and "prepared statement" in str(exc))
        ):
            # Only a setting can have turned them on where they are not kept.
            return DatabaseMisconfiguredError(
                f"{reason} (prepared statements are on, but the way to the database does "
                "not keep them: a pooler that does not track them; set "
                "DB_PREPARED_STATEMENTS=false, or DB_TRANSACTION_POOLER=true)"
            )
        if state in _MISCONFIGURATION_STATES or (
            state.startswith("08") and refuses_configuration(exc)
        ):
            return DatabaseMisconfiguredError(reason)
        if state.startswith("08") or state in _CONNECTION_LOST_STATES:
            return DatabaseUnavailableError(reason)
        if state in _SCHEMA_MISSING_STATES:
            return DatabaseSchemaError(reason)
        if isinstance(exc, psycopg.OperationalError):
            # A statement timeout, a lock wait, too many connections: busy, not gone.
            return DatabaseBusyError(reason)
        return None


async def _own_session(connection: psycopg.AsyncConnection[Any], mark: str) -> bool:
    """Whether the server session that answers is the one this connection's startup
    created, and so keeps this connection's prepared statements.

    `mark` was sent in the startup options, as a setting only a session started by that
    startup packet has; and a session's process id is what the server sends a client it
    starts a session for (BackendKeyData). A transaction pooler answers from sessions it
    shares between clients: PgBouncer refuses startup options, or drops them
    (`ignore_startup_parameters`), and it, Neon's pooler, Supavisor and pgcat send key
    data of their own, so a transaction pooler never passes both checks.
    """
    cursor = await connection.execute(
        f"SELECT pg_backend_pid(), current_setting('{SESSION_MARK}', true)", prepare=False
    )
    row = await cursor.fetchone()
    return row == (connection.info.backend_pid, mark)


def refuses_configuration(exc: psycopg.Error) -> bool:
    """Whether `exc`, met opening a connection, is the database refusing this
    configuration (which only an operator can fix) rather than not being there."""
    if isinstance(exc, psycopg.ProgrammingError):  # the URL itself does not parse
        return True
    if exc.sqlstate in _MISCONFIGURATION_STATES:
        return True
    message = str(exc).lower()
    return any(sign in message for sign in _MISCONFIGURATION_SIGNS)


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


def _has_rows(cursor: psycopg.AsyncCursor[Any]) -> bool:
    """Whether the statement `cursor` ran answered with rows (perhaps none): what
    `cursor.description is not None` says, without making an object per column, which was
    a sixth of the instructions of a write planned from a kept record."""
    result = cursor.pgresult
    return result is not None and (result.nfields > 0 or result.status == pq.ExecStatus.TUPLES_OK)
