"""`python -m todo_api`: serve on HOST:PORT with the configured database."""

import asyncio
import logging
import signal
import socket
import sys

import uvicorn
from uvicorn.supervisors import Multiprocess

from todo_api import exit_codes
from todo_api.db.database import DatabaseAvailability, DatabaseError, DatabaseMisconfiguredError
from todo_api.db.schema_version import SchemaMismatch, schema_mismatch
from todo_api.db.setup import READINESS_TIMEOUT_SECONDS, create_readiness_database
from todo_api.db.startup import (
    DatabaseNotReachedError,
    misconfiguration_line,
    say,
    wait_for_database,
)
from todo_api.log_config import log_config
from todo_api.settings import Settings, settings_or_exit


def _wait_for_database_or_exit(settings: Settings) -> bool:
    """Whether the database answers, once it does or DB_STARTUP_WAIT_SECONDS have passed.

    Exits with one line (status 2) when it refuses the configuration. One that still
    cannot be reached is no reason not to start: the service answers 503 until it can.
    """
    try:
        asyncio.run(wait_for_database(settings, settings.database_url))
    except DatabaseMisconfiguredError as exc:
        say(misconfiguration_line(exc, settings.database_url))
        sys.exit(exit_codes.MISCONFIGURED)
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
        sys.exit(exit_codes.SCHEMA_NOT_MIGRATED)


def _listen_or_exit(settings: Settings) -> socket.socket:
    """The socket the server accepts on, bound here so that a port in use or an address
    not of this host is said in one line with its own exit status (uvicorn exits 3 for
    it, which is ours for "schema not migrated")."""
    family = socket.AF_INET6 if ":" in settings.host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((settings.host, settings.port))
    except OSError as exc:
        sock.close()
        say(f"cannot listen on {settings.host}:{settings.port}: {exc.strerror or exc}")
        sys.exit(exit_codes.CANNOT_LISTEN)
    sock.set_inheritable(True)  # the worker processes accept on it
    return sock


def main() -> None:
    settings = settings_or_exit()
    if _wait_for_database_or_exit(settings):
        _check_schema_or_exit(settings)
    sock = _listen_or_exit(settings)
    # Uvicorn drains in-flight requests on SIGTERM, then raises the signal again with the
    # previous handler in place; with the default one the process would die as -SIGTERM
    # although the shutdown was clean. This handler makes that clean shutdown exit 0.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(exit_codes.STOPPED))
    # Uvicorn applies the logging config in every process, workers included; no reload.
    # Its proxy headers are off: todo_api.api.middleware.forwarded needs the peer address as
    # it connected, to trust X-Forwarded-* from FORWARDED_ALLOW_IPS only. SIGTERM stops the
    # workers gracefully: in-flight requests finish, then the process exits 0. A request
    # still running after SHUTDOWN_GRACE_SECONDS (a client trickling its body, say) is
    # cancelled, so that a stop always completes.
    config = uvicorn.Config(
        "todo_api.app:create_app",
        factory=True,
        log_level=settings.log_level,
        log_config=log_config(settings.log_format, settings.log_level),
        access_log=False,  # todo_api.api.middleware.request_log writes one line per request instead
        workers=settings.workers,
        proxy_headers=False,
        timeout_graceful_shutdown=settings.shutdown_grace_seconds,
    )
    host = f"[{settings.host}]" if sock.family == socket.AF_INET6 else settings.host
    logging.getLogger("uvicorn.error").info(
        "Serving on http://%s:%d with %d worker process(es)",
        host,
        sock.getsockname()[1],
        settings.workers,
    )
    server = uvicorn.Server(config)
    try:
        if settings.workers > 1:
            Multiprocess(config, sockets=[sock]).run()
        else:
            server.run(sockets=[sock])
    except KeyboardInterrupt:
        pass
    if settings.workers == 1 and not server.started:
        sys.exit(1)  # the application could not start: uvicorn logged why


if __name__ == "__main__":
    main()
