"""No user can see, change or detect another user's task, and the SQL proves why."""

import re
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import (
    BindParameter,
    Delete,
    Insert,
    Select,
    Table,
    Update,
    bindparam,
    func,
    or_,
    select,
    text,
)
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.sql import operators, visitors
from sqlalchemy.sql.elements import BinaryExpression, BooleanClauseList, ClauseElement

from tests.helpers import (
    assert_problem,
    close_databases,
    create,
    jwt_settings,
    task_url,
    tasks_url,
    token_for_path_user,
)
from todo_api.app import create_app
from todo_api.db.database import Statement, StatementShape
from todo_api.db.models import task_tags_table, tasks_table
from todo_api.settings import Settings

OPERATIONS: list[tuple[str, str, dict[str, Any] | None]] = [
    ("GET", "", None),
    ("PUT", "", {"title": "hijacked", "completed": True}),
    ("PATCH", "", {"title": "hijacked"}),
    ("PATCH", "", {"tags": ["hijacked"]}),
    ("PATCH", "/complete", None),
    ("PATCH", "/complete", {"completed": True}),
    ("DELETE", "", None),
]


async def _snapshot(engine: AsyncEngine) -> list[tuple[Any, ...]]:
    async with engine.connect() as connection:
        tasks = await connection.execute(text("SELECT * FROM tasks ORDER BY id"))
        tags = await connection.execute(text("SELECT * FROM task_tags ORDER BY task_id, key"))
        return [tuple(row) for row in [*tasks, *tags]]


@pytest.fixture(scope="module", params=["none", "jwt"], ids=["path-is-caller", "tokens"])
async def app(database_url: str, request: pytest.FixtureRequest) -> AsyncIterator[FastAPI]:
    """Every test here runs twice: the path is the caller, then each caller has a token."""
    auth = jwt_settings() if request.param == "jwt" else {}
    application = create_app(Settings(_env_file=None, database_url=database_url, **auth))
    yield application
    await close_databases(application)


@pytest.fixture
async def client(app: FastAPI, engine: AsyncEngine) -> AsyncIterator[httpx.AsyncClient]:
    auth = None if app.state.token_verifier is None else token_for_path_user
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(
        transport=transport, base_url="http://testserver", auth=auth
    ) as client:
        yield client


@pytest.mark.parametrize(("method", "suffix", "body"), OPERATIONS)
async def test_another_users_task_looks_exactly_like_a_missing_one(
    client: httpx.AsyncClient,
    engine: AsyncEngine,
    method: str,
    suffix: str,
    body: dict[str, Any] | None,
) -> None:
    alices = await create(client, "alice", title="private", tags=["secret"])
    missing_id = alices["id"] + 1000
    before = await _snapshot(engine)

    as_bob = await client.request(method, task_url("bob", alices["id"]) + suffix, json=body)
    missing = await client.request(method, task_url("bob", missing_id) + suffix, json=body)

    assert_problem(as_bob, 404)
    assert_problem(missing, 404)
    assert as_bob.json() == {
        **missing.json(),
        "detail": missing.json()["detail"].replace(str(missing_id), str(alices["id"])),
    }
    assert as_bob.headers.keys() == missing.headers.keys()
    assert await _snapshot(engine) == before


async def test_lists_and_counts_never_include_other_users(client: httpx.AsyncClient) -> None:
    await create(client, "alice", title="a")
    await create(client, "alice:work", title="b")
    await create(client, "ALICE", title="c")

    response = await client.get(tasks_url("alice"))

    assert [task["title"] for task in response.json()] == ["a"]
    assert response.headers["x-total-count"] == "1"


@pytest.fixture
def statements(app: FastAPI, engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every SQL statement the app sends to the driver while the test runs."""
    seen: list[str] = []
    database = app.state.database
    for method in ("_run", "_run_counting"):
        send = getattr(database, method)

        def record(connection: Any, statement: Any, params: Any, send: Any = send) -> Any:
            seen.append(statement.sql)
            return send(connection, statement, params)

        monkeypatch.setattr(database, method, record)
    run_together = database._run_together

    def record_steps(connection: Any, steps: Any) -> Any:
        seen.extend(statement.sql for statement, _ in steps)
        return run_together(connection, steps)

    monkeypatch.setattr(database, "_run_together", record_steps)
    return seen


@pytest.fixture
def constructs(
    app: FastAPI, engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> list[ClauseElement]:
    """Every SQLAlchemy statement the app executes while the test runs, before compiling."""
    seen: list[ClauseElement] = []
    database = app.state.database
    compiled = database.compiled

    def record(statement: Statement) -> Any:
        # A shape is built once per process; build it again to see what it is.
        built = (
            statement.build(*statement.args) if isinstance(statement, StatementShape) else statement
        )
        seen.append(built)
        return compiled(statement)

    monkeypatch.setattr(database, "compiled", record)
    return seen


def _is_owner_filter(condition: ClauseElement, table: Table) -> bool:
    return (
        isinstance(condition, BinaryExpression)
        and condition.operator is operators.eq
        and condition.left is table.c.user_id
        and isinstance(condition.right, BindParameter)
    )


def inserts_new_rows(sql: str) -> bool:
    """An INSERT, or the insert of a new task and its tag rows in one statement
    (`tasks._insert_with_tags`), which reads nothing but what its own insert returns."""
    return sql.startswith(("INSERT", "WITH new_task AS (INSERT INTO tasks "))


def _unfiltered_reads_and_writes(statement: ClauseElement) -> list[str]:
    """Each SELECT, UPDATE or DELETE in `statement`, subqueries included, that touches tasks
    or tag rows without `<table>.user_id = :owner` for each of those tables as one of the
    conditions its own WHERE requires."""
    missing = []
    for node in visitors.iterate(statement):
        if isinstance(node, Select):
            touched = [t for t in (tasks_table, task_tags_table) if t in node.get_final_froms()]
        elif isinstance(node, Update | Delete):
            touched = [node.table] if node.table in (tasks_table, task_tags_table) else []
        else:
            continue
        where = node.whereclause
        required = (
            list(where.clauses)
            if isinstance(where, BooleanClauseList) and where.operator is operators.and_
            else [where]
        )
        for table in touched:
            if not any(c is not None and _is_owner_filter(c, table) for c in required):
                missing.append(str(node))
    return missing


async def test_every_statement_on_tasks_filters_by_owner(
    client: httpx.AsyncClient, statements: list[str], constructs: list[ClauseElement]
) -> None:
    task = await create(client, "alice", title="t")
    url = task_url("alice", task["id"])
    for status in ("all", "pending", "completed"):
        for sort in ("-created_at", "created_at", "-updated_at", "updated_at", "title", "-title"):
            await client.get(tasks_url("alice"), params={"status": status, "sort": sort})
    await client.get(url)
    await client.put(url, json={"title": "t2"})
    await client.patch(url, json={"description": "d"})
    await client.patch(url, json={})
    await client.patch(f"{url}/complete")
    await client.patch(f"{url}/complete", json={"completed": False})
    for method in ("GET", "PUT", "PATCH", "DELETE"):
        await client.request(method, task_url("bob", task["id"]), json={"title": "x"})
    await client.get(tasks_url("alice"), params={"q": "t", "status": "pending"})
    await client.get(f"{tasks_url('alice')}/stats")
    await client.post(f"{tasks_url('alice')}/complete-all", json={"completed": True})
    await client.delete(f"{tasks_url('alice')}/completed")  # the task was completed
    url = task_url("alice", (await create(client, "alice", title="t"))["id"])
    etag = (await client.get(url)).headers["etag"]
    for if_match in (etag, '"0.0"'):  # a match, then a mismatch that must read the task
        headers = {"If-Match": if_match}
        await client.put(url, json={"title": "t3"}, headers=headers)
        await client.patch(url, json={"title": "t4"}, headers=headers)
        await client.patch(f"{url}/complete", headers=headers)
        await client.patch(f"{url}/complete", json={"completed": True}, headers=headers)
        await client.delete(url, headers={"If-Match": '"0.0"'})
    await client.get(url, headers={"If-None-Match": etag})
    await client.post(tasks_url("alice"), json={"title": "k"}, headers={"Idempotency-Key": "k"})
    await client.post(tasks_url("alice"), json={"title": "k"}, headers={"Idempotency-Key": "k"})
    await client.delete(url, headers={"If-Match": "*"})
    tagged = await create(client, "alice", title="t", tags=["Work", "home"])
    url = task_url("alice", tagged["id"])
    await client.get(tasks_url("alice"), params={"tags": "work,HOME", "sort": "due"})
    await client.get(tasks_url("alice"), params={"tags": "work", "offset": 5})
    await client.patch(url, json={"tags": ["errands"]})
    await client.put(url, json={"title": "t", "tags": []}, headers={"If-Match": '"0.0"'})
    await client.patch(task_url("bob", tagged["id"]), json={"tags": ["stolen"]})
    await client.get("/api/alice/tags")
    await client.delete(url)

    for table, at_least in (("tasks", 45), ("task_tags", 6)):
        # The table named, not quoted as the sequence behind tasks.id is.
        on_table = [sql for sql in statements if re.search(rf"(?<!')\b{table}\b(?!')", sql)]
        assert len(on_table) >= at_least
        for sql in on_table:
            flat = " ".join(sql.split())
            if inserts_new_rows(flat):
                assert "user_id" in flat, flat
            else:
                assert re.search(rf"\bWHERE\b.*\b{table}\.user_id = ", flat), flat
    # Text alone cannot tell whose WHERE a condition is in (the list's count subquery has
    # its own): each query and subquery on tasks must require the owner itself.
    assert len([c for c in constructs if not isinstance(c, Insert)]) >= 40
    for statement in constructs:
        assert _unfiltered_reads_and_writes(statement) == []


def test_the_audit_sees_a_missing_owner_filter_beside_a_filtered_subquery() -> None:
    owners = select(func.count()).where(tasks_table.c.user_id == bindparam("owner"))
    unfiltered = select(tasks_table, owners.scalar_subquery()).where(tasks_table.c.id == 1)
    assert len(_unfiltered_reads_and_writes(unfiltered)) == 1
    assert _unfiltered_reads_and_writes(unfiltered.where(tasks_table.c.user_id == "x")) == []
    weakened = select(tasks_table).where(
        or_(tasks_table.c.user_id == bindparam("owner"), tasks_table.c.id == 1)
    )
    assert len(_unfiltered_reads_and_writes(weakened)) == 1


def test_the_audit_sees_a_tag_lookup_without_the_owner() -> None:
    tags = task_tags_table.c
    lookup = select(tasks_table).where(
        tasks_table.c.user_id == bindparam("owner"),
        tasks_table.c.id.in_(select(tags.task_id).where(tags.key == "work")),
    )
    assert len(_unfiltered_reads_and_writes(lookup)) == 1
    scoped = select(tags.task_id).where(tags.key == "work", tags.user_id == bindparam("owner"))
    assert _unfiltered_reads_and_writes(scoped) == []
