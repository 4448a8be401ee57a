"""Outages, dropped connections, exhausted pools and slow statements: 503s, then recovery."""

import asyncio
import logging
import os
import resource
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from alembic import command
from fastapi import FastAPI
from psycopg_pool import AsyncConnectionPool, PoolTimeout
from sqlalchemy import bindparam, make_url, update

from tests.conftest import UNREACHABLE_POSTGRES, Route, alembic_config
from tests.helpers import (
    app_client,
    assert_problem,
    close_databases,
    create,
    libpq_url,
    task_url,
    tasks_url,
)
from tests.locks import row_locked
from tests.pgbouncer import PgBouncer, pgbouncer_installed
from tests.private_postgres import PrivatePostgres
from todo_api.app import create_app
from todo_api.db.database import StatementFailedError
from todo_api.db.models import tasks_table
from todo_api.settings import Settings

# With DB_STATEMENT_TIMEOUT_MS=2000 below: its deadline of 2.5 s, plus at most 1 s waiting
# for a cancellation that a pooler queueing for a stopped server never confirms.
OUTAGE_ANSWER_SECONDS = 4.0
RECOVERY_SECONDS = 10.0


async def _wait_for(predicate: Callable[[], Any], seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while not await predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"not true within {seconds} s")
        await asyncio.sleep(0.1)


async def test_outage_is_a_fast_503_then_recovers_with_data_intact(
    private_postgres: PrivatePostgres, route: Route, caplog: pytest.LogCaptureFixture
) -> None:
    url = private_postgres.create_database("outage")
    # Alembic runs its own event loop, so not on this one.
    await asyncio.to_thread(command.upgrade, alembic_config(url), "head")
    async with app_client(route(url), db_statement_timeout_ms=2000) as client:
        written = [await create(client, "alice", title=f"before outage {i}") for i in range(5)]
        written[0] = (await client.patch(f"{task_url('alice', written[0]['id'])}/complete")).json()
        before = (await client.get(tasks_url("alice"))).json()

        private_postgres.stop()
        caplog.clear()
        with caplog.at_level(logging.INFO):
            for method, path, body in [
                ("GET", tasks_url("alice"), None),
                ("POST", tasks_url("alice"), {"title": "during outage"}),
                ("GET", task_url("alice", written[1]["id"]), None),
                ("PUT", task_url("alice", written[1]["id"]), {"title": "x"}),
                ("PATCH", task_url("alice", written[1]["id"]), {"title": "x"}),
                ("PATCH", f"{task_url('alice', written[1]['id'])}/complete", None),
                ("DELETE", task_url("alice", written[1]["id"]), None),
                ("GET", tasks_url("alice"), None),
            ]:
                started = time.monotonic()
                response = await client.request(method, path, json=body)
                assert time.monotonic() - started < OUTAGE_ANSWER_SECONDS
                assert_problem(response, 503)
                assert int(response.headers["retry-after"]) > 0
            assert (await client.get("/health")).status_code == 200
            assert_problem(await client.get("/health/ready"), 503)

        warnings = [r for r in caplog.records if r.name.startswith("todo_api")]
        assert len([r for r in warnings if "unavailable" in r.getMessage()]) == 1
        assert all(r.exc_info is None for r in warnings)

        private_postgres.start()

        async def answers() -> bool:
            return (await client.get(tasks_url("alice"))).status_code == 200

        await _wait_for(answers, RECOVERY_SECONDS)
        assert (await client.get(tasks_url("alice"))).json() == before
        assert (await client.get("/health/ready")).status_code == 200
        assert any("reachable again" in r.getMessage() for r in caplog.records)


async def test_terminated_connections_never_reach_a_client(
    database_url: str, route: Route, backend: str
) -> None:
    if backend != "postgres":
        pytest.skip("terminates PostgreSQL backends as a Neon suspend does")
    async with app_client(route(database_url)) as client:
        await _terminated_connections_never_reach_a_client(database_url, client)


async def _terminated_connections_never_reach_a_client(
    database_url: str, client: httpx.AsyncClient
) -> None:
    task = await create(client, "alice")
    # Fill the pool with several connections, as a busy service would have, and use each
    # often enough for psycopg to prepare its statements on the server.
    for _ in range(6):
        warm_up = await asyncio.gather(
            *(client.get(task_url("alice", task["id"])) for _ in range(8)),
            *(client.patch(f"{task_url('alice', task['id'])}/complete") for _ in range(2)),
        )
        assert [r.status_code for r in warm_up] == [200] * 10

    with psycopg.connect(libpq_url(database_url), autocommit=True) as admin:
        terminated = admin.execute(
            # With a timeout it returns once each backend is gone, as a suspend is
            # complete long before the next request arrives.
            "SELECT count(pg_terminate_backend(pid, 5000)) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
        ).fetchone()
    assert terminated is not None
    assert terminated[0] >= 1

    responses = await asyncio.gather(
        *(client.get(task_url("alice", task["id"])) for _ in range(12)),
        *(client.patch(f"{task_url('alice', task['id'])}/complete") for _ in range(4)),
    )
    assert [r.status_code for r in responses] == [200] * 16


async def test_exhausted_pool_is_a_fast_503_not_a_hang(
    database_url: str, client: httpx.AsyncClient
) -> None:
    task = await create(client, "alice")
    async with app_client(
        database_url, db_pool_size=1, db_max_overflow=0, db_pool_timeout=0.5
    ) as small:
        with row_locked(database_url, task["id"]):
            # This write waits on the lock while holding the pool's only connection.
            blocked = asyncio.create_task(
                small.patch(task_url("alice", task["id"]), json={"title": "waited"})
            )
            await asyncio.sleep(0.3)
            started = time.monotonic()
            starved = await small.get(tasks_url("alice"))
            assert time.monotonic() - started < 2.0
            assert_problem(starved, 503)
            assert "retry-after" in starved.headers
        finished = await blocked
        assert finished.status_code == 200
        assert finished.json()["title"] == "waited"


async def test_slow_statement_is_cut_off_by_the_statement_timeout(
    database_url: str, client: httpx.AsyncClient, backend: str, route: Route
) -> None:
    if backend != "postgres":
        pytest.skip("SQLite has no statement timeout; its busy timeout bounds lock waits")
    task = await create(client, "alice")
    # Behind PgBouncer the server gets no statement timeout (PgBouncer refuses it as a
    # startup parameter): the client's deadline cancels the statement instead.
    async with app_client(route(database_url), db_statement_timeout_ms=300) as impatient:
        with row_locked(database_url, task["id"]):
            started = time.monotonic()
            response = await impatient.patch(task_url("alice", task["id"]), json={"title": "no"})
            elapsed = time.monotonic() - started
        assert_problem(response, 503)
        assert 0.25 < elapsed < 3.0
        assert (await impatient.get(task_url("alice", task["id"]))).json()["title"] == task["title"]


@contextmanager
def descriptors_held(count: int) -> Iterator[None]:
    """Keeps `count` descriptors open, so the next ones opened are numbered above them."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = count + 256
    if soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(wanted, hard), hard))
    held = [os.open(os.devnull, os.O_RDONLY) for _ in range(count)]
    try:
        yield
    finally:
        for descriptor in held:
            os.close(descriptor)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


async def test_connections_on_descriptors_above_1024_serve_requests(
    database_url: str, client: httpx.AsyncClient, backend: str
) -> None:
    if backend != "postgres":
        pytest.skip("the pooled-connection check runs on PostgreSQL connections")
    task = await create(client, "alice")
    with descriptors_held(1100):
        probe = os.open(os.devnull, os.O_RDONLY)
        os.close(probe)
        assert probe >= 1024  # select() refuses descriptors from here on
        # A fresh app: its connections are opened now, on high descriptors.
        async with app_client(database_url) as busy:
            for _ in range(3):
                listed = await busy.get(tasks_url("alice"))
                assert listed.status_code == 200, listed.text
                assert [t["id"] for t in listed.json()] == [task["id"]]
            assert (await busy.get("/health/ready")).status_code == 200


async def test_readiness_reflects_the_database_not_a_busy_pool(
    database_url: str, client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    task = await create(client, "alice")
    async with app_client(database_url, db_pool_size=1, db_pool_timeout=0.5) as small:
        # The pool's one connection is opened first, so that the window below holds a busy
        # pool and not a connection being opened (on a loaded CI machine the blocked write
        # once answered 503 without it).
        assert (await small.get(tasks_url("alice"))).status_code == 200
        with row_locked(database_url, task["id"]), caplog.at_level(logging.WARNING):
            # Holds the pool's only connection while it waits on the lock.
            blocked = asyncio.create_task(
                small.patch(task_url("alice", task["id"]), json={"title": "waited"})
            )
            await asyncio.sleep(0.3)
            assert_problem(await small.get(tasks_url("alice")), 503)
            started = time.monotonic()
            ready = await small.get("/health/ready")
            assert time.monotonic() - started < 1.0
            assert ready.status_code == 200, ready.text
        assert (await blocked).status_code == 200
    # A full pool is no outage: nothing says the database went away.
    assert not [r for r in caplog.records if "unavailable" in r.getMessage()]


async def test_a_statement_timeout_is_a_503_but_no_outage(
    database_url: str,
    client: httpx.AsyncClient,
    backend: str,
    route: Route,
    caplog: pytest.LogCaptureFixture,
) -> None:
    if backend != "postgres":
        pytest.skip("SQLite has no statement timeout")
    task = await create(client, "alice")
    async with app_client(route(database_url), db_statement_timeout_ms=300) as impatient:
        with row_locked(database_url, task["id"]), caplog.at_level(logging.INFO):
            response = await impatient.patch(task_url("alice", task["id"]), json={"title": "no"})
    body = assert_problem(response, 503)
    assert "retry-after" in response.headers
    assert "in time" in body["detail"]
    assert not [r for r in caplog.records if "unavailable" in r.getMessage()]


async def test_a_successful_query_ends_an_outage(
    app: FastAPI, client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    availability = app.state.database_availability
    await client.get(tasks_url("alice"))  # a pooled connection exists from here on
    availability.mark_unavailable("as if a connection had just been refused")
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        assert (await client.get(tasks_url("alice"))).status_code == 200
    assert availability.unavailable is False
    assert [r.getMessage() for r in caplog.records] == ["Database reachable again"]


async def test_an_unmigrated_sqlite_file_is_logged_once_and_is_no_outage(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # A file of its own on every pass: PostgreSQL reports a missing table otherwise.
    async with app_client(f"sqlite:///{tmp_path / 'empty.sqlite3'}") as client:
        with caplog.at_level(logging.WARNING):
            responses = [await client.get(tasks_url("alice")) for _ in range(3)]
    for response in responses:
        assert assert_problem(response, 503)["type"] == "urn:todo-api:schema-not-migrated"
    messages = [r.getMessage() for r in caplog.records if r.name.startswith("todo_api")]
    [error] = [m for m in messages if "not migrated" in m]
    assert "no such table" in error
    # The database answers: nothing says it went away or came back.
    assert not [m for m in messages if "unavailable" in m or "reachable again" in m]


async def test_any_transaction_pooler_works_without_being_declared(
    database_url: str, backend: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A PgBouncer on a plain host name, no pooler setting: no connection prepares on the
    server (it might run another client's statement of the same name), and the `options`
    startup parameter, refused, is dropped with one warning. Every request succeeds."""
    if backend != "postgres":
        pytest.skip("PgBouncer runs in front of PostgreSQL")
    if not pgbouncer_installed():
        pytest.skip("pgbouncer is not installed (apt-get install pgbouncer)")
    with PgBouncer(database_url, server_pool_size=3) as bouncer, caplog.at_level(logging.INFO):
        app = create_app(Settings(_env_file=None, database_url=bouncer.url(database_url)))
        # Each connection finds out as it opens; none through PgBouncer prepares.
        assert app.state.database.prepared_statements is None
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            task = await create(client, "alice")
            toggles = 0
            for _ in range(6):  # past psycopg's threshold of 5 uses, were it preparing
                responses = await asyncio.gather(
                    *(client.patch(f"{task_url('alice', task['id'])}/complete") for _ in range(40)),
                    *(client.get(task_url("alice", task["id"])) for _ in range(20)),
                    client.get(tasks_url("alice")),
                )
                assert [r.status_code for r in responses] == [200] * 61, [
                    r.text for r in responses if r.status_code != 200
                ]
                toggles += 40
            final = await client.get(task_url("alice", task["id"]))
        await close_databases(app)
    # Every toggle ran exactly once.
    assert final.headers["etag"] == f'"{task["id"]}.{1 + toggles}"'
    assert final.json()["completed"] is (toggles % 2 == 1)
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len([w for w in warnings if "startup parameter" in w]) == 1, warnings
    assert not [w for w in warnings if "repared statement" in w], warnings


async def test_a_paused_pooler_is_a_503_within_the_deadline_even_for_new_connections(
    new_database: Callable[[], str], backend: str
) -> None:
    """PgBouncer accepts new connections while paused and queues what they send. A session
    in a zone other than `UTC` (Debian's and Neon's `Etc/UTC`, `GMT`) is set to UTC when a
    connection opens: that statement has the deadline too (it used to wait 20-40 s)."""
    if backend != "postgres":
        pytest.skip("PgBouncer runs in front of PostgreSQL")
    if not pgbouncer_installed():
        pytest.fail("pgbouncer is not installed")
    url = new_database()
    await asyncio.to_thread(command.upgrade, alembic_config(url), "head")
    with psycopg.connect(libpq_url(url), autocommit=True) as admin:
        admin.execute(f"ALTER DATABASE \"{make_url(url).database}\" SET timezone = 'Etc/UTC'")
    settings: dict[str, Any] = {
        "db_statement_timeout_ms": 1000,
        "db_connect_timeout": 2,
        "db_pool_size": 2,
        "db_pool_timeout": 1.0,
    }
    # The deadline (1.5 s), the cancel's grace and the answer's (1 s), and some slack.
    answer_within = 1.5 + 1.0 + 1.0
    with PgBouncer(url, server_pool_size=2) as bouncer:
        async with app_client(bouncer.url(url), **settings) as warm:
            assert (await warm.get(tasks_url("alice"))).status_code == 200
        bouncer.admin("PAUSE")
        try:
            async with app_client(bouncer.url(url), **settings) as fresh:

                async def timed() -> tuple[httpx.Response, float]:
                    started = time.monotonic()
                    response = await fresh.get(tasks_url("alice"))
                    return response, time.monotonic() - started

                answers = await asyncio.gather(*(timed() for _ in range(8)))
                for response, took in answers:
                    assert_problem(response, 503)
                    assert took < answer_within, [took for _, took in answers]
                bouncer.admin("RESUME")

                async def answers_again() -> bool:
                    return (await fresh.get(tasks_url("alice"))).status_code == 200

                await _wait_for(answers_again, RECOVERY_SECONDS)
        finally:
            with suppress(RuntimeError):
                bouncer.admin("RESUME")


async def test_a_refused_configuration_is_a_503_that_says_so_logged_once(
    database_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A password changed under a running service, a database dropped: retrying will not
    help, so no Retry-After, one error line per process, and no outage coming and going."""
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite":
        refused = f"sqlite:///{tmp_path / 'no-such-directory' / 'todo.sqlite3'}"
    else:
        refused = url.set(database="dropped_database").render_as_string(hide_password=False)
    # Behind PgBouncer, logins after a refused one wait for its server_login_retry: sent at
    # once, they wait for it together.
    async with app_client(refused, db_connect_timeout=2) as client:
        with caplog.at_level(logging.INFO):
            responses = await asyncio.gather(
                *(client.get(tasks_url("alice")) for _ in range(3)),
                client.post(tasks_url("alice"), json={"title": "t"}),
            )
            ready = await client.get("/health/ready")
    for response in [*responses, ready]:
        body = assert_problem(response, 503)
        assert body["type"] == "urn:todo-api:database-misconfigured"
        assert "retry-after" not in response.headers
    messages = [r.getMessage() for r in caplog.records if r.name == "todo_api.db.database"]
    [refusal] = messages  # nothing about an outage either
    assert refusal.startswith("Database configuration refused")
    assert "does not exist" in refusal or "unable to open database file" in refusal


async def test_a_missing_privilege_is_a_refused_configuration_logged_once(
    database_url: str, backend: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A role without grants on the tables (a deploy with the wrong role): the statements
    are refused (42501) while connections work. One line per process, not one per request,
    and the connections that keep working are no sign that the configuration is fixed."""
    if backend != "postgres":
        pytest.skip("PostgreSQL's privileges")
    role = f"todo_limited_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(libpq_url(database_url), autocommit=True) as admin:
        admin.execute(f"CREATE ROLE {role} LOGIN")
    try:
        limited = make_url(database_url).set(username=role).render_as_string(hide_password=False)
        async with app_client(limited, db_connect_timeout=2) as client:
            with caplog.at_level(logging.INFO):
                responses = [await client.get(tasks_url("alice")) for _ in range(4)]
        for response in responses:
            assert assert_problem(response, 503)["type"] == "urn:todo-api:database-misconfigured"
            assert "retry-after" not in response.headers
        logged = [r.getMessage() for r in caplog.records if r.name == "todo_api.db.database"]
        [refusal] = logged  # nor "accepted again", nor an outage
        assert refusal.startswith("Database configuration refused")
    finally:
        with psycopg.connect(libpq_url(database_url), autocommit=True) as admin:
            admin.execute(f"DROP ROLE {role}")


async def test_a_driver_error_without_a_code_is_a_bug_not_an_outage(
    app: FastAPI, backend: str, caplog: pytest.LogCaptureFixture
) -> None:
    """psycopg's own errors have no SQLSTATE; only those of a lost connection are an
    outage. Fetching rows from a statement that returns none is a bug in the code: it used
    to be logged as the database going away ("the last operation didn't produce records")."""
    if backend != "postgres":
        pytest.skip("psycopg's client-side errors")
    database = app.state.database
    no_rows = update(tasks_table).where(tasks_table.c.user_id == bindparam("owner"))
    no_rows = no_rows.values(title=tasks_table.c.title)
    with caplog.at_level(logging.INFO), pytest.raises(StatementFailedError) as failed:
        await database.fetch_all(no_rows, {"owner": "nobody"})
    assert isinstance(failed.value.__cause__, psycopg.ProgrammingError)
    assert failed.value.__cause__.sqlstate is None
    assert "UPDATE tasks" in str(failed.value)
    assert database.availability.unavailable is False
    assert not [r for r in caplog.records if "unavailable" in r.getMessage()]


async def test_psycopg_pool_would_make_requests_wait_out_the_timeout_of_a_refused_database(
    offline_client: httpx.AsyncClient,
) -> None:
    """Why db/pool.py is not psycopg_pool: psycopg_pool opens connections in the
    background and a request waits for one until its timeout, whatever the attempts meet
    (a refused connection, at once); no option of it fails the waiting request early. Ours
    opens a connection in the request that needs it: a refused one is a 503 at once."""
    timeout = 1.0
    pool = AsyncConnectionPool(
        libpq_url(UNREACHABLE_POSTGRES), min_size=1, max_size=4, timeout=timeout, open=False
    )
    await pool.open(wait=False)
    try:
        started = time.monotonic()
        with pytest.raises(PoolTimeout):
            async with pool.connection():
                pass
        assert time.monotonic() - started >= timeout * 0.9
    finally:
        await pool.close()
    started = time.monotonic()
    assert_problem(await offline_client.get(tasks_url("alice")), 503)
    assert time.monotonic() - started < 0.5
