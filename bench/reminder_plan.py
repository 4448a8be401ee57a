"""The due-reminder query's plan as the table grows (issue 24).

`make bench-reminders`, or `.venv/bin/python bench/reminder_plan.py [--sizes ...]`. For each
size, a throwaway database of TEST_DATABASE_URL's server (default: the local PostgreSQL's
`postgres` database as admin) is migrated and seeded with that many tasks, 100 per user, so
that the user asked about has the same tasks whatever the size; one task in ten has a reminder,
of which some were acknowledged, some belong to completed tasks and some are still ahead. It
prints EXPLAIN (ANALYZE, BUFFERS) of the statement GET /api/{user_id}/reminders runs, as the
app compiles it, for that user: the partial index on armed reminders is read, and the cost
does not grow with the table.
"""

import argparse
import os
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
from sqlalchemy.dialects import postgresql

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from auth_cost import throwaway_database  # noqa: E402

from todo_api.db.tasks import _DUE_REMINDERS  # noqa: E402

TASKS_PER_USER = 100
DEFAULT_SIZES = (100_000, 1_000_000, 3_000_000)
DEFAULT_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"

# Tasks numbered g: every tenth has a reminder, spread over 2026; of those, one in three was
# acknowledged and one in five belongs to a completed task (which completing acknowledged).
_SEED = """
INSERT INTO tasks (user_id, title, completed, completed_at, created_at, updated_at,
                   remind_at, reminder_acknowledged_at)
SELECT 'u' || (g % {users}), 'Task ' || g, g % 50 = 0, CASE WHEN g % 50 = 0 THEN now() END,
       now(), now(),
       CASE WHEN g % 10 = 0 THEN timestamptz '2026-01-01' + (g % 365) * interval '1 day' END,
       CASE WHEN g % 30 = 0 OR g % 50 = 0 THEN now() END
FROM generate_series(1, {size}) AS g
"""


def _statement() -> str:
    # Named parameters (`%(owner)s`), which psycopg takes as they are.
    return str(_DUE_REMINDERS.compile(dialect=postgresql.dialect()))  # type: ignore[no-untyped-call]


def plan(admin_url: str, size: int) -> str:
    def seed(connection: psycopg.Connection[Any]) -> None:
        users = size // TASKS_PER_USER
        connection.execute(_SEED.format(users=users, size=size).encode())

    with (
        throwaway_database(admin_url, seed) as url,
        psycopg.connect(url, autocommit=True) as connection,
    ):
        params = {
            "owner": "u10",
            "until": datetime(2026, 7, 1, tzinfo=UTC),
            "limit": 100,
            "offset": 0,
        }
        rows = connection.execute(
            "EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) " + _statement(), params
        ).fetchall()
    return "\n".join(row[0] for row in rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=list(DEFAULT_SIZES))
    arguments = parser.parse_args()
    admin_url = os.environ.get("TEST_DATABASE_URL", DEFAULT_ADMIN_URL)
    for size in arguments.sizes:
        print(f"### {size:,} tasks\n\n```\n{plan(admin_url, size)}\n```\n", flush=True)


if __name__ == "__main__":
    main()
