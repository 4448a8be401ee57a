"""Behind a transaction pooler that cannot keep prepared statements, every request runs
exactly the statement it built: nothing depends on the pooler refusing something."""

import threading
import time
from collections import Counter
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path

import httpx
import psycopg
import pytest

from tests.helpers import libpq_url, tasks_url
from tests.live_server import running_server
from tests.pgbouncer import PgBouncer, pgbouncer_installed

RACE_SECONDS = 3.0
ROUNDS = 3
COMPLETED_TASKS = 10


@pytest.fixture
def pgbouncer_required(backend: str) -> None:
    if backend != "postgres":
        pytest.skip("PgBouncer runs in front of PostgreSQL")
    if not pgbouncer_installed():
        pytest.fail("pgbouncer is not installed (make test-postgres installs it)")


def _completed_of(database_url: str, user: str) -> int:
    with psycopg.connect(libpq_url(database_url)) as connection:
        row = connection.execute(
            "SELECT count(*) FROM tasks WHERE user_id = %s AND completed", (user,)
        ).fetchone()
    assert row is not None
    return int(row[0])


Request = Callable[[httpx.Client], httpx.Response]


def _hammer(client: httpx.Client, request: Request, until: float, statuses: Counter[int]) -> None:
    while time.monotonic() < until:
        statuses[request(client).status_code] += 1


def _race(clients: list[tuple[httpx.Client, Request]]) -> Counter[int]:
    statuses: Counter[int] = Counter()
    until = time.monotonic() + RACE_SECONDS
    threads = [
        threading.Thread(target=_hammer, args=(client, request, until, statuses))
        for client, request in clients
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return statuses


@pytest.fixture
def alice_with_completed_tasks(migrated_url: str) -> str:
    with psycopg.connect(libpq_url(migrated_url), autocommit=True) as connection:
        for index in range(COMPLETED_TASKS):
            connection.execute(
                "INSERT INTO tasks (user_id, title, completed, completed_at, created_at,"
                " updated_at, priority, tags) VALUES ('alice', %s, true, now(), now(), now(),"
                " 2, '[\"work\"]')",
                (f"done {index}",),
            )
    return migrated_url


@pytest.mark.usefixtures("pgbouncer_required")
def test_reads_never_run_another_process_statement_through_a_pooler(
    alice_with_completed_tasks: str, tmp_path: Path
) -> None:
    """Issue 20, item 1, exactly: two processes with one connection each, a PgBouncer 1.18
    pool of two, no pooler setting. One reads alice's tags, the other deletes bob's
    completed tasks. With psycopg's prepared statements the read ran the other process's
    `_pg3_0`, the DELETE, with alice's id, and her completed tasks were gone."""
    url = alice_with_completed_tasks
    for round_ in range(ROUNDS):
        with PgBouncer(url, server_pool_size=2) as bouncer, ExitStack() as servers:
            pooled = bouncer.url(url)
            _, reader = servers.enter_context(
                running_server(pooled, tmp_path / f"reader{round_}.log", DB_POOL_SIZE="1")
            )
            _, deleter = servers.enter_context(
                running_server(pooled, tmp_path / f"deleter{round_}.log", DB_POOL_SIZE="1")
            )
            statuses = _race(
                [
                    (reader, lambda client: client.get("/api/alice/tags")),
                    (deleter, lambda client: client.delete(f"{tasks_url('bob')}/completed")),
                ]
            )
        assert _completed_of(url, "alice") == COMPLETED_TASKS, f"round {round_}: {statuses}"
        assert set(statuses) == {200}, statuses
        assert sum(statuses.values()) > 100, statuses
