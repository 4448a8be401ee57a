"""Database setup: map a configured URL to a backend and build its connection pool."""

import logging
from typing import Any

from sqlalchemy import URL, make_url

from todo_api.db.database import CANCEL_GRACE_SECONDS, Database, DatabaseAvailability
from todo_api.db.postgres import PostgresDatabase
from todo_api.db.sqlite import SqliteDatabase
from todo_api.settings import DEFAULT_SQLITE_FILE, Settings

logger = logging.getLogger(__name__)

POSTGRES_DRIVER = "postgresql+psycopg"
SQLITE_DRIVER = "sqlite+aiosqlite"

#: The readiness pool's wait for its one connection.
READINESS_TIMEOUT_SECONDS = 2.0
#: How much longer than the server's statement timeout a statement may take, counted by
#: us, before the request gives up on it: time for the server's own error to arrive.
DEADLINE_MARGIN_SECONDS = 0.5


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
    """Whether connections are known to go through a transaction-mode pooler.

    Known from the setting, or from Neon's `-pooler` host name. Any other pooler refuses
    the `options` startup parameter, and connections are then opened without it (see
    todo_api.db.postgres).
    """
    if settings.db_transaction_pooler is not None:
        return settings.db_transaction_pooler
    return any(host.split(".", 1)[0].endswith("-pooler") for host in _hosts(url))


def uses_prepared_statements(url: URL, settings: Settings) -> bool | None:
    """Whether server-side prepared statements stay with their connection: True, False,
    or None when each connection finds out as it opens (todo_api.db.postgres).

    Known, never guessed from errors: a transaction pooler that does not track them
    (PgBouncer before 1.21) hands one server connection to many clients, and a client's
    Bind of `_pg3_0` may then run another client's `_pg3_0` without any error. Known from
    DB_PREPARED_STATEMENTS, from DB_TRANSACTION_POOLER (false: a direct path), or from a
    Neon host: its proxy gives each connection to a direct host a server connection of
    its own, and `-pooler` hosts are its PgBouncer. Otherwise each connection checks that
    the session answering it is the one its startup created; which needs the startup
    options this app sends, so not with a URL that has its own.
    """
    if settings.db_prepared_statements is not None:
        return settings.db_prepared_statements
    if settings.db_transaction_pooler is not None:
        return not settings.db_transaction_pooler
    hosts = _hosts(url)
    if hosts and all(_is_neon_direct(host) for host in hosts):
        return True
    if uses_transaction_pooler(url, settings) or "options" in url.query:
        return False
    return None


def _hosts(url: URL) -> list[str]:
    # libpq takes several comma-separated hosts, tried in turn.
    return [host for host in (url.host or "").lower().split(",") if host]


def _is_neon_direct(host: str) -> bool:
    endpoint, _, domain = host.partition(".")
    return (domain == "neon.tech" or domain.endswith(".neon.tech")) and not endpoint.endswith(
        "-pooler"
    )


def postgres_connect_args(url: URL, settings: Settings) -> dict[str, Any]:
    """Keyword arguments for psycopg beyond what the URL already says."""
    connect_args: dict[str, Any] = {}
    if "connect_timeout" not in url.query:
        connect_args["connect_timeout"] = settings.db_connect_timeout
    # A transaction-mode pooler refuses the `options` startup parameter: statements are
    # then bounded by our deadline alone, and the session's time zone is set by a SET.
    if not uses_transaction_pooler(url, settings) and "options" not in url.query:
        options = ["-c TimeZone=UTC"]
        if settings.db_statement_timeout_ms:
            options.insert(0, f"-c statement_timeout={settings.db_statement_timeout_ms}")
        connect_args["options"] = " ".join(options)
    return connect_args


def libpq_conninfo(url: URL) -> str:
    """The URL as libpq takes it (no SQLAlchemy driver name)."""
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


def statement_deadline(settings: Settings) -> float | None:
    """Seconds a statement may take, counted by us; None when statement_timeout is off."""
    if not settings.db_statement_timeout_ms:
        return None
    return settings.db_statement_timeout_ms / 1000 + DEADLINE_MARGIN_SECONDS


def create_database(settings: Settings, availability: DatabaseAvailability) -> Database:
    url = async_database_url(settings.database_url)
    if settings.database_url is None:
        logger.info("DATABASE_URL is not set; using the embedded SQLite file %s", url.database)
    return _create_database(url, settings, availability)


def create_readiness_database(settings: Settings, availability: DatabaseAvailability) -> Database:
    """A one-connection pool for the readiness probe, apart from the requests' pool.

    Readiness is about the database: a pool that requests keep busy says nothing about
    it, and a probe queued behind them would fail exactly when the service is busiest.
    """
    reserve = {
        "db_pool_size": 1,
        "db_max_overflow": 0,
        "db_pool_timeout": READINESS_TIMEOUT_SECONDS,
    }
    url = async_database_url(settings.database_url)
    return _create_database(url, settings.model_copy(update=reserve), availability)


def _create_database(url: URL, settings: Settings, availability: DatabaseAvailability) -> Database:
    if url.get_backend_name() == "sqlite":
        return SqliteDatabase(
            url.database or "",
            availability=availability,
            pool_size=settings.db_pool_size,
            max_overflow=settings.db_max_overflow,
            pool_timeout=settings.db_pool_timeout,
        )
    deadline = statement_deadline(settings)
    return PostgresDatabase(
        libpq_conninfo(url),
        connect_options=postgres_connect_args(url, settings),
        prepared_statements=uses_prepared_statements(url, settings),
        declared_direct=settings.db_transaction_pooler is False,
        availability=availability,
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_max_overflow,
        pool_timeout=settings.db_pool_timeout,
        # Replaced before Neon's idle suspend (5 minutes) or a load balancer's idle cut.
        pool_recycle=settings.db_pool_recycle,
        deadline=deadline,
        # Long enough for a request cancelled at shutdown to get a connection and run one
        # statement (freeing an idempotency key).
        close_wait=settings.db_pool_timeout
        + (deadline or settings.db_connect_timeout)
        + 2 * CANCEL_GRACE_SECONDS,
    )
