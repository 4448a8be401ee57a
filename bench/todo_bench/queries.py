"""The list's sorts and filters of issue 14, on the first page of the 10,000-task user.

Each case is a query string, which the wrk cells append to `GET /api/heavy/tasks`, and the
statement the API runs for it: todo_api.db.tasks.list_tasks called as the route calls it,
on a stand-in database that keeps the statement and its values instead of running them,
compiled as the API's PostgreSQL database compiles it. From it come the pgbench script
(the same statement, its values as pgbench variables; pgbench prepares it, as the API's
connections do with DB_PREPARED_STATEMENTS=true) and the plans (EXPLAIN ANALYZE of it with
its values bound, as the API's connections send it by default: a custom plan each time).
"""

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any, cast
from zoneinfo import ZoneInfo

import psycopg

from todo_bench.cluster import Database
from todo_bench.data import COMMON_TAG, HEAVY_USER

PAGE_SIZE = 100
_PLACEHOLDER = re.compile(r"%\((\w+)\)s")


@dataclass(frozen=True)
class ListCase:
    """GET /api/{owner}/tasks?{query}, and the arguments the route gives list_tasks for it."""

    query: str
    sort: str = "-created_at"
    status: str = "all"
    search: str | None = None
    priorities: tuple[str, ...] = ()
    tz: str = "UTC"
    has_due: bool | None = None
    due_from: date | None = None
    due_to: date | None = None
    overdue: bool | None = None
    tags: tuple[str, ...] = ()
    offset: int = 0

    @property
    def slug(self) -> str:
        return re.sub(r"\W+", "-", self.query).strip("-") or "default"


DEFAULT = ListCase("")
CASES = (
    ListCase("sort=due", sort="due"),
    ListCase("sort=-priority", sort="-priority"),
    ListCase(f"tags={COMMON_TAG}", tags=(COMMON_TAG,)),
    ListCase("overdue=true", overdue=True),
)


@dataclass
class _Recorder:
    """Stands in for todo_api's Database and Session: keeps what would be run, returns nothing."""

    calls: list[tuple[Any, Mapping[str, Any]]] = field(default_factory=list)

    @contextlib.asynccontextmanager
    async def session(self) -> AsyncIterator["_Recorder"]:
        yield self

    async def fetch_all(self, statement: Any, params: Mapping[str, Any]) -> list[Any]:
        self.calls.append((statement, params))
        return []

    async def fetch_one(self, statement: Any, params: Mapping[str, Any]) -> None:
        self.calls.append((statement, params))


@dataclass(frozen=True)
class Statement:
    """SQL with psycopg's %(name)s placeholders, and the values the driver binds to them."""

    sql: str
    params: dict[str, Any]

    def names(self) -> list[str]:
        """The parameters the SQL uses, in the order they first appear."""
        return list(dict.fromkeys(_PLACEHOLDER.findall(self.sql)))

    def positional(self) -> str:
        """The SQL with $1, $2... in the order of `names()`, for PREPARE."""
        names = self.names()
        text = _PLACEHOLDER.sub(lambda found: f"${names.index(found[1]) + 1}", self.sql)
        return text.replace("%%", "%")

    def pgbench_script(self, path: Path, comment: str) -> dict[str, str]:
        """Write the statement as a pgbench script; returns the variables it needs (-D)."""
        text = _PLACEHOLDER.sub(lambda found: f":{found[1]}", self.sql).replace("%%", "%")
        path.write_text(f"-- {comment}\n{text};\n")
        return {name: pg_text(self.params[name]) for name in self.names()}


def pg_text(value: Any) -> str:
    """`value` in PostgreSQL's text input form (a list as an array: `{"a","b"}`)."""
    if isinstance(value, list | tuple):
        quoted = ('"' + str(item).replace("\\", "\\\\").replace('"', '\\"') + '"' for item in value)
        return "{" + ",".join(quoted) + "}"
    return str(value)


def list_statements(case: ListCase = DEFAULT, owner: str = HEAVY_USER) -> list[Statement]:
    """The statements the API sends for GET /api/{owner}/tasks?{case.query}, in order.

    The page; then, as the stand-in finds no rows, the count when the page is past the
    start (a page past the end counts the tasks on its own).
    """
    from todo_api.db import tasks as api

    recorder = _Recorder()
    page = api.list_tasks(
        cast(Any, recorder),
        owner=owner,
        status=api.TaskStatus(case.status),
        sort=api.TaskSort(case.sort),
        limit=PAGE_SIZE,
        offset=case.offset,
        search=case.search,
        priorities=case.priorities,
        due=api.DueQuery(
            zone=ZoneInfo(case.tz),
            has_due=case.has_due,
            due_from=case.due_from,
            due_to=case.due_to,
            overdue=case.overdue,
        ),
        tags=case.tags,
    )
    asyncio.run(page)
    return [api_compiled(statement, values) for statement, values in recorder.calls]


def list_statement(case: ListCase = DEFAULT, owner: str = HEAVY_USER) -> Statement:
    """The statement the API sends for the first page of GET /api/{owner}/tasks?{case.query}."""
    return list_statements(case, owner)[0]


def api_compiled(statement: Any, values: Mapping[str, Any]) -> Statement:
    """`statement` (a StatementShape or a SQLAlchemy statement) with `values`, as the API's
    PostgreSQL database compiles it (todo_api.db.database.Database.compiled)."""
    from todo_api.db.database import StatementShape
    from todo_api.db.postgres import PostgresDatabase
    from todo_api.db.statements import compile_statement

    if isinstance(statement, StatementShape):
        statement = statement.build(*statement.args)
    compiled = compile_statement(
        statement, PostgresDatabase.dialect, loaded_as_is=PostgresDatabase.loaded_as_is
    )
    return Statement(compiled.sql, compiled.parameters(values))


def unprepared(db: Database) -> psycopg.Connection[Any]:
    """A connection that sends statements as the API's do by default (prepared statements
    off: DB_PREPARED_STATEMENTS unset on a host that is not certain to keep them): each an
    unnamed statement with its values bound, so planned afresh for them, a custom plan."""
    connection = psycopg.connect(
        db.url, autocommit=True, connect_timeout=10, prepare_threshold=None
    )
    connection.execute("SET TIME ZONE 'UTC'")  # as the API's connections
    return connection


def explain_cases(db: Database) -> dict[str, str]:
    """EXPLAIN (ANALYZE, BUFFERS) of each case's statement as the API's connections send it
    by default (`unprepared`): a custom plan. The second run's plan is kept (warm cache)."""
    plans = {}
    with unprepared(db) as connection:
        for case in CASES:
            statement = list_statement(case)
            lines: list[str] = []
            for _ in range(2):
                rows = connection.execute(
                    f"EXPLAIN (ANALYZE, BUFFERS) {statement.sql}", statement.params
                ).fetchall()
                lines = [row[0] for row in rows]
            plans[f"10,000-task user, `?{case.query}` (custom plan, unprepared)"] = "\n".join(lines)
    return plans


def matching(db: Database, case: ListCase) -> int:
    """How many of the 10,000-task user's tasks the case lists (its X-Total-Count)."""
    statement = list_statement(case)
    with db.connect() as connection:
        connection.execute("SET TIME ZONE 'UTC'")
        row = connection.execute(statement.sql, statement.params).fetchone()
    return int(row[-1]) if row else 0
