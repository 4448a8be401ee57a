"""Locks taken from outside the app, to hold its writes still."""

import sqlite3
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
