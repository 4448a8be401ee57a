"""Running compiled statements on the driver's own connections, with time limits.

`Database` is what the data layer talks to: PostgreSQL through psycopg, or the embedded
SQLite file through aiosqlite, behind one interface. Failures come out as a few kinds:
`DatabaseUnavailableError` (the database cannot serve: refused, lost, or no answer in
time), `DatabaseBusyError` (it is there, but this request's work did not fit its time
limits and was not done), `DatabaseMisconfiguredError` (it refuses this service's
configuration) and `DatabaseSchemaError` (it is not migrated). Anything else is a bug
and propagates as it is.
"""

import asyncio
import logging
from collections import OrderedDict
from collections.abc import (
    AsyncIterator,
    Callable,
    Coroutine,
    Iterable,
    Mapping,
    Sequence,
)
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass
from functools import cache
from types import MappingProxyType
from typing import Any, TypeVar

from sqlalchemy import Dialect
from sqlalchemy.sql import ClauseElement

from todo_api.db.pool import ConnectionPool, Pooled, PoolTimeoutError
from todo_api.db.recent_tasks import RecentTasks
from todo_api.db.statements import CompiledStatement, compile_statement

logger = logging.getLogger(__name__)

T = TypeVar("T")
Row = tuple[Any, ...]
Params = Mapping[str, Any]

#: How long a statement past its deadline gets for the server to confirm its cancellation.
CANCEL_GRACE_SECONDS = 0.5
#: Statement shapes compiled on first use (beyond those compiled at start-up) that are
#: kept, least recently used dropped first: a few KB each, so a few MB at most per process
#: however many distinct listings callers ask for.
STATEMENT_CACHE_SIZE = 256
Record = dict[str, Any]


@dataclass(frozen=True, slots=True)
class StatementShape:
    """A statement that `build(*args)` makes; equal shapes make the same statement.

    For statements with too many possible shapes to build them all at start-up (a
    listing's combinations of filters): only the shape is made per request, and the
    statement is built and compiled on the shape's first use.
    """

    build: Callable[..., ClauseElement]
    args: tuple[Any, ...]


Statement = ClauseElement | StatementShape
#: A statement and its values: one step of `Session.run_together`.
Step = tuple[Statement, Mapping[str, Any]]


class DatabaseError(Exception):
    """The database could not do what was asked; the message says why, in one line."""


class DatabaseUnavailableError(DatabaseError):
    """The database cannot serve: refused or lost the connection, or did not answer.

    `outcome_unknown` is True when a statement was sent and no answer came back: a write
    may or may not have been made.
    """

    def __init__(self, reason: str, *, outcome_unknown: bool = False) -> None:
        super().__init__(reason)
        self.outcome_unknown = outcome_unknown


class DatabaseSchemaError(DatabaseUnavailableError):
    """The database lacks a table or column this code uses: it was not migrated."""


class DatabaseMisconfiguredError(DatabaseUnavailableError):
    """The database refuses this service's configuration: its credentials, database name,
    TLS or URL options, or a setting that does not fit the way to it. Retrying will not
    help until an operator changes the configuration."""


class DatabaseBusyError(DatabaseError):
    """The database is there, but this work did not fit its time limits; nothing was done."""


class StatementFailedError(Exception):
    """A statement failed in a way that is not about the database's availability: a bug.

    Names the statement (never its values) for the log; the driver's error is the cause.
    """

    def __init__(self, sql: str) -> None:
        super().__init__(f"[SQL: {sql}]")


class DatabaseAvailability:
    """Tracks outages so that each one is logged once, not once per failed request."""

    def __init__(self) -> None:
        self.unavailable = False
        #: Why the database refused a new connection, until one is accepted again.
        self.refusal: str | None = None
        self._schema_reported = False
        self._statement_refusal_reported = False

    def report_refused_connection(self, reason: str) -> None:
        """Log, once until a new connection is accepted, that the database refuses to
        connect with this configuration."""
        if self.refusal is None:
            self.refusal = reason
            logger.error(
                "Database configuration refused; requests answer 503 until it is fixed: %s",
                reason,
            )

    def report_refused_statement(self, reason: str) -> None:
        """Log, once per process, that the database refuses a statement for a reason of
        configuration (a missing privilege, prepared statements it cannot keep)."""
        if not self._statement_refusal_reported:
            self._statement_refusal_reported = True
            logger.error(
                "Database configuration refused; requests that need it answer 503: %s", reason
            )

    def mark_connection_accepted(self) -> None:
        if self.refusal is not None:
            self.refusal = None
            logger.warning("Database configuration accepted again")

    def report_schema_missing(self, reason: str) -> None:
        """Log, once per process, that the schema lacks what the code uses."""
        if not self._schema_reported:
            self._schema_reported = True
            logger.error(
                "Database schema not migrated (run the migrations: `make migrate`); "
                "requests that need it answer 503: %s",
                reason,
            )

    def mark_unavailable(self, reason: str) -> None:
        if not self.unavailable:
            self.unavailable = True
            logger.warning("Database unavailable, answering 503 until it is back: %s", reason)

    def mark_available(self) -> None:
        if self.unavailable:
            self.unavailable = False
            logger.warning("Database reachable again")


def describe_database_error(exc: BaseException) -> str:
    """One line naming the driver's error, without a traceback."""
    first_line = (str(exc).strip().splitlines() or [""])[0]
    return f"{type(exc).__name__}: {first_line}"


class Database:
    """A pool of connections to one database, the statements compiled for it, and the
    records of tasks it last returned (`recent_tasks`)."""

    dialect: Dialect
    #: Column types whose values the driver already returns as their Python type makes them.
    loaded_as_is: tuple[type, ...] = ()

    def __init__(
        self,
        pool: ConnectionPool[Any],
        *,
        availability: DatabaseAvailability,
        deadline: float | None,
        close_wait: float,
    ) -> None:
        self._pool = pool
        self.availability = availability
        self._deadline = deadline
        self._close_wait = close_wait
        # Compiled at start-up and kept for good; anything else is kept in a bounded cache.
        self._pinned: dict[Statement, CompiledStatement] = {}
        self._recent: OrderedDict[Statement, CompiledStatement] = OrderedDict()
        self._abandoned: set[asyncio.Future[Any]] = set()
        #: What writes that compute from a task may plan from (`todo_api.db.tasks`).
        self.recent_tasks: RecentTasks[Any] = RecentTasks()
        self._open_sessions = 0
        #: Sessions begun since start-up: whether anything used the database since a moment.
        self.sessions_begun = 0
        self._no_open_sessions = asyncio.Event()
        self._no_open_sessions.set()

    def compiled(self, statement: Statement) -> CompiledStatement:
        """`statement` compiled for this database, from the caches where it is."""
        try:
            return self._pinned[statement]
        except KeyError:
            pass
        recent = self._recent
        try:
            compiled = recent[statement]
        except KeyError:
            compiled = self._compile(statement)
            recent[statement] = compiled
            if len(recent) > STATEMENT_CACHE_SIZE:
                recent.popitem(last=False)
            return compiled
        recent.move_to_end(statement)
        return compiled

    def precompile(self, statements: Iterable[Statement]) -> None:
        """Compile `statements` now (at start-up) and keep them for the process's life."""
        compiled = _compiled_together(self.dialect, self.loaded_as_is, tuple(statements))
        self._pinned.update(compiled)

    def _compile(self, statement: Statement) -> CompiledStatement:
        return _compile(self.dialect, self.loaded_as_is, statement)

    @asynccontextmanager
    async def session(self) -> AsyncIterator["Session"]:
        """One connection for a sequence of statements (each commits on its own)."""
        self._open_sessions += 1
        self.sessions_begun += 1
        self._no_open_sessions.clear()
        try:
            try:
                pooled = await self._pool.acquire()
            except PoolTimeoutError as exc:
                raise DatabaseBusyError(str(exc)) from None
            except DatabaseError:  # a statement run as the connection opened
                raise
            except Exception as exc:
                raise self._translate(exc) from exc
            session = Session(self, pooled)
            try:
                yield session
            finally:
                session.end()
        finally:
            self._open_sessions -= 1
            if not self._open_sessions:
                self._no_open_sessions.set()

    async def fetch_one(self, statement: Statement, params: Mapping[str, Any]) -> Row | None:
        async with self.session() as session:
            return await session.fetch_one(statement, params)

    async def fetch_all(self, statement: Statement, params: Mapping[str, Any]) -> list[Row]:
        async with self.session() as session:
            return await session.fetch_all(statement, params)

    async def execute(self, statement: Statement, params: Mapping[str, Any]) -> int:
        async with self.session() as session:
            return await session.execute(statement, params)

    async def _new_connection(self) -> Any:
        """A connection of the backend's (`_connect`): what the pool opens."""
        connection = await self._connect()
        # Whatever the database refused before, it has taken the configuration now.
        self.availability.mark_connection_accepted()
        return connection

    async def close(self) -> None:
        """Close the connections, once the sessions still open have ended (for a while).

        At shutdown the server cancels the requests still running and closes the
        database right after: a request that is unwinding (a keyed create freeing its
        key) still needs its connection, so it is given time to finish first.
        """
        with suppress(TimeoutError):
            async with asyncio.timeout(self._close_wait):
                await self._no_open_sessions.wait()
        # A replacement still opening is stopped first: a statement it gives up on is
        # among those waited for next.
        await self._pool.stop_renewing()
        # Statements given up on close their connections as they end: before the pool
        # stops waiting for the connections it is closing.
        if self._abandoned:
            await asyncio.wait(self._abandoned, timeout=self._close_wait)
        await self._pool.close()

    # What each backend provides.

    async def _connect(self) -> Any:
        """Open a connection, ready for statements."""
        raise NotImplementedError

    async def _run(
        self, connection: Any, statement: CompiledStatement, params: Params
    ) -> list[Row]:
        """Run one statement; its rows (none for a statement without a result)."""
        raise NotImplementedError

    async def _run_counting(
        self, connection: Any, statement: CompiledStatement, params: Params
    ) -> int:
        """Run one statement that returns no rows; how many rows it changed."""
        raise NotImplementedError

    async def _run_together(
        self, connection: Any, steps: Sequence[tuple[CompiledStatement, Params]]
    ) -> list[list[Row]]:
        """Run `steps` in one transaction, committed at the end; the rows of each."""
        raise NotImplementedError

    async def _end(self, connection: Any, *, commit: bool) -> None:
        raise NotImplementedError

    async def _cancel(self, connection: Any) -> None:
        """Ask the server to cancel what `connection` is running."""
        raise NotImplementedError

    def _reusable(self, connection: Any) -> bool:
        """Whether `connection` may go back to the pool: open, idle, no transaction."""
        raise NotImplementedError

    def _in_transaction(self, connection: Any) -> bool:
        raise NotImplementedError

    def _classify(self, exc: BaseException, connection: Any | None) -> DatabaseError | None:
        """The kind of failure `exc` is, or None for one that is not about the database.

        `connection` is the one the failed statement ran on; None when opening one failed.
        """
        raise NotImplementedError

    # Shared machinery.

    def _translate(self, exc: Exception, sql: str = "", connection: Any | None = None) -> Exception:
        kind = self._classify(exc, connection)
        if kind is None:
            return StatementFailedError(sql) if sql else exc
        refusal = self.availability.refusal
        if connection is None and type(kind) is DatabaseUnavailableError and refusal:
            # Nothing has connected since the database refused the configuration. A pooler
            # holds new logins for a while after a failed one (PgBouncer's
            # server_login_retry), so they time out: the refusal is still the news.
            kind = DatabaseMisconfiguredError(f"{refusal} (since then: {kind})")
        if isinstance(kind, DatabaseSchemaError):
            # Not an outage: the database answers, and nothing but a migration will help.
            self.availability.report_schema_missing(str(kind))
        elif isinstance(kind, DatabaseMisconfiguredError):
            if connection is None:
                self.availability.report_refused_connection(str(kind))
            else:
                self.availability.report_refused_statement(str(kind))
        elif isinstance(kind, DatabaseUnavailableError):
            self.availability.mark_unavailable(str(kind))
        return kind

    async def _within_deadline(
        self,
        work: Coroutine[Any, Any, T],
        connection: Any,
        on_abandon: Callable[["asyncio.Future[T]"], None],
        *,
        may_write: bool = True,
    ) -> T:
        """Run `work` (a statement on `connection`), but never wait much past the deadline.

        At the deadline the server is asked to cancel the statement, and its answer, an
        error or the result if the statement beat the cancel, is what counts. A server
        that does not answer even that within the grace period (a pooler queueing for a
        server that is gone) gets no more waiting: the request answers at once, and the
        statement's task is left to end in the background, its connection then closed.
        `may_write` says whether the statement could have changed data, so whether the
        unanswered outcome matters to the client.
        """
        if self._deadline is None:
            return await work
        task = asyncio.ensure_future(work)
        try:
            done, _ = await asyncio.wait((task,), timeout=self._deadline)
            if not done:
                with suppress(Exception):
                    await asyncio.wait_for(self._cancel(connection), CANCEL_GRACE_SECONDS)
                done, _ = await asyncio.wait((task,), timeout=CANCEL_GRACE_SECONDS)
        except asyncio.CancelledError:
            self._abandon(task, on_abandon)
            raise
        if done:
            return task.result()
        self._abandon(task, on_abandon)
        reason = f"no answer within {self._deadline + 2 * CANCEL_GRACE_SECONDS:g} s"
        self.availability.mark_unavailable(reason)
        raise DatabaseUnavailableError(reason, outcome_unknown=may_write)

    def _abandon(
        self, task: "asyncio.Future[T]", on_abandon: Callable[["asyncio.Future[T]"], None]
    ) -> None:
        task.cancel()
        self._abandoned.add(task)
        task.add_done_callback(self._abandoned.discard)
        # How the cancelled query ended is of no interest; retrieving it keeps asyncio quiet.
        task.add_done_callback(lambda done: done.cancelled() or done.exception())
        on_abandon(task)


def _compile(
    dialect: Dialect, loaded_as_is: tuple[type, ...], statement: Statement
) -> CompiledStatement:
    if isinstance(statement, StatementShape):
        statement = statement.build(*statement.args)
    return compile_statement(statement, dialect, loaded_as_is=loaded_as_is)


# Compiling the start-up statements takes about half a second; a process that makes several
# databases of one backend (a test's apps) does it once. One entry per backend (its dialect
# and types) and set of start-up statements.
@cache
def _compiled_together(
    dialect: Dialect, loaded_as_is: tuple[type, ...], statements: tuple[Statement, ...]
) -> Mapping[Statement, CompiledStatement]:
    compiled = {statement: _compile(dialect, loaded_as_is, statement) for statement in statements}
    return MappingProxyType(compiled)


class Session:
    """One pooled connection, held by one request for a sequence of statements."""

    __slots__ = ("_database", "_lost", "_pooled")

    def __init__(self, database: Database, pooled: Pooled[Any]) -> None:
        self._database = database
        self._pooled = pooled
        self._lost = False

    @property
    def lost(self) -> bool:
        """Whether the connection was given up on (left to a query that did not answer)."""
        return self._lost

    def end(self) -> None:
        if self._lost:
            return
        database = self._database
        reusable = database._reusable(self._pooled.connection)
        if reusable and database.availability.unavailable:
            # Its statements got answers: the database is back.
            database.availability.mark_available()
        database._pool.release(self._pooled, reusable=reusable)

    async def fetch_all(self, statement: Statement, params: Mapping[str, Any]) -> list[Row]:
        compiled = self._database.compiled(statement)
        rows = await self._send(compiled, compiled.parameters(params), counting=False)
        assert isinstance(rows, list)
        return [compiled.row(row) for row in rows] if compiled.result_processors else rows

    async def fetch_one(self, statement: Statement, params: Mapping[str, Any]) -> Row | None:
        rows = await self.fetch_all(statement, params)
        return rows[0] if rows else None

    async def execute(self, statement: Statement, params: Mapping[str, Any]) -> int:
        """Run a statement without a result; how many rows it changed."""
        compiled = self._database.compiled(statement)
        count = await self._send(compiled, compiled.parameters(params), counting=True)
        assert isinstance(count, int)
        return count

    async def run_together(self, steps: Sequence[Step]) -> list[list[Row]]:
        """Run `steps` in order in one transaction, committed if all succeed; the rows of
        each (none for a statement without a result).

        On PostgreSQL they go out together in a pipeline, BEGIN to COMMIT: one round trip
        to the database for all of them. So no step can take a value an earlier one
        returned: what a step needs from an earlier one it reads in SQL (the row that step
        wrote, `inserted_task_id()`).
        """
        database = self._database
        compiled = [(database.compiled(statement), params) for statement, params in steps]
        sql = "; ".join(statement.sql for statement, _ in compiled)
        bound = [(statement, statement.parameters(params)) for statement, params in compiled]
        try:
            results = await self._guard(database._run_together(self._pooled.connection, bound), sql)
        except BaseException:
            await self._roll_back()
            raise
        return [
            [statement.row(row) for row in rows] if statement.result_processors else rows
            for (statement, _), rows in zip(compiled, results, strict=True)
        ]

    async def _roll_back(self) -> None:
        if self._lost:
            return
        connection = self._pooled.connection
        if not self._database._in_transaction(connection):
            return
        # The error that led here is the one to report; a connection left in a transaction
        # is not reused.
        with suppress(DatabaseError):
            await self._guard(self._database._end(connection, commit=False), may_write=False)

    async def _send(
        self, statement: CompiledStatement, params: Params, *, counting: bool
    ) -> list[Row] | int:
        database = self._database
        run = database._run_counting if counting else database._run
        return await self._guard(run(self._pooled.connection, statement, params), statement.sql)

    async def _guard(
        self, work: Coroutine[Any, Any, T], sql: str = "", *, may_write: bool = True
    ) -> T:
        """Await `work` within the deadline, turning driver errors into ours."""
        if self._lost:
            work.close()
            raise DatabaseUnavailableError("the connection was given up on", outcome_unknown=True)
        database = self._database
        connection = self._pooled.connection
        try:
            return await database._within_deadline(
                work, connection, self._lose, may_write=may_write
            )
        except DatabaseError:
            raise
        except Exception as exc:
            raise database._translate(exc, sql, connection) from exc

    def _lose(self, task: "asyncio.Future[Any]") -> None:
        """The connection stays with an abandoned query, and is closed after it; the slot
        is freed now, so a hung query never holds up other requests' connections."""
        self._lost = True
        connection = self._pooled.connection
        pool = self._database._pool
        pool.detach()
        task.add_done_callback(lambda _task: pool.close_later(connection))
