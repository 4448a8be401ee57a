"""Running compiled statements on the driver's own connections, with time limits.

`Database` is what the data layer talks to: PostgreSQL through psycopg, or the embedded
SQLite file through aiosqlite, behind one interface. Failures come out as two kinds:
`DatabaseUnavailableError` (the database cannot serve: refused, lost, or no answer in
time) and `DatabaseBusyError` (it is there, but this request's work did not fit its time
limits and was not done). Anything else is a bug and propagates as it is.
"""

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterable, Mapping
from contextlib import asynccontextmanager, suppress
from typing import Any, TypeVar

from sqlalchemy import Dialect
from sqlalchemy.sql import ClauseElement

from todo_api.db.pool import ConnectionPool, Pooled, PoolTimeoutError
from todo_api.db.statements import CompiledStatement, compile_statement

logger = logging.getLogger(__name__)

T = TypeVar("T")
Row = tuple[Any, ...]

#: How long a statement past its deadline gets for the server to confirm its cancellation.
CANCEL_GRACE_SECONDS = 0.5
Record = dict[str, Any]


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
        self._schema_reported = False

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
    """A pool of connections to one database and the statements compiled for it."""

    dialect: Dialect
    #: Column types whose values the driver already returns as their Python type makes them.
    loaded_as_is: tuple[type, ...] = ()

    def __init__(
        self,
        pool: ConnectionPool[Any],
        *,
        availability: DatabaseAvailability,
        deadline: float | None,
    ) -> None:
        self._pool = pool
        self.availability = availability
        self._deadline = deadline
        self._compiled: dict[ClauseElement, CompiledStatement] = {}
        self._abandoned: set[asyncio.Future[Any]] = set()

    def compiled(self, statement: ClauseElement) -> CompiledStatement:
        """`statement` compiled for this database; each statement object is compiled once."""
        try:
            return self._compiled[statement]
        except KeyError:
            compiled = compile_statement(statement, self.dialect, loaded_as_is=self.loaded_as_is)
            self._compiled[statement] = compiled
            return compiled

    def precompile(self, statements: Iterable[ClauseElement]) -> None:
        """Compile `statements` now (at start-up) rather than on their first use."""
        for statement in statements:
            self.compiled(statement)

    @asynccontextmanager
    async def session(self) -> AsyncIterator["Session"]:
        """One connection for a sequence of statements (each commits on its own)."""
        try:
            pooled = await self._pool.acquire()
        except PoolTimeoutError as exc:
            raise DatabaseBusyError(str(exc)) from None
        except Exception as exc:
            raise self._translate(exc) from exc
        session = Session(self, pooled)
        try:
            yield session
        finally:
            session.end()

    async def fetch_one(self, statement: ClauseElement, params: Mapping[str, Any]) -> Row | None:
        async with self.session() as session:
            return await session.fetch_one(statement, params)

    async def fetch_all(self, statement: ClauseElement, params: Mapping[str, Any]) -> list[Row]:
        async with self.session() as session:
            return await session.fetch_all(statement, params)

    async def execute(self, statement: ClauseElement, params: Mapping[str, Any]) -> int:
        async with self.session() as session:
            return await session.execute(statement, params)

    async def close(self) -> None:
        await self._pool.close()
        if self._abandoned:
            await asyncio.gather(*self._abandoned, return_exceptions=True)

    # What each backend provides.

    async def _run(self, connection: Any, sql: str, params: Mapping[str, Any]) -> list[Row]:
        """Run one statement; its rows (none for a statement without a result)."""
        raise NotImplementedError

    async def _run_counting(self, connection: Any, sql: str, params: Mapping[str, Any]) -> int:
        """Run one statement that returns no rows; how many rows it changed."""
        raise NotImplementedError

    async def _begin(self, connection: Any) -> None:
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

    def _classify(self, exc: BaseException) -> DatabaseError | None:
        """The kind of failure `exc` is, or None for one that is not about the database."""
        raise NotImplementedError

    def _statement_never_ran(self, exc: BaseException) -> bool:
        """Whether `exc` means the statement was refused before it ran and may be rerun."""
        return False

    async def _reopen(self, pooled: Pooled[Any]) -> None:
        """Give `pooled` a new connection in place of one that can no longer be used."""
        try:
            await self._pool.reopen(pooled)
        except Exception as exc:
            raise self._translate(exc) from exc

    # Shared machinery.

    def _translate(self, exc: Exception, sql: str = "") -> Exception:
        kind = self._classify(exc)
        if kind is None:
            return StatementFailedError(sql) if sql else exc
        if isinstance(kind, DatabaseSchemaError):
            # Not an outage: the database answers, and nothing but a migration will help.
            self.availability.report_schema_missing(str(kind))
        elif isinstance(kind, DatabaseUnavailableError):
            self.availability.mark_unavailable(str(kind))
        return kind

    async def _within_deadline(
        self,
        work: Coroutine[Any, Any, T],
        connection: Any,
        on_abandon: Callable[["asyncio.Future[T]"], None],
    ) -> T:
        """Run `work` (a statement on `connection`), but never wait much past the deadline.

        At the deadline the server is asked to cancel the statement, and its answer, an
        error or the result if the statement beat the cancel, is what counts. A server
        that does not answer even that within the grace period (a pooler queueing for a
        server that is gone) gets no more waiting: the request answers at once, and the
        statement's task is left to end in the background, its connection then closed.
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
        raise DatabaseUnavailableError(reason, outcome_unknown=True)

    def _abandon(
        self, task: "asyncio.Future[T]", on_abandon: Callable[["asyncio.Future[T]"], None]
    ) -> None:
        task.cancel()
        self._abandoned.add(task)
        task.add_done_callback(self._abandoned.discard)
        # How the cancelled query ended is of no interest; retrieving it keeps asyncio quiet.
        task.add_done_callback(lambda done: done.cancelled() or done.exception())
        on_abandon(task)


class Session:
    """One pooled connection, held by one request for a sequence of statements."""

    __slots__ = ("_database", "_in_transaction", "_lost", "_pooled")

    def __init__(self, database: Database, pooled: Pooled[Any]) -> None:
        self._database = database
        self._pooled = pooled
        self._in_transaction = False
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

    async def fetch_all(self, statement: ClauseElement, params: Mapping[str, Any]) -> list[Row]:
        compiled = self._database.compiled(statement)
        rows = await self._send(compiled.sql, compiled.parameters(params), counting=False)
        assert isinstance(rows, list)
        return [compiled.row(row) for row in rows] if compiled.result_processors else rows

    async def fetch_one(self, statement: ClauseElement, params: Mapping[str, Any]) -> Row | None:
        rows = await self.fetch_all(statement, params)
        return rows[0] if rows else None

    async def execute(self, statement: ClauseElement, params: Mapping[str, Any]) -> int:
        """Run a statement without a result; how many rows it changed."""
        compiled = self._database.compiled(statement)
        count = await self._send(compiled.sql, compiled.parameters(params), counting=True)
        assert isinstance(count, int)
        return count

    async def transaction(self, work: Callable[["Session"], Awaitable[T]]) -> T:
        """Run `work` in one transaction: committed if it returns, rolled back if it raises.

        A statement refused before it ran in a way that a rerun cures (see
        `_statement_never_ran`) rolls the transaction back and runs it once more.
        """
        database = self._database
        for attempt in range(2):
            self._in_transaction = True
            try:
                await self._guard(database._begin(self._pooled.connection))
                result = await work(self)
                await self._guard(database._end(self._pooled.connection, commit=True))
                return result
            except _RerunError as rerun:
                await self._roll_back()
                if attempt == 1:
                    raise database._translate(rerun.error) from rerun.error
                await self._recover()
            except BaseException:
                await self._roll_back()
                raise
            finally:
                self._in_transaction = False
        raise AssertionError("unreachable")

    async def _roll_back(self) -> None:
        if self._lost:
            return
        connection = self._pooled.connection
        if not self._database._in_transaction(connection):
            return
        # The error that led here is the one to report; a connection left in a transaction
        # is not reused.
        with suppress(DatabaseError, _RerunError):
            await self._guard(self._database._end(connection, commit=False))

    async def _recover(self) -> None:
        if not self._database._reusable(self._pooled.connection):
            await self._database._reopen(self._pooled)

    async def _send(
        self, sql: str, params: Mapping[str, Any], *, counting: bool
    ) -> list[Row] | int:
        database = self._database
        run = database._run_counting if counting else database._run
        try:
            return await self._guard(run(self._pooled.connection, sql, params), sql)
        except _RerunError:
            if self._in_transaction:
                raise
            await self._recover()
            try:
                return await self._guard(run(self._pooled.connection, sql, params), sql)
            except _RerunError as again:
                raise database._translate(again.error, sql) from again.error

    async def _guard(self, work: Coroutine[Any, Any, T], sql: str = "") -> T:
        """Await `work` within the deadline, turning driver errors into ours."""
        if self._lost:
            work.close()
            raise DatabaseUnavailableError("the connection was given up on", outcome_unknown=True)
        database = self._database
        try:
            return await database._within_deadline(work, self._pooled.connection, self._lose)
        except DatabaseError:
            raise
        except Exception as exc:
            if database._statement_never_ran(exc):
                raise _RerunError(exc) from exc
            raise database._translate(exc, sql) from exc

    def _lose(self, task: "asyncio.Future[Any]") -> None:
        """The connection stays with an abandoned query, and is closed after it; the slot
        is freed now, so a hung query never holds up other requests' connections."""
        self._lost = True
        connection = self._pooled.connection
        pool = self._database._pool
        pool.detach()
        task.add_done_callback(lambda _task: pool.close_later(connection))


class _RerunError(Exception):
    """A statement was refused before it ran, in a way that running it again cures."""

    def __init__(self, error: Exception) -> None:
        super().__init__(str(error))
        self.error = error
