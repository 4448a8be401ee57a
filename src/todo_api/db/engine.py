"""Database setup: map a configured URL to an async driver and build the engine."""

import asyncio
import logging
import select
import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import psycopg
from psycopg.pq import ConnStatus
from sqlalchemy import URL, Connection, event, make_url, text
from sqlalchemy.exc import DBAPIError, DisconnectionError, InterfaceError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from todo_api.settings import DEFAULT_SQLITE_FILE, Settings

logger = logging.getLogger(__name__)

POSTGRES_DRIVER = "postgresql+psycopg"
SQLITE_DRIVER = "sqlite+aiosqlite"

READINESS_TIMEOUT_SECONDS = 2.0
# How long a SQLite writer waits for another's lock before giving up.
SQLITE_BUSY_TIMEOUT_SECONDS = 10.0


class UnsupportedDatabaseError(ValueError):
    """The URL names a database this service does not run on."""


def async_database_url(database_url: str | None) -> URL:
    """Turn a configured URL (a Neon console string, say) into one for our async drivers.

    Neon and most hosts hand out `postgres://` or `postgresql://` URLs, which SQLAlchemy would
    pair with psycopg2; we always use psycopg 3, whose libpq understands `sslmode` and
    `channel_binding` exactly as the console writes them, so the query string passes unchanged.
    """
    if database_url is None:
        return URL.create(SQLITE_DRIVER, database=str(DEFAULT_SQLITE_FILE.resolve()))
    url = make_url(database_url)
    backend = url.drivername.split("+", 1)[0]
    if backend in {"postgres", "postgresql"}:
        return url.set(drivername=POSTGRES_DRIVER)
    if backend == "sqlite":
        return url.set(drivername=SQLITE_DRIVER)
    raise UnsupportedDatabaseError(
        f"DATABASE_URL must be a PostgreSQL or SQLite URL, not {backend!r}."
    )


def uses_transaction_pooler(url: URL, settings: Settings) -> bool:
    """Whether connections go through a transaction-mode pooler such as Neon's `-pooler`."""
    if settings.db_transaction_pooler is not None:
        return settings.db_transaction_pooler
    return "-pooler" in (url.host or "")


def postgres_connect_args(url: URL, settings: Settings) -> dict[str, Any]:
    """Keyword arguments for psycopg beyond what the URL already says."""
    connect_args: dict[str, Any] = {}
    if "connect_timeout" not in url.query:
        connect_args["connect_timeout"] = settings.db_connect_timeout
    if uses_transaction_pooler(url, settings):
        # PgBouncer in transaction mode hands each transaction to any server connection,
        # so a statement prepared on one is unknown on the next; it also refuses the
        # `options` startup parameter, so the statement timeout is set per transaction.
        connect_args["prepare_threshold"] = None
    elif settings.db_statement_timeout_ms and "options" not in url.query:
        connect_args["options"] = f"-c statement_timeout={settings.db_statement_timeout_ms}"
    return connect_args


def create_engine(settings: Settings) -> AsyncEngine:
    url = async_database_url(settings.database_url)
    if settings.database_url is None:
        logger.info("DATABASE_URL is not set; using the embedded SQLite file %s", url.database)
    return _create_engine(url, settings)


def _create_engine(url: URL, settings: Settings) -> AsyncEngine:
    if url.get_backend_name() == "sqlite":
        return _create_sqlite_engine(url, settings)
    return _create_postgres_engine(url, settings)


def create_readiness_engine(settings: Settings) -> AsyncEngine:
    """A one-connection engine for the readiness probe, apart from the requests' pool.

    Readiness is about the database: a pool that requests keep busy says nothing about
    it, and a probe queued behind them would fail exactly when the service is busiest.
    """
    reserve = {
        "db_pool_size": 1,
        "db_max_overflow": 0,
        "db_pool_timeout": READINESS_TIMEOUT_SECONDS,
    }
    return _create_engine(
        async_database_url(settings.database_url), settings.model_copy(update=reserve)
    )


def _create_postgres_engine(url: URL, settings: Settings) -> AsyncEngine:
    timeout_per_transaction = (
        uses_transaction_pooler(url, settings) and settings.db_statement_timeout_ms > 0
    )
    engine = create_async_engine(
        url,
        connect_args=postgres_connect_args(url, settings),
        # Every request runs one statement, atomic on its own, so autocommit saves the
        # BEGIN and COMMIT round trips; it also keeps psycopg's count of uses, which a
        # rollback resets, so repeated statements get prepared on the server. Behind a
        # pooler the statement timeout is SET LOCAL, which needs a transaction.
        isolation_level="READ COMMITTED" if timeout_per_transaction else "AUTOCOMMIT",
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_max_overflow,
        pool_timeout=settings.db_pool_timeout,
        # Replaced before Neon's idle suspend (5 minutes) or a load balancer's idle cut.
        pool_recycle=settings.db_pool_recycle,
        # In autocommit no transaction is ever left open, so nothing needs rolling back
        # when a connection returns to the pool.
        pool_reset_on_return="rollback" if timeout_per_transaction else None,
        # Errors name the statement but not its values: task content stays out of logs.
        hide_parameters=True,
    )
    # Neon's suspend, a server restart or pg_terminate_backend close idle connections; spot
    # them as they leave the pool without a round trip (instead of pool_pre_ping's).
    event.listen(engine.sync_engine, "checkout", _discard_if_closed_by_server)
    if timeout_per_transaction:
        timeout = f"SET LOCAL statement_timeout = {settings.db_statement_timeout_ms}"

        @event.listens_for(engine.sync_engine, "begin")
        def _limit_statement_time(connection: Connection) -> None:
            connection.exec_driver_sql(timeout)

    return engine


def _discard_if_closed_by_server(dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
    """Make the pool replace a connection the server has closed or is closing.

    An idle connection receives nothing unless the server is ending it: then its FATAL
    message or EOF is waiting on the socket, which a zero-timeout poll sees at no cost.
    poll(), unlike select(), takes descriptors of any number (select() raises at 1024 and
    above, which a busy worker reaches). Whatever goes wrong in the check itself only
    costs a new connection, never the request.
    """
    try:
        pgconn = dbapi_connection.driver_connection.pgconn
        closed = pgconn.status != ConnStatus.OK or _has_input(pgconn.socket)
    except Exception:
        closed = True
    if closed:
        raise DisconnectionError("the server closed this pooled connection")


def _has_input(descriptor: int) -> bool:
    if not hasattr(select, "poll"):  # Windows: its select() has no 1024 limit
        return bool(select.select([descriptor], [], [], 0)[0])
    poller = select.poll()
    poller.register(descriptor, select.POLLIN | select.POLLPRI)
    return bool(poller.poll(0))


def _create_sqlite_engine(url: URL, settings: Settings) -> AsyncEngine:
    engine = create_async_engine(
        url,
        connect_args={"timeout": SQLITE_BUSY_TIMEOUT_SECONDS},
        hide_parameters=True,
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_max_overflow,
        pool_timeout=settings.db_pool_timeout,
    )

    @event.listens_for(engine.sync_engine, "connect")
    def _configure_sqlite(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        # WAL lets readers proceed during a write; FULL syncs every commit so an
        # acknowledged write survives a crash.
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.close()

    return engine


@asynccontextmanager
async def transactional_connection(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    """A connection for transactions of several statements (`async with connection.begin()`).

    On PostgreSQL the engine runs in autocommit (see above), where `begin()` would not
    make one; this connection leaves autocommit until it returns to the pool.
    """
    async with engine.connect() as connection:
        if connection.dialect.name == "postgresql":
            connection = await connection.execution_options(isolation_level="READ COMMITTED")
        yield connection


class DatabaseAvailability:
    """Tracks outages so that each one is logged once, not once per failed request."""

    def __init__(self) -> None:
        self.unavailable = False

    def mark_unavailable(self, reason: str) -> None:
        if not self.unavailable:
            self.unavailable = True
            logger.warning("Database unavailable, answering 503 until it is back: %s", reason)

    def mark_available(self) -> None:
        if self.unavailable:
            self.unavailable = False
            logger.warning("Database reachable again")

    def watch(self, engine: AsyncEngine) -> None:
        """A connection that returns to the pool intact proves the database answers again.

        Its statements got answers (a failure that reached the connection would have
        invalidated it, which hands no connection to this event). A pool event rather than
        one per statement: engine-level listeners cost every request a joined dispatcher.
        """

        def on_checkin(dbapi_connection: Any, _record: Any) -> None:
            if dbapi_connection is not None:
                self.mark_available()

        event.listen(engine.sync_engine, "checkin", on_checkin)


# Server-side codes of a connection being refused or cut: the database (or the way to it)
# is gone, as opposed to a statement that took too long or waited for a lock.
_CONNECTION_LOST_STATES = frozenset({"57P01", "57P02", "57P03"})


def is_outage(exc: BaseException) -> bool:
    """Whether `exc` means the database cannot serve at all, not that it is busy or slow."""
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    if isinstance(exc, InterfaceError):
        return True
    cause = getattr(exc, "orig", None) or exc
    if isinstance(cause, psycopg.Error):
        state = cause.sqlstate
        # No code at all: the client library could not connect or lost the socket.
        return state is None or state.startswith("08") or state in _CONNECTION_LOST_STATES
    if isinstance(cause, sqlite3.OperationalError):
        # Only a lock wait is SQLite being busy. Anything else (a file it cannot open, a disk
        # error, a table that is not there because nobody migrated) needs an operator, so
        # it is logged as an outage.
        message = str(cause)
        return "locked" not in message and "busy" not in message
    return False


async def readiness_failure(engine: AsyncEngine) -> str | None:
    """Why the database is not ready (no answer to a trivial query in time), or None."""

    async def ping() -> None:
        async with engine.connect() as connection:
            await connection.execute(text("SELECT 1"))

    try:
        await asyncio.wait_for(ping(), timeout=READINESS_TIMEOUT_SECONDS)
    except TimeoutError:
        return f"no answer within {READINESS_TIMEOUT_SECONDS:g} s"
    except Exception as exc:
        return describe_database_error(exc)
    return None


def describe_database_error(exc: BaseException) -> str:
    """One line naming the driver's error, without a traceback."""
    cause = getattr(exc, "orig", None) or exc
    first_line = (str(cause).strip().splitlines() or [""])[0]
    return f"{type(cause).__name__}: {first_line}"
