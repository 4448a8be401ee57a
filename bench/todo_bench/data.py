"""The data set: migrations, the seed, and putting the table back after writes."""

import json
import os
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import psycopg

from todo_bench.cluster import Database, with_search_path
from todo_bench.common import ROOT, BenchError, log, run

# The data set. A task id tells its owner (bench/wrk/common.lua relies on it):
# ids 1..USERS*TASKS_PER_USER belong to user ((id - 1) % USERS) + 1.
USERS = 10_000
TASKS_PER_USER = 100
HEAVY_USER = "heavy"
HEAVY_TASKS = 10_000
HEAVY_ID_BASE = USERS * TASKS_PER_USER
POOL_ID_BASE = 5_000_000  # rows that the delete cells delete: owners gone0001..gone1000
POOL_OWNERS = 1_000
CREATED_ID_FLOOR = 10_000_000  # ids the API hands out start above this
SMALL_SCHEMA = "bench_small"  # the 1,000-row table of the scale check
SMALL_USERS = 10

# The fields of issue 14, drawn per task from a hash of its id (independent of each other
# and of `completed`): priority low / medium / high for 20 / 55 / 25% of tasks; a due for
# 40%, half a date and half an instant, from 30 days before the seed day to 89 after it
# (a quarter of them past, so that `overdue=true` finds the pending ones); and one of
# TAG_SETS (0-3 tags, `work` in any spelling on 30% of tasks).
TAG_SETS: tuple[tuple[str, ...], ...] = (
    *[()] * 7,
    ("work",),
    ("work",),
    ("Work",),
    ("home",),
    ("errands",),
    ("health",),
    ("family",),
    ("work", "errands"),
    ("home", "family"),
    ("work", "finance"),
    ("home", "health"),
    ("work", "travel", "errands"),
    ("home", "errands", "shopping"),
)
COMMON_TAG = "work"
# A task's tags as the API stores them on the row (todo_api.db.models.TagList).
TAG_JSON = [json.dumps(list(tags), ensure_ascii=False, separators=(",", ":")) for tags in TAG_SETS]
TAG_NAMES = sorted({tag for tags in TAG_SETS for tag in tags})

LOREM = (
    "Check the receipts first, then compare them with the statement from last month. "
    "If anything is missing, call the shop before Friday and ask for a copy. Keep the "
    "reference number somewhere safe; the last time it took three calls to sort out. "
    "Bring the blue folder, the spare keys and the charger. Ask Sam whether the meeting "
    "moved to Thursday, and book the small room if it did. Notes from the call go in the "
    "shared document under this week's heading."
)

SEED_ROWS_SQL = """
WITH g AS (
    SELECT n, mod(n - 1, %(users)s) + 1 AS u, (n - 1) / %(users)s AS k
    FROM generate_series(%(first)s::bigint, %(last)s::bigint) AS n
), r AS (
    SELECT n, u, k,
           mod(n * 7 + k, 100) < 35 AS done,
           mod(n * 17, 72) * interval '1 hour' AS age,
           %(start)s::timestamptz + k * %(step)s::interval
               + mod(u * 127, 86400) * interval '1 second' AS created,
           mod(hashint8extended(%(id_base)s::bigint + n, 1) & 1048575, 20) AS p,
           mod(hashint8extended(%(id_base)s::bigint + n, 2) & 1048575, 10) AS d,
           mod(hashint8extended(%(id_base)s::bigint + n, 3) & 1048575, 120) - 30 AS due_in,
           1 + mod(hashint8extended(%(id_base)s::bigint + n, 4) & 1048575,
                   cardinality(%(tag_sets)s::text[])) AS s
    FROM g
), seed AS (
SELECT %(id_base)s::bigint + n AS id,
       %(prefix)s || lpad(u::text, %(width)s, '0') AS user_id,
       (ARRAY['Buy', 'Call', 'Email', 'Fix', 'Plan', 'Review', 'Write', 'Book', 'Clean', 'Pay',
              'Renew', 'Prepare'])[1 + mod(n * 7, 12)]
           || ' '
           || (ARRAY['groceries', 'the dentist', 'quarterly report', 'invoice 2291',
                     'flight to Lisbon', 'car insurance', 'team retro notes',
                     'birthday present', 'kitchen sink', 'passport', 'project proposal',
                     'electricity bill'])[1 + mod(n * 13, 12)]
           || CASE WHEN mod(n, 3) = 0
                   THEN ' by ' || (ARRAY['Monday', 'Tuesday', 'Wednesday', 'Thursday',
                                         'Friday', 'Saturday', 'Sunday'])[1 + mod(n, 7)]
                   ELSE '' END AS title,
       CASE WHEN mod(n, 10) < 3 THEN NULL ELSE left(%(lorem)s, 20 + mod(n * 31, 380)::int) END
           AS description,
       done AS completed,
       CASE WHEN done THEN created + age END AS completed_at,
       created AS created_at,
       created + age AS updated_at,
       CASE WHEN p < 4 THEN 1 WHEN p < 15 THEN 2 ELSE 3 END AS priority,
       CASE WHEN d < 2 THEN %(today)s::date + due_in::int END AS due_date,
       CASE WHEN d IN (2, 3)
            THEN (%(today)s::date + due_in::int)::timestamp AT TIME ZONE 'UTC'
                 + mod(n * 5, 24) * interval '1 hour' END AS due_at,
       (%(tag_sets)s::text[])[s] AS tags
FROM r
)
"""

PLAIN_COLUMNS = "id, user_id, title, description, completed, completed_at, created_at, updated_at"
ALL_COLUMNS = f"{PLAIN_COLUMNS}, priority, due_date, due_at, tags"

# The rows with every field, and one task_tags row per tag under its key, from what the task
# row holds, as the API writes them.
SEED_SQL = (
    SEED_ROWS_SQL
    + """
, inserted AS (
INSERT INTO tasks ({columns})
SELECT {columns} FROM seed
{on_conflict}
RETURNING id, user_id, tags
)
INSERT INTO task_tags (task_id, key, user_id, name)
SELECT inserted.id, tag.key, inserted.user_id, tag.name
FROM inserted
CROSS JOIN LATERAL json_array_elements_text(inserted.tags::json) AS carried(name)
JOIN unnest(%(tag_names)s::text[], %(tag_keys)s::text[]) AS tag(name, key)
    ON tag.name = carried.name
"""
)

# The same rows with only the columns that every schema since the first revision has; the others
# take their defaults. What `todo_bench.compare` seeds, so that a commit from before issue 14
# and one after it serve identical rows.
PLAIN_SEED_SQL = (
    SEED_ROWS_SQL
    + """
INSERT INTO tasks ({columns})
SELECT {columns} FROM seed
{on_conflict}
"""
)


def seed_rows(
    db: Database,
    *,
    prefix: str,
    width: int,
    users: int,
    per_user: int,
    id_base: int,
    start: str,
    step: str,
    url: str | None = None,
    skip_existing: bool = False,
    plain: bool = False,
) -> None:
    """Insert users * per_user tasks: task k (from 0) of user u gets id id_base + k*users + u.

    With their tags' rows in task_tags, in the same statement; `plain`: without the fields of
    issue 14 (PLAIN_SEED_SQL).
    """
    params = {
        "users": users,
        "first": 1,
        "last": users * per_user,
        "start": start,
        "step": step,
        "id_base": id_base,
        "prefix": prefix,
        "width": width,
        "lorem": LOREM,
        "today": datetime.now(UTC).date(),
        "tag_sets": TAG_JSON,
        "tag_names": TAG_NAMES,
        "tag_keys": [name.casefold() for name in TAG_NAMES],
    }
    sql = (PLAIN_SEED_SQL if plain else SEED_SQL).format(
        columns=PLAIN_COLUMNS if plain else ALL_COLUMNS,
        on_conflict="ON CONFLICT (id) DO NOTHING" if skip_existing else "",
    )
    db.execute(sql, params, url=url)


def seed_users(
    db: Database, users: int = USERS, *, url: str | None = None, plain: bool = False
) -> None:
    """TASKS_PER_USER tasks for each of user00001 .. user<users>, ids 1 upwards."""
    seed_rows(
        db,
        prefix="user",
        width=5,
        users=users,
        per_user=TASKS_PER_USER,
        id_base=0,
        start="2025-01-01T00:00:00Z",
        step="3 days",
        url=url,
        plain=plain,
    )


def ids_from_floor(db: Database, *, url: str | None = None) -> None:
    """Tasks the API creates get ids above CREATED_ID_FLOOR, apart from the seeded ones."""
    db.execute(
        "SELECT setval(pg_get_serial_sequence('tasks', 'id'), %(floor)s)",
        {"floor": CREATED_ID_FLOOR},
        url=url,
    )


def migrate(url: str, out: Path, name: str, source: Path = ROOT) -> None:
    """`alembic upgrade head` with the migrations of the checkout at `source`."""
    env = {**os.environ, "DATABASE_URL": url, "PYTHONPATH": str(source / "src")}
    alembic = Path(sys.executable).with_name("alembic")
    run([alembic, "upgrade", "head"], cwd=source, env=env, timeout=120, output=out / name)


def prepare_data(db: Database, out: Path, *, reset: bool) -> dict[str, float]:
    timings: dict[str, float] = {}
    small_url = with_search_path(db.url, SMALL_SCHEMA)
    db.execute(f"CREATE SCHEMA IF NOT EXISTS {SMALL_SCHEMA}")
    log("alembic upgrade head (public and the 1,000-row schema)")
    migrate(db.url, out, "alembic.txt")
    migrate(small_url, out, "alembic-small.txt")
    existing = db.execute("SELECT count(*) FROM tasks")[0][0]
    if existing:
        if not reset:
            raise BenchError(
                f"the tasks table already holds {existing} rows; the benchmark seeds its own "
                "data. Use a throwaway database, or pass --reset to TRUNCATE it."
            )
        db.execute("TRUNCATE tasks, task_tags RESTART IDENTITY")
    db.execute("TRUNCATE tasks, task_tags RESTART IDENTITY", url=small_url)

    began = time.monotonic()
    log(f"seeding {USERS:,} users x {TASKS_PER_USER} tasks")
    seed_users(db)
    log(f"seeding user {HEAVY_USER!r} with {HEAVY_TASKS:,} tasks, and the 1,000-row schema")
    seed_rows(
        db,
        prefix=HEAVY_USER,
        width=0,
        users=1,
        per_user=HEAVY_TASKS,
        id_base=HEAVY_ID_BASE,
        start="2024-06-01T00:00:00Z",
        step="1 hour",
    )
    seed_users(db, SMALL_USERS, url=small_url)
    for url in (db.url, small_url):
        ids_from_floor(db, url=url)
    timings["seed_s"] = time.monotonic() - began
    began = time.monotonic()
    log("VACUUM (ANALYZE) and CHECKPOINT")
    db.execute("VACUUM (ANALYZE) tasks, task_tags")
    db.execute("VACUUM (ANALYZE) tasks, task_tags", url=small_url)
    checkpoint(db)
    timings["vacuum_s"] = time.monotonic() - began
    return timings


def checkpoint(db: Database) -> None:
    try:
        db.execute("CHECKPOINT")
    except psycopg.Error as exc:  # needs superuser or pg_checkpoint on a shared server
        log(f"CHECKPOINT skipped: {exc}")


def tidy(db: Database, why: str) -> None:
    """Put the table back to the seed: drop created rows and the delete pool, then vacuum."""
    began = time.monotonic()
    created = db.execute("DELETE FROM tasks WHERE id > %(floor)s", {"floor": CREATED_ID_FLOOR})
    pool = db.execute(
        "DELETE FROM tasks WHERE id > %(base)s AND id <= %(floor)s",
        {"base": POOL_ID_BASE, "floor": CREATED_ID_FLOOR},
    )
    # A schema from before issue 14 (todo_bench.compare's base) has no task_tags.
    has_tags = db.execute("SELECT to_regclass('task_tags') IS NOT NULL")[0][0]
    db.execute("VACUUM (ANALYZE) tasks, task_tags" if has_tags else "VACUUM (ANALYZE) tasks")
    log(
        f"tidied after {why}: {created} created and {pool} pool rows removed, vacuumed "
        f"({time.monotonic() - began:.1f}s)"
    )


def top_up_pool(db: Database, pool_size: int, *, plain: bool = False) -> None:
    seed_rows(
        db,
        prefix="gone",
        width=4,
        users=POOL_OWNERS,
        per_user=pool_size // POOL_OWNERS,
        id_base=POOL_ID_BASE,
        start="2025-03-01T00:00:00Z",
        step="1 day",
        skip_existing=True,
        plain=plain,
    )


def pool_remaining(db: Database, pool_size: int) -> int:
    rows = db.execute(
        "SELECT count(*) FROM tasks WHERE id > %(base)s AND id <= %(top)s",
        {"base": POOL_ID_BASE, "top": POOL_ID_BASE + pool_size},
    )
    remaining: int = rows[0][0]
    return remaining
