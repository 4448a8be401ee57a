"""`python -m todo_api`: serve on HOST:PORT with the configured database."""

import asyncio
import logging
import signal
import sys

import uvicorn
from pydantic import ValidationError

from todo_api.db.database import DatabaseAvailability, DatabaseError, DatabaseMisconfiguredError
from todo_api.db.schema_version import SchemaMismatch, schema_mismatch
from todo_api.db.setup import READINESS_TIMEOUT_SECONDS, create_readiness_database
from todo_api.db.startup import (
    EXIT_MISCONFIGURED,
    DatabaseNotReachedError,
    misconfiguration_line,
    say,
    wait_for_database,
)
from todo_api.log_config import log_config
from todo_api.settings import Settings, get_settings


def _settings_or_exit() -> Settings:
    """The settings, or one line per invalid one and exit status 2.

    Pydantic's own message quotes the values it was given, and a secret must not reach a
    terminal or a log that way.
    """
    try:
        return get_settings()
    except ValidationError as invalid:
        for error in invalid.errors(include_input=False, include_url=False):
            names = ".".join(str(part) for part in error["loc"]).upper() or "settings"
            message = error["msg"].removeprefix("Value error, ")
            print(f"todo_api: invalid {names}: {message}", file=sys.stderr)
        sys.exit(2)


def _wait_for_database_or_exit(settings: Settings) -> bool:
    """Whether the database answers, once it does or DB_STARTUP_WAIT_SECONDS have passed.

    Exits with one line (status 2) when it refuses the configuration. One that still
    cannot be reached is no reason not to start: the service answers 503 until it can.
    """
    try:
        asyncio.run(wait_for_database(settings, settings.database_url))
    except DatabaseMisconfiguredError as exc:
        say(misconfiguration_line(exc, settings.database_url))
        sys.exit(EXIT_MISCONFIGURED)
    except DatabaseNotReachedError as exc:
        say(f"{exc}; starting anyway: requests answer 503 until it is back.")
        return False
    return True


def _check_schema_or_exit(settings: Settings) -> None:
    """Exit with one line (status 3) when the database is not at this code's migration.

    A database that cannot be reached now is no reason not to start: the service answers
    503 until it can, and /health/ready says whether its schema is right.
    """

    async def mismatch() -> SchemaMismatch | None:
        database = create_readiness_database(settings, DatabaseAvailability())
        try:
            return await asyncio.wait_for(
                schema_mismatch(database), settings.db_connect_timeout + READINESS_TIMEOUT_SECONDS
            )
        finally:
            await database.close()

    # Logging is not configured yet, and what the check would log (an outage, a pooler found
    # out) the service logs again, properly formatted, when it meets it; its verdict is the
    # one line printed below.
    logging.disable(logging.CRITICAL)
    try:
        found = asyncio.run(mismatch())
    except (DatabaseError, TimeoutError) as exc:
        found = None
        reason = str(exc) or "no answer in time"
        print(
            f"todo_api: the database schema could not be checked ({reason}); starting anyway.",
            file=sys.stderr,
        )
    finally:
        logging.disable(logging.NOTSET)
    if found is not None:
        print(f"todo_api: {found.message}", file=sys.stderr)
        sys.exit(3)


def main() -> None:
    settings = _settings_or_exit()
    if _wait_for_database_or_exit(settings):
        _check_schema_or_exit(settings)
    # Uvicorn drains in-flight requests on SIGTERM, then raises the signal again with the
    # previous handler in place; with the default one the process would die as -SIGTERM
    # although the shutdown was clean. This handler makes that clean shutdown exit 0.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    # Uvicorn applies the logging config in every process, workers included; no reload.
    # Its proxy headers are off: todo_api.api.middleware.forwarded needs the peer address as
    # it connected, to trust X-Forwarded-* from FORWARDED_ALLOW_IPS only. SIGTERM stops the
    # workers gracefully: in-flight requests finish, then the process exits 0. A request
    # still running after SHUTDOWN_GRACE_SECONDS (a client trickling its body, say) is
    # cancelled, so that a stop always completes.
    uvicorn.run(
        "todo_api.app:create_app",
        factory=True,
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        log_config=log_config(settings.log_format, settings.log_level),
        access_log=False,  # todo_api.api.middleware.request_log writes one line per request instead
        workers=settings.workers,
        proxy_headers=False,
        timeout_graceful_shutdown=settings.shutdown_grace_seconds,
    )


if __name__ == "__main__":
    main()
