"""Start-up: wait for a database that is not there yet; refuse one that refuses us.

A database restarting, a pooler still failing its logins, a compute waking up: start-up
waits for them, with one line per attempt. A wrong password, database name, TLS
requirement or URL option will not go away by waiting: start-up stops at once.
"""

import asyncio
import logging
import sqlite3
import sys
import time
from collections.abc import Iterator
from contextlib import closing, contextmanager, suppress

from sqlalchemy import Select, literal_column, make_url, select

from todo_api.db.database import (
    Database,
    DatabaseAvailability,
    DatabaseMisconfiguredError,
    describe_database_error,
)
from todo_api.db.setup import (
    READINESS_TIMEOUT_SECONDS,
    async_database_url,
    create_readiness_database,
)
from todo_api.db.sqlite import SQLITE_BUSY_TIMEOUT_SECONDS
from todo_api.settings import Settings

#: Seconds between attempts: doubling from the first, never more than the last.
FIRST_RETRY_SECONDS = 0.5
LONGEST_RETRY_SECONDS = 5.0

_PROBE: Select[tuple[int]] = select(literal_column("1"))


class DatabaseNotReachedError(Exception):
    """The database could not be reached within DB_STARTUP_WAIT_SECONDS."""


def say(line: str) -> None:
    """One line on stderr, as start-up speaks before logging is set up."""
    print(f"todo_api: {line}", file=sys.stderr, flush=True)


def describe_target(database_url: str | None) -> str:
    """Where the database is, without credentials."""
    if database_url is None:
        return "the embedded SQLite file"
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite":
        return f"the SQLite file {url.database}"
    port = f":{url.port}" if url.port else ""
    return f"{url.host or 'localhost'}{port}/{url.database or ''}"


@contextmanager
def _quiet() -> Iterator[None]:
    # Logging is not configured yet (or is Alembic's); what a failed attempt would log
    # (an outage beginning) is said by the one line per attempt instead.
    logging.disable(logging.CRITICAL)
    try:
        yield
    finally:
        logging.disable(logging.NOTSET)


async def _probe(database: Database, settings: Settings) -> None:
    async with asyncio.timeout(settings.db_connect_timeout + READINESS_TIMEOUT_SECONDS):
        await database.fetch_one(_PROBE, {})


async def wait_for_database(settings: Settings, database_url: str | None) -> None:
    """Return once the database at `database_url` answers a query.

    Failures that pass (refused, unreachable, starting up, busy, no answer) are retried
    with growing pauses for up to DB_STARTUP_WAIT_SECONDS, one line per failed attempt;
    then DatabaseNotReachedError. A refused configuration raises DatabaseMisconfiguredError
    at once.
    """
    target = describe_target(database_url)
    url = async_database_url(database_url)
    if url.get_backend_name() == "sqlite":
        _open_sqlite(url.database or "")
        return
    give_up_at = time.monotonic() + settings.db_startup_wait_seconds
    pause = FIRST_RETRY_SECONDS
    attempt = 1
    database = create_readiness_database(
        settings.model_copy(update={"database_url": database_url}), DatabaseAvailability()
    )
    try:
        while True:
            try:
                with _quiet():
                    await _probe(database, settings)
                return
            except DatabaseMisconfiguredError:
                raise
            except Exception as exc:  # anything else may pass: wait and try again
                reason = str(exc) or "no answer in time"
                left = give_up_at - time.monotonic()
                if left <= 0:
                    raise DatabaseNotReachedError(
                        f"the database at {target} could not be reached within "
                        f"{settings.db_startup_wait_seconds:g} s ({reason})"
                    ) from exc
                pause = min(pause, left)
                say(
                    f"waiting for the database at {target} (attempt {attempt}: {reason}); "
                    f"next attempt in {pause:.1f} s, giving up in {left:.0f} s"
                )
            await asyncio.sleep(pause)
            pause = min(pause * 2, LONGEST_RETRY_SECONDS)
            attempt += 1
    finally:
        await database.close()


def _open_sqlite(path: str) -> None:
    """Open (and create, if need be) the SQLite file, or raise DatabaseMisconfiguredError.

    A local file is there or not: nothing to wait for. Opened with sqlite3 itself: when
    aiosqlite fails to open one, its worker thread reports the end of its stop to the
    event loop later, and met a loop that start-up had already closed (a traceback on
    stderr after the one line).
    """
    try:
        connection = sqlite3.connect(path, timeout=SQLITE_BUSY_TIMEOUT_SECONDS)
    except sqlite3.Error as exc:
        raise DatabaseMisconfiguredError(f"{describe_database_error(exc)} ({path})") from exc
    # Switched to WAL here, before any worker starts: workers switching a file together
    # fail at once with "database is locked". If this fails (another process holds the
    # file), each connection still switches it, and a request reports what stops that.
    with closing(connection), suppress(sqlite3.OperationalError):
        connection.execute("PRAGMA journal_mode=WAL")


def misconfiguration_line(exc: DatabaseMisconfiguredError, database_url: str | None) -> str:
    return (
        f"the database at {describe_target(database_url)} refuses this configuration: {exc}. "
        "Fix the URL or the settings; retrying will not help."
    )
