"""Database setup: map a configured URL to an async driver and build the engine."""

import asyncio
import logging
from typing import Any

from sqlalchemy import URL, event, make_url, text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from todo_api.settings import DEFAULT_SQLITE_FILE, Settings

logger = logging.getLogger(__name__)

POSTGRES_DRIVER = "postgresql+psycopg"
SQLITE_DRIVER = "sqlite+aiosqlite"

READINESS_TIMEOUT_SECONDS = 2.0


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


def is_pooled_endpoint(url: URL) -> bool:
    """Whether the host is a transaction-mode pooler such as Neon's `-pooler` endpoint."""
    return "-pooler" in (url.host or "")


def create_engine(settings: Settings) -> AsyncEngine:
    url = async_database_url(settings.database_url)
    if url.get_backend_name() == "sqlite":
        if settings.database_url is None:
            logger.info("DATABASE_URL is not set; using the embedded SQLite file %s", url.database)
        return _create_sqlite_engine(url)
    return _create_postgres_engine(url)


def postgres_connect_args(url: URL) -> dict[str, Any]:
    """Keyword arguments for psycopg beyond what the URL already says."""
    connect_args: dict[str, Any] = {}
    if is_pooled_endpoint(url):
        # PgBouncer in transaction mode hands each transaction to any server connection,
        # so a statement prepared on one is unknown on the next.
        connect_args["prepare_threshold"] = None
    if "connect_timeout" not in url.query:
        connect_args["connect_timeout"] = 10
    return connect_args


def _create_postgres_engine(url: URL) -> AsyncEngine:
    return create_async_engine(
        url,
        connect_args=postgres_connect_args(url),
        pool_size=10,
        max_overflow=10,
        pool_timeout=10,
        # Neon suspends idle computes and drops their connections; check before reuse.
        pool_pre_ping=True,
        pool_recycle=240,
    )


def _create_sqlite_engine(url: URL) -> AsyncEngine:
    engine = create_async_engine(url, connect_args={"timeout": 30})

    @event.listens_for(engine.sync_engine, "connect")
    def _configure_sqlite(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        # WAL lets readers proceed during a write; FULL syncs every commit so an
        # acknowledged write survives a crash.
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.close()

    return engine


async def database_is_ready(engine: AsyncEngine) -> bool:
    """Whether a trivial query answers within the readiness timeout."""

    async def ping() -> None:
        async with engine.connect() as connection:
            await connection.execute(text("SELECT 1"))

    try:
        await asyncio.wait_for(ping(), timeout=READINESS_TIMEOUT_SECONDS)
    except Exception as exc:
        logger.warning("Readiness check failed: %s", repr(exc))
        return False
    return True
