"""Alembic environment: migrates the database the application settings point at."""

import asyncio
from logging.config import fileConfig

from alembic import context
from sqlalchemy import URL, pool
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from todo_api import exit_codes
from todo_api.db.database import DatabaseMisconfiguredError
from todo_api.db.models import Task
from todo_api.db.setup import async_database_url
from todo_api.db.startup import (
    DatabaseNotReachedError,
    misconfiguration_line,
    say,
    wait_for_database,
)
from todo_api.settings import settings_or_exit

config = context.config
if config.config_file_name is not None and config.attributes.get("configure_logger", True):
    fileConfig(config.config_file_name, disable_existing_loggers=False)

target_metadata = Task.metadata


def _configured_url() -> str | None:
    """An explicit URL (tests), else MIGRATION_DATABASE_URL, else the app's DATABASE_URL.

    Neon advises migrating over the direct endpoint while the app uses the pooled one.
    """
    explicit: str | None = config.attributes.get("database_url")
    if explicit is None:
        settings = settings_or_exit()
        explicit = settings.migration_database_url or settings.database_url
    return explicit


def _database_url() -> URL:
    return async_database_url(_configured_url())


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


async def _wait_for_database() -> None:
    """Wait for a database that is not there yet; stop at once if it refuses us."""
    configured = _configured_url()
    try:
        await wait_for_database(settings_or_exit(), configured)
    except DatabaseMisconfiguredError as exc:
        say(f"{misconfiguration_line(exc, configured)} Nothing was migrated.")
        raise SystemExit(exit_codes.MISCONFIGURED) from None
    except DatabaseNotReachedError as exc:
        say(f"{exc}; nothing was migrated.")
        raise SystemExit(exit_codes.DATABASE_UNREACHABLE) from None


async def _run_online() -> None:
    await _wait_for_database()
    url = _database_url()
    # Unprepared statements and no startup options: migrations work through any pooler,
    # and a long migration is not cut off by the requests' statement timeout.
    connect_args: dict[str, object] = (
        {"prepare_threshold": None, "connect_timeout": settings_or_exit().db_connect_timeout}
        if url.get_backend_name() == "postgresql"
        else {}
    )
    engine = create_async_engine(url, poolclass=pool.NullPool, connect_args=connect_args)
    async with engine.connect() as connection:
        await connection.run_sync(_run)
    await engine.dispose()


if context.is_offline_mode():
    context.configure(
        url=_database_url().render_as_string(hide_password=False),
        target_metadata=target_metadata,
        literal_binds=True,
    )
    with context.begin_transaction():
        context.run_migrations()
else:
    asyncio.run(_run_online())
