"""The list's sorts and filters of issue 14, on the first page of the 10,000-task user.

Each case is a query string, which the wrk cells append to `GET /api/heavy/tasks`, and the
statement the API runs for it: todo_api.db.tasks.list_tasks called as the route calls it,
on a stand-in database that keeps the statement and its values instead of running them,
compiled as the API's PostgreSQL database compiles it. From it come the pgbench script
(the same statement, its values as pgbench variables, so prepared with parameters as the
API's connections prepare it) and the plans (EXPLAIN ANALYZE of it prepared and run a few
times, so that PostgreSQL has chosen between a custom and a generic plan, as it does for
the API).
"""

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

from psycopg import sql as pgsql

from todo_bench.cluster import Database
from todo_bench.data import COMMON_TAG, HEAVY_USER

PAGE_SIZE = 100
# Executions of a prepared statement after which PostgreSQL (plan_cache_mode = auto) has
# settled on a custom or a generic plan: five custom plans, then the choice.
SETTLED_RUNS = 7
_PLACEHOLDER = re.compile(r"%\((\w+)\)s")


@dataclass(frozen=True)
class ListCase:
    """GET /api/{owner}/tasks?{query}, and the arguments the route gives list_tasks for it."""

    query: str
    sort: str = "-created_at"
    overdue: bool | None = None
    tags: tuple[str, ...] = ()

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
        return {name: str(self.params[name]) for name in self.names()}


def list_statement(case: ListCase = DEFAULT, owner: str = HEAVY_USER) -> Statement:
    """The statement the API sends for the first page of GET /api/{owner}/tasks?{case.query}."""
    from todo_api.db import tasks as api
    from todo_api.db.postgres import PostgresDatabase
    from todo_api.db.statements import compile_statement

    recorder = _Recorder()
    page = api.list_tasks(
        cast(Any, recorder),
        owner=owner,
        sort=api.TaskSort(case.sort),
        limit=PAGE_SIZE,
        due=api.DueQuery(overdue=case.overdue),
        tags=case.tags,
    )
    asyncio.run(page)
    statement, values = recorder.calls[0]
    compiled = compile_statement(statement, PostgresDatabase.dialect)
    return Statement(compiled.sql, compiled.parameters(values))


def explain_cases(db: Database) -> dict[str, str]:
    """EXPLAIN (ANALYZE, BUFFERS) of each case's statement as the API's connections run it.

    Prepared with parameters and executed SETTLED_RUNS times; the last plan is kept. A
    generic plan shows its parameters ($1...) in its conditions, a custom one the values.
    """
    plans = {}
    with db.connect() as connection:
        connection.execute("SET TIME ZONE 'UTC'")  # as the API's connections
        for case in CASES:
            statement = list_statement(case)
            connection.execute(f"PREPARE bench_case AS {statement.positional()}")
            values = pgsql.SQL(", ").join(
                pgsql.Literal(statement.params[name]) for name in statement.names()
            )
            explain = pgsql.SQL("EXPLAIN (ANALYZE, BUFFERS) EXECUTE bench_case ({})").format(values)
            lines: list[str] = []
            for _ in range(SETTLED_RUNS):
                lines = [row[0] for row in connection.execute(explain).fetchall()]
            plan = "\n".join(lines)
            kind = "generic" if re.search(r"\$\d", plan) else "custom"
            plans[f"10,000-task user, `?{case.query}` ({kind} plan)"] = plan
            connection.execute("DEALLOCATE bench_case")
    return plans


def matching(db: Database, case: ListCase) -> int:
    """How many of the 10,000-task user's tasks the case lists (its X-Total-Count)."""
    statement = list_statement(case)
    with db.connect() as connection:
        connection.execute("SET TIME ZONE 'UTC'")
        row = connection.execute(statement.sql, statement.params).fetchone()
    return int(row[-1]) if row else 0
