"""Behind a transaction pooler that cannot keep prepared statements, every request runs
exactly the statement it built: nothing depends on the pooler refusing something."""

import asyncio
import threading
import time
from collections import Counter
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path

import httpx
import psycopg
import pytest
from alembic import command

from tests.conftest import alembic_config, through_pgbouncer
from tests.helpers import libpq_url, tasks_url
from tests.live_server import running_server
from tests.pgbouncer import PgBouncer, pgbouncer_installed
from tests.private_postgres import PrivatePostgres
from todo_api.db.database import DatabaseAvailability
from todo_api.db.postgres import PREPARE_THRESHOLD, PostgresDatabase
from todo_api.db.setup import create_database
from todo_api.db.tasks import _READ
from todo_api.settings import Settings

RACE_SECONDS = 2.0
#: Rounds, each with new server processes (psycopg names statements from _pg3_0 on).
ROUNDS = {False: 2, True: 1}
COMPLETED_TASKS = 10


@pytest.fixture
def pgbouncer_required(backend: str) -> None:
    if backend != "postgres":
        pytest.skip("PgBouncer runs in front of PostgreSQL")
    if through_pgbouncer():
        pytest.skip("a PgBouncer of its own in front of PostgreSQL: run in the PostgreSQL pass")
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
@pytest.mark.parametrize("ignore_options", [False, True], ids=["refuses-options", "drops-options"])
def test_reads_never_run_another_process_statement_through_a_pooler(
    alice_with_completed_tasks: str, tmp_path: Path, ignore_options: bool
) -> None:
    """Issue 20, item 1, exactly: two processes with one connection each, a PgBouncer 1.18
    pool of two, no pooler setting. One reads alice's tags, the other deletes bob's
    completed tasks. With psycopg's prepared statements the read ran the other process's
    `_pg3_0`, the DELETE, with alice's id, and her completed tasks were gone. Also with a
    PgBouncer that drops the startup options rather than refusing them, as many are set up:
    the connections must not take the pooler for the server."""
    url = alice_with_completed_tasks
    for round_ in range(ROUNDS[ignore_options]):
        bouncer = PgBouncer(url, server_pool_size=2, ignore_options=ignore_options)
        with bouncer, ExitStack() as servers:
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


@pytest.mark.usefixtures("pgbouncer_required")
async def test_only_connections_that_have_a_session_of_their_own_prepare(
    private_postgres: PrivatePostgres,
) -> None:
    """Prepared statements save the server a parse and plan per statement (a read's
    throughput was about 25% lower without them), so a direct connection keeps them: its
    session carries the mark its startup options set, and the process id the server gave
    it. Through PgBouncer neither holds, whether it refuses the options or drops them."""
    url = private_postgres.create_database("identified")
    await asyncio.to_thread(command.upgrade, alembic_config(url), "head")
    with (
        PgBouncer(url) as refusing,
        PgBouncer(url, ignore_options=True) as dropping,
    ):
        for via, prepares in [
            (url, True),
            (refusing.url(url), False),
            (dropping.url(url), False),
        ]:
            database = create_database(
                Settings(_env_file=None, database_url=via), DatabaseAvailability()
            )
            try:
                assert isinstance(database, PostgresDatabase)
                assert database.prepared_statements is None  # found out per connection
                async with database.session() as session:
                    for _ in range(PREPARE_THRESHOLD + 1):
                        await session.fetch_all(_READ, {"owner": "alice", "task_id": 1})
                    connection = session._pooled.connection
                    assert (connection.prepare_threshold is not None) is prepares, via
                    cursor = await connection.execute(
                        "SELECT count(*) FROM pg_prepared_statements", prepare=False
                    )
                    row = await cursor.fetchone()
                    assert row is not None
                    assert (row[0] > 0) is prepares, via
            finally:
                await database.close()
