"""Locks taken from outside the app, to hold its writes still."""

import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
from sqlalchemy import make_url

from tests.helpers import libpq_url


@contextmanager
def row_locked(database_url: str, task_id: int) -> Iterator[None]:
    """Holds a lock on one task from outside the app, so its writes to that task wait."""
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite":
        lock = sqlite3.connect(url.database or "", isolation_level=None)
        lock.execute("BEGIN IMMEDIATE")
        try:
            yield
        finally:
            lock.execute("ROLLBACK")
            lock.close()
        return
    with psycopg.connect(libpq_url(url)) as connection:
        connection.execute("SELECT id FROM tasks WHERE id = %s FOR UPDATE", (task_id,))
        try:
            yield
        finally:
            connection.rollback()


def wait_for_an_insert_held_on_tasks(database_url: str, seconds: float = 5.0) -> None:
    """Until a statement waits for a lock on tasks held from outside (`LOCK TABLE tasks IN
    SHARE MODE`): a write sent as one transaction has then reached its insert, and nothing
    of it is committed yet. PostgreSQL only."""
    waiting = "SELECT count(*) = 1 FROM pg_locks WHERE NOT granted AND relation = 'tasks'::regclass"
    _poll(database_url, waiting, seconds, "no insert waiting for the lock on tasks")


def wait_for_a_write_held(database_url: str, seconds: float = 5.0) -> None:
    """Until a statement of this database waits for a lock (`row_locked`'s): the write is
    then in the app, and held. On SQLite, which cannot tell, a second's wait."""
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite":
        time.sleep(1.0)
        return
    # This database's sessions only: the passes of a CI run share the server.
    waiting = (
        "SELECT count(*) > 0 FROM pg_stat_activity "
        "WHERE datname = current_database() AND wait_event_type = 'Lock'"
    )
    _poll(database_url, waiting, seconds, "no write waiting for the lock")


def _poll(database_url: str, query: str, seconds: float, failure: str) -> None:
    """Until `query` answers true, for at most `seconds`."""
    deadline = time.monotonic() + seconds
    # Polled many times, so psycopg would prepare it, and PgBouncer 1.18 in transaction mode
    # can send the EXECUTE to a server connection that never saw the PREPARE.
    with psycopg.connect(
        libpq_url(database_url), autocommit=True, prepare_threshold=None
    ) as watcher:
        while watcher.execute(query).fetchone() != (True,):
            assert time.monotonic() < deadline, failure
            time.sleep(0.02)
