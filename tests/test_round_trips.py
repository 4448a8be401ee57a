"""Round trips to the database per request, counted by a proxy between the API and PostgreSQL
(tests/roundtrip_proxy.py): what a request waits for when the database is far away.

Counts are deterministic once the connection is open and its statements are known, so this
is not a timed test. Every operation takes one: a write of several statements sends them
all at once (`Session.run_together`). Writes that need a repeating task's rule, or move the due
a reminder counts from, are planned from what the server last saw of the task: one round trip
when that is how the task still is, two when it was changed elsewhere since (docs/design.md).
"""

import statistics
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, cast

import httpx
import psycopg
import pytest
from alembic import command
from fastapi import FastAPI
from sqlalchemy import func, select, text

from tests.conftest import alembic_config, through_pgbouncer
from tests.helpers import app_client, close_databases, create, libpq_url, task_url, tasks_url
from tests.live_server import running_server
from tests.roundtrip_proxy import RoundTrips, roundtrip_proxy
from todo_api.app import create_app
from todo_api.db.postgres import COUNTED_STATEMENTS, PREPARE_THRESHOLD, PostgresDatabase
from todo_api.db.statements import CompiledStatement
from todo_api.settings import Settings

WARM_UP = 2
MEASURED = 5
#: A database this far away, per round trip. The statements of one write may leave in several
#: sends; with no distance, a busy machine could let the server answer the first before the
#: client sent the next, and the proxy would count two where any real distance waits once.
#: So this is also the longest pause between two sends that still counts one: longer than a
#: process may wait for a core while CI runs its test passes side by side.
DISTANCE_SECONDS = 0.025
OWNER = "alice"

Operation = Callable[[httpx.Client, int], httpx.Response]

OPERATIONS: dict[str, Operation] = {
    "list": lambda client, _task: client.get(tasks_url(OWNER)),
    "read": lambda client, task: client.get(task_url(OWNER, task)),
    "create": lambda client, _task: client.post(tasks_url(OWNER), json={"title": "new"}),
    "patch": lambda client, task: client.patch(task_url(OWNER, task), json={"title": "patched"}),
    "put": lambda client, task: client.put(
        task_url(OWNER, task), json={"title": "replaced", "completed": False}
    ),
    "toggle": lambda client, task: client.patch(f"{task_url(OWNER, task)}/complete"),
    "delete": lambda client, task: client.delete(task_url(OWNER, task)),
    "stats": lambda client, _task: client.get(f"{tasks_url(OWNER)}/stats"),
    "tags": lambda client, _task: client.get(f"/api/{OWNER}/tags"),
    "create with tags": lambda client, _task: client.post(
        tasks_url(OWNER), json={"title": "new", "tags": ["a", "b"]}
    ),
    "patch tags": lambda client, task: client.patch(
        task_url(OWNER, task), json={"tags": ["x", "y", "z"]}
    ),
    "put with tags": lambda client, task: client.put(
        task_url(OWNER, task), json={"title": "replaced", "tags": ["q"]}
    ),
    "patch tags if-match": lambda client, task: client.patch(
        task_url(OWNER, task), json={"tags": []}, headers={"If-Match": f'"{task}.1"'}
    ),
    "keyed create": lambda client, task: client.post(
        tasks_url(OWNER), json={"title": "new"}, headers={"Idempotency-Key": f"new-{task}"}
    ),
    "keyed create with tags": lambda client, task: client.post(
        tasks_url(OWNER),
        json={"title": "new", "tags": ["a", "b"]},
        headers={"Idempotency-Key": f"tagged-{task}"},
    ),
    "keyed repeat": lambda client, task: client.post(
        tasks_url(OWNER), json={"title": "again"}, headers={"Idempotency-Key": f"again-{task}"}
    ),
    "set a rule": lambda client, task: client.patch(
        task_url(OWNER, task),
        json={"due_date": "2027-01-04", "recurrence": {"frequency": "daily"}},
    ),
    "set a reminder": lambda client, task: client.patch(
        task_url(OWNER, task), json={"reminder": {"at": "2027-01-04T08:00:00Z"}}
    ),
    "complete all": lambda client, _task: client.post(
        f"{tasks_url(OWNER)}/complete-all", json={"completed": True}
    ),
    "delete completed": lambda client, _task: client.delete(f"{tasks_url(OWNER)}/completed"),
    "due reminders": lambda client, _task: client.get(f"/api/{OWNER}/reminders"),
}
#: The next occurrence of each task completed beforehand, by the task's id.
NEXT_OCCURRENCE: dict[int, int] = {}


def _complete_noting_the_next(client: httpx.Client, task: int) -> httpx.Response:
    response = OPERATIONS["toggle"](client, task)
    NEXT_OCCURRENCE[task] = response.json()["next_occurrence_id"]
    return response


#: Done once before an operation is counted: what makes it a repeat.
BEFOREHAND: dict[str, Operation] = {
    "keyed repeat": OPERATIONS["keyed repeat"],
    "reopen after complete all": OPERATIONS["complete all"],
    "complete the next occurrence": _complete_noting_the_next,
}
#: On a repeating task: the operation and its round trips.
ON_A_REPEATING_TASK: dict[str, tuple[Operation, int]] = {
    "read": (OPERATIONS["read"], 1),
    "patch title": (OPERATIONS["patch"], 1),
    "complete": (OPERATIONS["toggle"], 1),
    "patch due": (
        lambda client, task: client.patch(task_url(OWNER, task), json={"due_date": "2027-02-01"}),
        1,
    ),
    # Complete-all wrote it knowing it: as written, it is known.
    "reopen after complete all": (OPERATIONS["toggle"], 1),
    # Made by the completion beforehand, which kept it as inserted.
    "complete the next occurrence": (
        lambda client, task: OPERATIONS["toggle"](client, NEXT_OCCURRENCE[task]),
        1,
    ),
    "set the rule": (
        lambda client, task: client.patch(
            task_url(OWNER, task), json={"recurrence": {"frequency": "weekly"}}
        ),
        1,
    ),
    "create": (
        lambda client, _task: client.post(
            tasks_url(OWNER),
            json={"title": "new", "due_date": "2027-01-04", "recurrence": {"frequency": "daily"}},
        ),
        1,
    ),
}
#: On a task with a reminder before its due: the operation and its round trips.
WITH_A_REMINDER: dict[str, tuple[Operation, int]] = {
    "acknowledge": (
        lambda client, task: client.post(f"{task_url(OWNER, task)}/reminder/ack"),
        1,
    ),
    "complete": (OPERATIONS["toggle"], 1),
    "move the due": (
        lambda client, task: client.patch(
            task_url(OWNER, task), json={"due_at": "2027-02-01T09:00:00Z"}
        ),
        1,
    ),
}
REMINDED: dict[str, object] = {
    "title": "target",
    "due_at": "2027-01-04T09:00:00Z",
    "reminder": {"minutes_before": 10},
}
REPEATING: dict[str, object] = {
    "title": "target",
    "tags": ["work"],
    "due_date": "2027-01-04",
    "recurrence": {"frequency": "daily"},
}


@pytest.fixture(scope="module")
def proxied_server(
    backend: str,
    new_database: Callable[[], str],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[httpx.Client, RoundTrips, str]]:
    """A client of a server that reaches its database through the proxy; the proxy's count;
    the database's own URL, for changes the server does not see."""
    if backend != "postgres":
        pytest.skip("counts the round trips to a PostgreSQL server")
    url = new_database()
    command.upgrade(alembic_config(url), "head")
    log = Path(tmp_path_factory.mktemp("round-trips")) / "server.log"
    # The count is every round trip through the proxy: the server's own background work (the
    # expired-key clean-up, a connection's renewal) must not land in a request's count.
    quiet = {"IDEMPOTENCY_CLEANUP_SECONDS": "3600", "DB_POOL_RECYCLE": "3600"}
    with (
        roundtrip_proxy(url, delay=DISTANCE_SECONDS) as (proxied_url, counter),
        running_server(proxied_url, log, **quiet) as (_, client),
    ):
        yield client, counter, url


def _measure(
    client: httpx.Client,
    counter: RoundTrips,
    name: str,
    target: dict[str, object] | None = None,
    operation: Operation | None = None,
) -> int:
    target = target or {"title": "target", "tags": ["work"]}
    task = client.post(tasks_url(OWNER), json=target)
    assert task.status_code == 201, task.text
    operation = operation or OPERATIONS[name]
    if name in BEFOREHAND:
        assert BEFOREHAND[name](client, task.json()["id"]).status_code < 300
    before = counter.count
    response = operation(client, task.json()["id"])
    assert response.status_code < 300, response.text
    return counter.count - before


@pytest.mark.parametrize("name", sorted(OPERATIONS))
def test_the_operation_takes_one_round_trip(
    proxied_server: tuple[httpx.Client, RoundTrips, str], name: str
) -> None:
    client, counter, _ = proxied_server
    for _ in range(WARM_UP):
        _measure(client, counter, name)
    connections = counter.connections
    counts = [_measure(client, counter, name) for _ in range(MEASURED)]
    # Which round trips a new connection made (its start-up, its first statements) tells an
    # extra round trip of the pool's from one of the operation's.
    opened = counter.connections - connections
    assert statistics.median(counts) == 1, f"{counts}, connections opened meanwhile: {opened}"


#: The tasks the operations of each table act on.
TARGETS: dict[str, tuple[dict[str, object], dict[str, tuple[Operation, int]]]] = {
    "repeating": (REPEATING, ON_A_REPEATING_TASK),
    "with a reminder": (REMINDED, WITH_A_REMINDER),
}


@pytest.mark.parametrize(
    ("target", "name"),
    [(target, name) for target, (_, table) in TARGETS.items() for name in sorted(table)],
)
def test_the_operation_on_a_task_written_knowing_it_takes_its_round_trips(
    proxied_server: tuple[httpx.Client, RoundTrips, str], target: str, name: str
) -> None:
    client, counter, _ = proxied_server
    body, table = TARGETS[target]
    operation, expected = table[name]
    for _ in range(WARM_UP):
        _measure(client, counter, name, body, operation)
    counts = [_measure(client, counter, name, body, operation) for _ in range(MEASURED)]
    assert statistics.median(counts) == expected, counts


#: Operations planned from what the server saw of a task that has changed since.
CHANGED_ELSEWHERE: dict[str, tuple[dict[str, object], Operation]] = {
    "complete a repeating task": (REPEATING, OPERATIONS["toggle"]),
    "move the due of a task with a reminder": (REMINDED, WITH_A_REMINDER["move the due"][0]),
}


@pytest.mark.parametrize("name", sorted(CHANGED_ELSEWHERE))
def test_a_write_planned_from_a_task_changed_since_takes_two_round_trips(
    proxied_server: tuple[httpx.Client, RoundTrips, str], name: str
) -> None:
    # The planned write does not act, and reads the task in the same round trip; the write
    # planned from that is the second.
    client, counter, url = proxied_server
    body, operation = CHANGED_ELSEWHERE[name]

    def change_elsewhere(task: int) -> None:
        with psycopg.connect(libpq_url(url), autocommit=True) as connection:
            connection.execute(
                "UPDATE tasks SET title = 'changed', version = version + 1 WHERE id = %s", (task,)
            )

    counts = []
    for _ in range(MEASURED):
        task = client.post(tasks_url(OWNER), json=body).json()["id"]
        change_elsewhere(task)
        before = counter.count
        response = operation(client, task)
        counts.append(counter.count - before)
        assert response.status_code == 200, response.text
        assert client.get(task_url(OWNER, task)).json()["title"] == "changed"
    assert statistics.median(counts) == 2, counts


def test_complete_all_takes_one_round_trip_for_repeating_tasks_the_server_saw(
    proxied_server: tuple[httpx.Client, RoundTrips, str],
) -> None:
    # An owner of its own: complete-all reads all of the owner's pending repeating tasks.
    client, counter, url = proxied_server
    owner = "carol"
    complete_all = f"{tasks_url(owner)}/complete-all"

    def counted_complete_all(updated: int) -> int:
        before = counter.count
        response = client.post(complete_all, json={"completed": True})
        assert response.json() == {"updated": updated}, response.text
        return counter.count - before

    tasks = [client.post(tasks_url(owner), json=REPEATING).json()["id"] for _ in range(3)]
    client.post(tasks_url(owner), json={"title": "plain"})
    # The tasks as created, then their next occurrences as the first complete-all made them.
    assert [counted_complete_all(4), counted_complete_all(3)] == [1, 1]

    # Completing what does not repeat and what the server saw; reading the first page of what
    # repeats, which holds the task changed elsewhere; then its write.
    changed = client.post(tasks_url(owner), json=REPEATING).json()["id"]
    with psycopg.connect(libpq_url(url), autocommit=True) as connection:
        connection.execute(
            "UPDATE tasks SET title = 'changed', version = version + 1 WHERE id = %s", (changed,)
        )
    assert counted_complete_all(4) == 2
    assert client.get(task_url(owner, changed)).json()["title"] == "changed"
    assert all(client.get(task_url(owner, task)).json()["completed"] for task in tasks)
    pending = client.get(tasks_url(owner), params={"status": "pending"}).json()
    assert len(pending) == 4  # one next occurrence of each series


def test_completing_a_repeating_task_made_by_a_keyed_create_takes_one_round_trip(
    proxied_server: tuple[httpx.Client, RoundTrips, str],
) -> None:
    # The keyed insert returns the row as stored, which the server keeps; a replay of the key
    # answers from the request and keeps nothing, so the first record still plans the write.
    client, counter, _ = proxied_server
    counts = []
    for attempt in range(WARM_UP + MEASURED):
        keyed = {"Idempotency-Key": f"repeating-{attempt}"}
        made = client.post(tasks_url(OWNER), json=REPEATING, headers=keyed)
        replayed = client.post(tasks_url(OWNER), json=REPEATING, headers=keyed)
        assert (made.status_code, replayed.headers.get("Idempotent-Replayed")) == (201, "true")
        before = counter.count
        completed = OPERATIONS["toggle"](client, made.json()["id"])
        counts.append(counter.count - before)
        assert completed.json()["completed"] is True, completed.text
        assert completed.json()["next_occurrence_id"] is not None
    assert statistics.median(counts[WARM_UP:]) == 1, counts


#: Requests that each run one statement prepared from its first run, on the task given.
PREPARED_ON_FIRST_RUN: dict[str, Callable[[httpx.AsyncClient, int], Awaitable[httpx.Response]]] = {
    "read": lambda client, task: client.get(task_url(OWNER, task)),
    "toggle": lambda client, task: client.patch(f"{task_url(OWNER, task)}/complete"),
    "tags": lambda client, _task: client.get(f"/api/{OWNER}/tags"),
    "stats": lambda client, _task: client.get(f"{tasks_url(OWNER)}/stats"),
    "list": lambda client, _task: client.get(tasks_url(OWNER)),
}


async def test_no_request_waits_a_round_trip_for_its_statement_to_be_prepared(
    backend: str, migrated_url: str
) -> None:
    """psycopg prepares a statement on its sixth run on a connection, and outside a pipeline
    waits for that before the run: a round trip of its own, on every new connection. The
    statements most requests run are prepared on their first run, in its round trip."""
    if backend != "postgres":
        pytest.skip("counts the round trips to a PostgreSQL server")
    # In this process, without the server's lifespan: no clean-up run shares the count.
    with roundtrip_proxy(migrated_url, delay=DISTANCE_SECONDS) as (proxied_url, counter):
        async with app_client(proxied_url) as client:
            task = await create(client, OWNER, title="prepared")  # opens the one connection
            for name, send in PREPARED_ON_FIRST_RUN.items():
                counts = []
                for _ in range(8):
                    before = counter.count
                    assert (await send(client, task["id"])).status_code == 200
                    counts.append(counter.count - before)
                assert counts == [1] * 8, f"{name}: {counts}"


#: Requests whose statements psycopg prepares once they have run five times on a connection.
PREPARED_ON_SIXTH_RUN: dict[
    str, Callable[[httpx.AsyncClient, int, int], Awaitable[httpx.Response]]
] = {
    "patch": lambda client, task, run: client.patch(
        task_url(OWNER, task), json={"title": f"run {run}"}
    ),
    "put": lambda client, task, run: client.put(task_url(OWNER, task), json={"title": f"{run}"}),
    "pending": lambda client, _task, _run: client.get(
        tasks_url(OWNER), params={"status": "pending"}
    ),
}


async def test_no_request_waits_a_round_trip_for_psycopg_to_prepare_its_statement(
    backend: str, migrated_url: str
) -> None:
    """Left to itself, psycopg prepares a statement on its sixth run, and waits for that
    before the run: that run would take two round trips, once on every connection."""
    if backend != "postgres":
        pytest.skip("counts the round trips to a PostgreSQL server")
    with roundtrip_proxy(migrated_url, delay=DISTANCE_SECONDS) as (proxied_url, counter):
        app = create_app(Settings(_env_file=None, database_url=proxied_url))
        transport = httpx.ASGITransport(app=app)
        try:
            async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
                task = await create(client, OWNER, title="prepared")  # opens the one connection
                prepared = await _prepared_on_the_connection(app)
                for name, send in PREPARED_ON_SIXTH_RUN.items():
                    counts = []
                    for run in range(8):
                        before = counter.count
                        assert (await send(client, task["id"], run)).status_code == 200
                        counts.append(counter.count - before)
                    assert counts == [1] * 8, f"{name}: {counts}"
                # And they are prepared, one statement each, where connections prepare (not
                # through the PgBouncer of that pass, which does not keep them).
                added = 0 if through_pgbouncer() else 3
                assert await _prepared_on_the_connection(app) == prepared + added
        finally:
            await close_databases(app)


async def _prepared_on_the_connection(app: FastAPI) -> int:
    """How many statements the app's one connection has prepared (itself never prepared,
    run only now and then)."""
    count = select(func.count()).select_from(text("pg_prepared_statements"))
    rows = await app.state.database.fetch_all(count.execution_options(prepare=False), {})
    return int(rows[0][0])


async def test_ids_of_every_size_run_one_prepared_statement(
    backend: str, migrated_url: str
) -> None:
    """psycopg sends an integer as int2, int4 or int8 by its size, and prepares a statement
    once for each: a task id past 32,767 would be a statement of its own, prepared on its
    sixth run in a round trip of its own, where an older, smaller id is prepared already."""
    if backend != "postgres":
        pytest.skip("counts the round trips to a PostgreSQL server")
    with roundtrip_proxy(migrated_url, delay=DISTANCE_SECONDS) as (proxied_url, counter):
        async with app_client(proxied_url) as client:
            small = await create(client, OWNER, title="small id")
            with psycopg.connect(libpq_url(migrated_url), autocommit=True) as connection:
                connection.execute("SELECT setval(pg_get_serial_sequence('tasks', 'id'), 70000)")
            large = await create(client, OWNER, title="large id")
            assert large["id"] == 70001
            counts = []
            for _ in range(8):
                for task in (small, large):
                    before = counter.count
                    assert (await client.get(task_url(OWNER, task["id"]))).status_code == 200
                    counts.append(counter.count - before)
            assert counts == [1] * 16, counts


def test_few_statements_are_prepared_from_their_first_run(app: FastAPI) -> None:
    """psycopg keeps at most 100 prepared statements on a connection and deallocates the
    least recently used beyond that, in a round trip of its own: those prepared from their
    first run must leave it room for those it prepares after its own count of runs."""
    compiled = app.state.database._pinned.values()  # every statement compiled at start-up
    first = [statement.sql.split()[0] for statement in compiled if statement.prepare is True]
    assert len(compiled) > 100  # what the limit would meet if they all were
    # Read, the default listing, stats, tags; create; toggle and delete, each with If-Match
    # or without.
    assert sorted(first) == [
        "DELETE",
        "DELETE",
        "INSERT",
        "SELECT",
        "SELECT",
        "SELECT",
        "SELECT",
        "UPDATE",
        "UPDATE",
    ]


class _Connection:
    """What `_prepare_option` reads of a connection: one that prepares."""

    prepare_threshold = PREPARE_THRESHOLD


def test_runs_are_counted_for_a_bounded_number_of_statements(app: FastAPI) -> None:
    """A client can make thousands of different listings: their counts must not all stay
    for the connection's life."""
    database = app.state.database
    if not isinstance(database, PostgresDatabase):
        pytest.skip("counts runs where statements are prepared")
    connection = cast(psycopg.AsyncConnection[Any], _Connection())
    statements = [
        CompiledStatement(
            sql=f"SELECT {number}",
            columns=(),
            fixed_parameters={},
            bind_processors=(),
            result_processors=(),
        )
        for number in range(COUNTED_STATEMENTS + 50)
    ]
    for statement in statements:
        assert database._prepare_option(connection, statement) is None
    counted = database._runs[connection]
    assert list(counted) == [statement.sql for statement in statements[-COUNTED_STATEMENTS:]]
    # The sixth run of one still counted prepares it; one forgotten starts over.
    for _ in range(PREPARE_THRESHOLD - 1):
        database._prepare_option(connection, statements[-1])
    assert database._prepare_option(connection, statements[-1]) is True
    assert database._prepare_option(connection, statements[0]) is None
    assert counted[statements[0].sql] == 1
