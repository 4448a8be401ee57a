"""The benchmark of issue 4: `make bench` (or `.venv/bin/python bench/run.py`).

One command, on one machine:

1. Starts a private PostgreSQL cluster (initdb in a temporary directory, a free port, fsync on),
   or uses `BENCH_DATABASE_URL`, and applies the Alembic migrations.
2. Seeds 10,000 users with 100 tasks each plus one `heavy` user with 10,000 tasks, in SQL.
3. Starts the API as production runs it (`python -m todo_api`, LOG_LEVEL=warning).
4. Drives every endpoint with wrk (bench/wrk/*.lua) at 1, 16, 64 and 256 connections, and runs
   the same statements with pgbench (bench/pgbench/*.sql, `-M prepared`) at 1, 16 and 64
   clients: the ceiling.
5. Checks that a list's first page costs the same on 1,000 or 1,000,000 rows and for 100 or
   10,000 tasks, profiles the list and read endpoints with py-spy, reads each worker's RSS.
6. Prints the report and writes it between the markers in docs/benchmarks.md.

Everything it starts (cluster, API, wrk, pgbench, py-spy) is stopped on the way out, also on
failure or Ctrl-C. Raw outputs go to bench/out/.
"""

import argparse
import contextlib
import json
import os
import platform
import pwd
import re
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import psycopg

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
WRK_DIR = BENCH / "wrk"
PGBENCH_DIR = BENCH / "pgbench"
DEFAULT_OUT = BENCH / "out"
DOC = ROOT / "docs" / "benchmarks.md"
BEGIN_MARK = "<!-- bench:begin (written by bench/run.py; edits between the markers are lost) -->"
END_MARK = "<!-- bench:end -->"

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

ENDPOINTS = ("list", "read", "create", "replace", "toggle", "delete")
ENDPOINT_LABELS = {
    "list": "list (GET, default page)",
    "read": "read one (GET)",
    "create": "create (POST)",
    "replace": "replace (PUT)",
    "toggle": "toggle (PATCH /complete)",
    "delete": "delete (DELETE)",
}
APP_CONNECTIONS = (1, 16, 64, 256)
PG_CLIENTS = (1, 16, 64)
PROTOCOL_ENDPOINTS = ("list", "read", "toggle")

# The targets of issue 4.
TARGET_RATIO = 0.10
TARGET_P99_MS = 50.0
TARGET_SCALE = 0.25
TARGET_RSS_MB = 120.0
TARGET_TOTAL_S = 600.0

WRK_TIMEOUT_S = 10
API_READY_TIMEOUT_S = 60

LOREM = (
    "Check the receipts first, then compare them with the statement from last month. "
    "If anything is missing, call the shop before Friday and ask for a copy. Keep the "
    "reference number somewhere safe; the last time it took three calls to sort out. "
    "Bring the blue folder, the spare keys and the charger. Ask Sam whether the meeting "
    "moved to Thursday, and book the small room if it did. Notes from the call go in the "
    "shared document under this week's heading."
)

SERVER_SETTINGS = {
    "listen_addresses": "'127.0.0.1'",
    "max_connections": "300",
    "shared_buffers": "512MB",
    "effective_cache_size": "4GB",
    "work_mem": "8MB",
    "maintenance_work_mem": "256MB",
    "wal_buffers": "16MB",
    "max_wal_size": "4GB",
    "min_wal_size": "1GB",
    "checkpoint_timeout": "15min",
    "checkpoint_completion_target": "0.9",
    "random_page_cost": "1.1",
    "fsync": "on",
    "synchronous_commit": "on",
    "full_page_writes": "on",
}

_started = time.monotonic()


def log(message: str) -> None:
    print(f"[{time.monotonic() - _started:6.1f}s] {message}", file=sys.stderr, flush=True)


class BenchError(RuntimeError):
    """A step failed; the message says which and where its output is."""


def _on_signal(signum: int, _frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def run(
    command: Sequence[str | Path],
    *,
    timeout: float,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
    output: Path | None = None,
) -> str:
    """Run a command to completion (bounded), keep its output, fail loudly on a non-zero exit."""
    argv = [str(part) for part in command]
    try:
        done = subprocess.run(
            argv,
            cwd=cwd,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise BenchError(f"timed out after {timeout:.0f}s: {' '.join(argv)}") from exc
    text = done.stdout + done.stderr
    if output is not None:
        output.write_text(f"$ {' '.join(argv)}\n{text}")
    if done.returncode != 0:
        where = f" (output in {output})" if output else f":\n{text[-3000:]}"
        raise BenchError(f"exit {done.returncode}: {' '.join(argv)}{where}")
    return text


# --------------------------------------------------------------------------------------------
# Processes: CPU time and memory from /proc


def _children_map() -> dict[int, list[int]]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    return children


def process_tree(root: int) -> list[int]:
    children = _children_map()
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(children.get(pid, []))
    return found


def kernel_ticks(pids: Sequence[int]) -> dict[int, int]:
    """stime alone: the part of a process's CPU spent in the kernel (socket I/O, wake-ups)."""
    ticks = {}
    for pid in pids:
        with contextlib.suppress(OSError):
            ticks[pid] = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[12])
    return ticks


def cpu_ticks(pids: Sequence[int], reaper: int | None = None) -> dict[int, int]:
    """utime + stime of each process; with `reaper`, also the CPU of its exited children.

    A PostgreSQL backend that starts and exits within a cell (pgbench's) is gone before the
    second reading; the postmaster reaps it, and its CPU shows up in the postmaster's cutime
    and cstime, kept here under the key -reaper.
    """
    ticks = {}
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        ticks[pid] = int(fields[11]) + int(fields[12])  # utime + stime
        if pid == reaper:
            ticks[-pid] = int(fields[13]) + int(fields[14])  # cutime + cstime
    return ticks


def cpu_seconds_between(before: dict[int, int], after: dict[int, int]) -> float:
    grown = sum(value - before.get(pid, 0) for pid, value in after.items())
    # A process that existed before and was reaped since is counted in full in its parent's
    # cutime; take off what it had already used before.
    gone = sum(value for pid, value in before.items() if pid > 0 and pid not in after)
    return (grown - gone) / os.sysconf("SC_CLK_TCK")


def machine_ticks() -> tuple[int, int]:
    """(busy, total) jiffies of all CPUs; iowait counts as idle."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + values[4]
    total = sum(values[:8])
    return total - idle, total


def rss_mb(pid: int) -> float | None:
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return None


def cmdline(pid: int) -> str:
    with contextlib.suppress(OSError):
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
    return ""


# --------------------------------------------------------------------------------------------
# PostgreSQL


def libpq_url(url: str) -> str:
    """The URL without any SQLAlchemy `+driver`, so that psql, pgbench and psycopg accept it."""
    return re.sub(r"^(postgres(?:ql)?)\+[^:/]+://", r"\1://", url.strip())


def with_search_path(url: str, schema: str) -> str:
    separator = "&" if "?" in url else "?"
    return f"{url}{separator}options=-csearch_path%3D{schema}"


def find_pg_bin() -> Path:
    configured = os.environ.get("BENCH_PG_BIN")
    if configured:
        return Path(configured)
    candidates = sorted(
        Path("/usr/lib/postgresql").glob("*/bin"), key=lambda p: int(p.parent.name), reverse=True
    )
    for candidate in candidates:
        if (candidate / "pgbench").exists():
            return candidate
    found = shutil.which("pgbench")
    if found:
        return Path(found).parent
    raise BenchError("no PostgreSQL binaries: set BENCH_PG_BIN to the directory with pgbench")


class PrivateCluster:
    """A throwaway cluster: initdb into a temporary directory, owned by the `postgres` user."""

    def __init__(self, pg_bin: Path, out: Path) -> None:
        self.pg_bin = pg_bin
        self.out = out
        self.tmp: Path | None = None
        self.port = free_port()
        self.started = False

    @property
    def data(self) -> Path:
        assert self.tmp is not None
        return self.tmp / "data"

    def _as_owner(self, *command: str | Path) -> list[str | Path]:
        if os.geteuid() == 0:
            return ["runuser", "-u", "postgres", "--", *command]
        return list(command)

    def start(self) -> str:
        self.tmp = Path(tempfile.mkdtemp(prefix="todo-bench-pg-"))
        if os.geteuid() == 0:
            owner = pwd.getpwnam("postgres")
            os.chown(self.tmp, owner.pw_uid, owner.pw_gid)
        log(f"initdb in {self.tmp}, port {self.port}")
        run(
            self._as_owner(
                self.pg_bin / "initdb",
                "-D",
                self.data,
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
                "--locale=C.UTF-8",
            ),
            timeout=120,
            output=self.out / "initdb.txt",
        )
        settings = {**SERVER_SETTINGS, "port": str(self.port)}
        settings["unix_socket_directories"] = f"'{self.tmp}'"
        conf = "".join(f"{name} = {value}\n" for name, value in settings.items())
        with (self.data / "postgresql.conf").open("a") as handle:
            handle.write("\n# bench/run.py\n" + conf)
        run(
            self._as_owner(
                self.pg_bin / "pg_ctl",
                "-D",
                self.data,
                "-l",
                self.tmp / "server.log",
                "-w",
                "-t",
                "60",
                "start",
            ),
            timeout=90,
            output=self.out / "pg_ctl-start.txt",
        )
        self.started = True
        admin = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"
        with psycopg.connect(admin, autocommit=True) as connection:
            connection.execute("CREATE DATABASE bench")
        return f"postgresql://postgres@127.0.0.1:{self.port}/bench"

    def postmaster_pid(self) -> int | None:
        with contextlib.suppress(OSError, ValueError, IndexError):
            return int((self.data / "postmaster.pid").read_text().split("\n", 1)[0])
        return None

    def stop(self) -> None:
        if self.tmp is None:
            return
        if self.started:
            log("stopping the private PostgreSQL")
            try:
                run(
                    self._as_owner(
                        self.pg_bin / "pg_ctl",
                        "-D",
                        self.data,
                        "-m",
                        "fast",
                        "-w",
                        "-t",
                        "60",
                        "stop",
                    ),
                    timeout=90,
                )
            except BenchError as exc:
                log(f"pg_ctl stop failed ({exc}); killing the postmaster")
                pid = self.postmaster_pid()
                if pid is not None:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGQUIT)
                    time.sleep(2)
            with contextlib.suppress(OSError):
                shutil.copy(self.tmp / "server.log", self.out / "postgresql.log")
        shutil.rmtree(self.tmp, ignore_errors=True)
        self.tmp = None


@dataclass
class Database:
    url: str  # libpq form
    cluster: PrivateCluster | None

    def connect(self, url: str | None = None) -> psycopg.Connection[Any]:
        return psycopg.connect(url or self.url, autocommit=True, connect_timeout=10)

    def execute(
        self, sql: str, params: dict[str, Any] | None = None, url: str | None = None
    ) -> Any:
        with self.connect(url) as connection:
            cursor = connection.execute(sql, params)
            return cursor.fetchall() if cursor.description else cursor.rowcount

    def server_pids(self) -> list[int]:
        if self.cluster is None:
            return []
        pid = self.cluster.postmaster_pid()
        return process_tree(pid) if pid else []

    def server_ticks(self) -> dict[int, int]:
        reaper = self.cluster.postmaster_pid() if self.cluster else None
        return cpu_ticks(self.server_pids(), reaper)

    def active_queries(self) -> int:
        rows = self.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE state <> 'idle' "
            "AND backend_type = 'client backend' AND pid <> pg_backend_pid() "
            "AND datname = current_database()"
        )
        count: int = rows[0][0]
        return count


SEED_SQL = """
WITH g AS (
    SELECT n, mod(n - 1, %(users)s) + 1 AS u, (n - 1) / %(users)s AS k
    FROM generate_series(%(first)s::bigint, %(last)s::bigint) AS n
), r AS (
    SELECT n, u, k,
           mod(n * 7 + k, 100) < 35 AS done,
           mod(n * 17, 72) * interval '1 hour' AS age,
           %(start)s::timestamptz + k * %(step)s::interval
               + mod(u * 127, 86400) * interval '1 second' AS created
    FROM g
)
INSERT INTO tasks (id, user_id, title, description, completed, completed_at, created_at,
                   updated_at)
SELECT %(id_base)s::bigint + n,
       %(prefix)s || lpad(u::text, %(width)s, '0'),
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
                   ELSE '' END,
       CASE WHEN mod(n, 10) < 3 THEN NULL ELSE left(%(lorem)s, 20 + mod(n * 31, 380)::int) END,
       done,
       CASE WHEN done THEN created + age END,
       created,
       created + age
FROM r
"""


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
) -> int:
    """Insert users * per_user tasks: task k (from 0) of user u gets id id_base + k*users + u."""
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
    }
    sql = SEED_SQL + (" ON CONFLICT (id) DO NOTHING" if skip_existing else "")
    inserted: int = db.execute(sql, params, url=url)
    return inserted


def migrate(url: str, out: Path, name: str) -> None:
    env = {**os.environ, "DATABASE_URL": url}
    alembic = Path(sys.executable).with_name("alembic")
    run([alembic, "upgrade", "head"], cwd=ROOT, env=env, timeout=120, output=out / name)


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
        db.execute("TRUNCATE tasks RESTART IDENTITY")
    db.execute("TRUNCATE tasks RESTART IDENTITY", url=small_url)

    began = time.monotonic()
    log(f"seeding {USERS:,} users x {TASKS_PER_USER} tasks")
    seed_rows(
        db,
        prefix="user",
        width=5,
        users=USERS,
        per_user=TASKS_PER_USER,
        id_base=0,
        start="2025-01-01T00:00:00Z",
        step="3 days",
    )
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
    seed_rows(
        db,
        prefix="user",
        width=5,
        users=SMALL_USERS,
        per_user=TASKS_PER_USER,
        id_base=0,
        start="2025-01-01T00:00:00Z",
        step="3 days",
        url=small_url,
    )
    for url in (db.url, small_url):
        db.execute(
            "SELECT setval(pg_get_serial_sequence('tasks', 'id'), %(floor)s)",
            {"floor": CREATED_ID_FLOOR},
            url=url,
        )
    timings["seed_s"] = time.monotonic() - began
    began = time.monotonic()
    log("VACUUM (ANALYZE) and CHECKPOINT")
    db.execute("VACUUM (ANALYZE) tasks")
    db.execute("VACUUM (ANALYZE) tasks", url=small_url)
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
    db.execute("VACUUM (ANALYZE) tasks")
    log(
        f"tidied after {why}: {created} created and {pool} pool rows removed, vacuumed "
        f"({time.monotonic() - began:.1f}s)"
    )


def top_up_pool(db: Database, pool_size: int) -> None:
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
    )


def pool_remaining(db: Database, pool_size: int) -> int:
    rows = db.execute(
        "SELECT count(*) FROM tasks WHERE id > %(base)s AND id <= %(top)s",
        {"base": POOL_ID_BASE, "top": POOL_ID_BASE + pool_size},
    )
    remaining: int = rows[0][0]
    return remaining


# --------------------------------------------------------------------------------------------
# The API under test


class Api:
    """`python -m todo_api` in its own session, so that it and its workers stop together."""

    def __init__(self, name: str, database_url: str, out: Path) -> None:
        self.name = name
        self.database_url = database_url
        self.port = free_port()
        self.log_path = out / f"api-{name}.log"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        env = {
            **os.environ,
            "DATABASE_URL": self.database_url,
            "HOST": "127.0.0.1",
            "PORT": str(self.port),
            "LOG_LEVEL": "warning",
        }
        env.pop("CORS_ORIGINS", None)
        # Production runs one worker per core (`make serve`); BENCH_WORKERS overrides that.
        env["WORKERS"] = os.environ.get("BENCH_WORKERS") or str(os.cpu_count() or 1)
        log(f"starting the API ({self.name}) on {self.base}")
        with self.log_path.open("wb") as handle:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "todo_api"],
                cwd=ROOT,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=handle,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + API_READY_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise BenchError(
                    f"the API exited with {self.process.returncode}; see {self.log_path}"
                )
            with (
                contextlib.suppress(OSError, urllib.error.URLError),
                urllib.request.urlopen(f"{self.base}/health/ready", timeout=2) as response,
            ):
                if response.status == 200:
                    time.sleep(0.5)  # let every worker finish starting
                    return
            time.sleep(0.2)
        raise BenchError(f"the API was not ready within {API_READY_TIMEOUT_S}s")

    def pids(self) -> list[int]:
        return process_tree(self.process.pid) if self.process else []

    def workers(self) -> list[int]:
        """The processes that serve requests: uvicorn's spawned workers, or the one process."""
        if self.process is None:
            return []
        spawned = [pid for pid in self.pids() if "spawn_main" in cmdline(pid)]
        return spawned or [self.process.pid]

    def log_count(self, pattern: str) -> int:
        with contextlib.suppress(OSError):
            return len(re.findall(pattern, self.log_path.read_text(errors="replace")))
        return 0

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        log(f"stopping the API ({self.name})")
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)


# --------------------------------------------------------------------------------------------
# Load: wrk against the API, pgbench against the database


@dataclass
class Cpu:
    """CPU seconds used by each party during one cell, and how busy the machine was."""

    app_s: float = 0.0
    app_kernel_s: float = 0.0
    db_s: float = 0.0
    client_s: float = 0.0
    machine_busy: float = 0.0  # fraction of all cores
    busy_s: float = 0.0  # core-seconds the whole machine was busy
    seconds: float = 0.0

    @property
    def foreign_cores(self) -> float:
        """Cores used by processes outside the benchmark (others' work on a shared machine)."""
        own = self.app_s + self.db_s + self.client_s
        return max(self.busy_s - own, 0.0) / self.seconds if self.seconds else 0.0


@contextlib.contextmanager
def measure_cpu(api: Api | None, db: Database) -> Iterator[Cpu]:
    cpu = Cpu()
    app_before = cpu_ticks(api.pids()) if api else {}
    app_kernel_before = kernel_ticks(api.pids()) if api else {}
    db_before = db.server_ticks()
    child_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    busy_before, total_before = machine_ticks()
    began = time.monotonic()
    yield cpu
    cpu.seconds = time.monotonic() - began
    busy_after, total_after = machine_ticks()
    cpu.busy_s = (busy_after - busy_before) / os.sysconf("SC_CLK_TCK")
    child_after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu.app_s = cpu_seconds_between(app_before, cpu_ticks(api.pids())) if api else 0.0
    if api:
        cpu.app_kernel_s = cpu_seconds_between(app_kernel_before, kernel_ticks(api.pids()))
    cpu.db_s = cpu_seconds_between(db_before, db.server_ticks())
    cpu.client_s = (child_after.ru_utime - child_before.ru_utime) + (
        child_after.ru_stime - child_before.ru_stime
    )
    cpu.machine_busy = (busy_after - busy_before) / max(total_after - total_before, 1)


def settle(api: Api, db: Database, limit_s: float = 30.0) -> None:
    """Wait until the API has finished what wrk left in flight (bounded).

    wrk stops sending at the end of a cell, but the requests it already sent are still served;
    a write among them could land in the next step (a delete after the pool was refilled).
    """
    deadline = time.monotonic() + limit_s
    quiet = 0
    while time.monotonic() < deadline and quiet < 2:
        before = cpu_ticks(api.pids())
        time.sleep(0.2)
        busy = cpu_seconds_between(before, cpu_ticks(api.pids()))
        quiet = quiet + 1 if busy < 0.02 and db.active_queries() == 0 else 0
    if quiet < 2:
        log(f"the API was still busy {limit_s:.0f}s after wrk stopped; going on")


@dataclass
class WrkResult:
    label: str
    connections: int
    requests: int
    seconds: float
    p50_ms: float
    p99_ms: float
    mean_ms: float
    max_ms: float
    errors: dict[str, int]
    statuses: dict[int, int]
    cpu: Cpu

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    @property
    def error_count(self) -> int:
        return sum(self.errors.values())


def wrk(
    api: Api,
    db: Database,
    script: str,
    connections: int,
    seconds: float,
    out: Path,
    label: str,
    script_args: Sequence[str | int] = (),
) -> WrkResult:
    threads = 1 if connections == 1 else 2
    command = [
        "wrk",
        "-t",
        str(threads),
        "-c",
        str(connections),
        "-d",
        f"{seconds:g}s",
        "--timeout",
        f"{WRK_TIMEOUT_S}s",
        "--latency",
        "-s",
        f"{script}.lua",
        api.base,
    ]
    if script_args:
        command += ["--", *(str(arg) for arg in script_args)]
    with measure_cpu(api, db) as cpu:
        text = run(command, cwd=WRK_DIR, timeout=seconds + 60, output=out / f"wrk-{label}.txt")
    settle(api, db)
    found = re.search(r"^BENCH_JSON (\{.*\})$", text, re.MULTILINE)
    if found is None:
        raise BenchError(f"no BENCH_JSON line from wrk; see {out / f'wrk-{label}.txt'}")
    data = json.loads(found.group(1))
    return WrkResult(
        label=label,
        connections=connections,
        requests=data["requests"],
        seconds=data["duration_us"] / 1e6,
        p50_ms=data["p50_us"] / 1000,
        p99_ms=data["p99_us"] / 1000,
        mean_ms=data["mean_us"] / 1000,
        max_ms=data["max_us"] / 1000,
        errors=data["errors"],
        statuses={int(code): count for code, count in data["statuses"].items()},
        cpu=cpu,
    )


@dataclass
class PgResult:
    label: str
    clients: int
    transactions: int
    tps: float
    latency_ms: float
    failed: int
    cpu: Cpu
    misses: int = 0


def pgbench(
    db: Database,
    pg_bin: Path,
    script: Path,
    clients: int,
    seconds: float,
    out: Path,
    label: str,
    defines: dict[str, int] | None = None,
    url: str | None = None,
    api: Api | None = None,
) -> PgResult:
    command: list[str | Path] = [
        pg_bin / "pgbench",
        "-n",
        "-M",
        "prepared",
        "-c",
        str(clients),
        "-j",
        str(min(2, clients)),
        "-T",
        f"{seconds:g}",
        "-f",
        script,
    ]
    for name, value in (defines or {}).items():
        command += ["-D", f"{name}={value}"]
    command.append(url or db.url)
    with measure_cpu(api, db) as cpu:
        text = run(command, timeout=seconds + 60, output=out / f"pgbench-{label}.txt")

    def number(pattern: str, default: float | None = None) -> float:
        found = re.search(pattern, text)
        if found is None:
            if default is not None:
                return default
            raise BenchError(f"pgbench output lacks {pattern!r}; see {out}/pgbench-{label}.txt")
        return float(found.group(1))

    return PgResult(
        label=label,
        clients=clients,
        transactions=int(number(r"number of transactions actually processed: (\d+)")),
        tps=number(r"tps = ([\d.]+) \(without initial connection time\)"),
        latency_ms=number(r"latency average = ([\d.]+) ms"),
        failed=int(number(r"number of failed transactions: (\d+)", 0)),
        cpu=cpu,
    )


def protocol_script(endpoint: str, out: Path) -> Path:
    """The endpoint's statement wrapped as the app sends it: pre-ping, BEGIN, it, end."""
    body = (PGBENCH_DIR / f"{endpoint}.sql").read_text()
    meta = [line for line in body.splitlines() if line.startswith("\\")]
    statement = [line for line in body.splitlines() if line and not line.startswith(("\\", "--"))]
    end = "ROLLBACK;" if endpoint in {"list", "read"} else "COMMIT;"
    script = out / f"protocol-{endpoint}.sql"
    script.write_text("\n".join([*meta, "SELECT 1;", "BEGIN;", *statement, end]) + "\n")
    return script


# --------------------------------------------------------------------------------------------
# The profile


# A sample belongs to the first phase whose marker appears anywhere in its stack...
PROFILE_PHASES: tuple[tuple[str, Sequence[str]], ...] = (
    ("row -> Task (SQLModel model_validate)", ("_to_task (todo_api/db/tasks.py",)),
    (
        "response_model validation + serialization",
        ("serialize_response (fastapi/routing.py", "jsonable_encoder (fastapi/encoders.py"),
    ),
    ("JSON encoding of the response", ("render (starlette/responses.py",)),
    (
        "opening/closing DB connections (pool overflow)",
        ("_connect_gen (psycopg", "AsyncConnection.connect (psycopg", "close (psycopg/"),
    ),
    ("pool: checkout, pre-ping, reset", ("sqlalchemy/pool/",)),
    (
        "SQLAlchemy result rows + type processing",
        ("sqlalchemy/engine/cursor.py", "sqlalchemy/engine/result.py", "sqlalchemy/engine/row"),
    ),
    ("psycopg (driver, protocol, waiting)", ("psycopg/", "psycopg_binary/")),
    (
        "SQLAlchemy statement build + compile/cache",
        ("sqlalchemy/sql/", "list_tasks (todo_api/db/tasks.py", "_one_task (todo_api"),
    ),
    ("SQLAlchemy execute, connection, transaction, greenlet", ("sqlalchemy/",)),
    ("sync dependency run in the thread pool (anyio)", ("anyio/", "run_in_threadpool")),
    (
        "request parsing + validation (path, query, body)",
        ("request_body_to_args", "_validate_value_with_model", "request_params_to_args"),
    ),
)
# ...otherwise to the area of the deepest frame that has one.
PROFILE_AREAS: tuple[tuple[str, Sequence[str]], ...] = (
    ("logging", ("logging/__init__.py",)),
    (
        "app middleware (request log, headers, limits, proxies, HEAD, errors)",
        ("todo_api/api/middleware/",),
    ),
    ("FastAPI/Starlette: routing, dependencies, responses", ("fastapi/", "starlette/")),
    ("uvicorn + httptools (HTTP protocol)", ("uvicorn/", "httptools")),
    ("other app code", ("todo_api/",)),
    ("asyncio event loop", ("asyncio/", "uvloop", "selectors.py")),
)
NATIVE = "native code with no Python frame (event loop, I/O)"
IDLE_MARKERS = ("Queue.get (queue.py", "Condition.wait (threading.py", "Event.wait (threading.py")


def _frames(stack: str) -> list[str]:
    # py-spy --subprocesses puts a `process PID:"cmdline"` frame first; a spawned worker's
    # command line has semicolons of its own.
    stack = re.sub(r'^(process \d+:"[^"]*"(;|$))+', "", stack)
    return [frame for frame in stack.split(";") if frame]


def categorize_stack(frames: Sequence[str]) -> str:
    joined = ";".join(frames)
    for name, markers in PROFILE_PHASES:
        if any(marker in joined for marker in markers):
            return name
    for frame in reversed(frames):
        for name, markers in PROFILE_AREAS:
            if any(marker in frame for marker in markers):
                return name
    return NATIVE if not frames else "other"


def categorize_profile(
    raw: Path,
) -> tuple[list[tuple[str, float]], list[tuple[str, float]], int, int]:
    """Shares of busy samples by category, top functions by self time, busy and idle samples.

    Thread-pool threads that sleep waiting for work are idle, not CPU: their samples are
    counted apart.
    """
    by_category: Counter[str] = Counter()
    by_leaf: Counter[str] = Counter()
    busy = idle = 0
    for line in raw.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not count_text.isdigit():
            continue
        count = int(count_text)
        frames = _frames(stack)
        if frames and any(marker in frames[-1] for marker in IDLE_MARKERS):
            idle += count
            continue
        busy += count
        by_category[categorize_stack(frames)] += count
        leaf = re.sub(r":\d+\)$", ")", frames[-1]) if frames else NATIVE
        by_leaf[leaf] += count
    if busy == 0:
        return [], [], 0, idle
    shares = [(name, count / busy) for name, count in by_category.most_common()]
    leaves = [(name, count / busy) for name, count in by_leaf.most_common(12)]
    return shares, leaves, busy, idle


@dataclass
class Profile:
    endpoint: str
    samples: int
    idle_samples: int
    requests: int
    app_cpu_s: float
    seconds: float
    shares: list[tuple[str, float]]
    leaves: list[tuple[str, float]]

    @property
    def cpu_us_per_request(self) -> float:
        return self.app_cpu_s / self.requests * 1e6 if self.requests else 0.0


def profile_endpoint(api: Api, db: Database, endpoint: str, seconds: float, out: Path) -> Profile:
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    raw = out / f"profile-{endpoint}.txt"
    script_args: list[str | int] = [USERS, "user"] if endpoint == "list" else []
    command = [
        "wrk",
        "-t",
        "2",
        "-c",
        "16",
        "-d",
        f"{seconds + 3:g}s",
        "--timeout",
        f"{WRK_TIMEOUT_S}s",
        "-s",
        f"{endpoint}.lua",
        api.base,
        "--",
        *[str(a) for a in script_args],
    ]
    with (out / f"wrk-profile-{endpoint}.txt").open("w") as handle:
        load = subprocess.Popen(command, cwd=WRK_DIR, stdout=handle, stderr=subprocess.STDOUT)
    try:
        time.sleep(1.5)
        app_before = cpu_ticks(api.pids())
        began = time.monotonic()
        run(
            [
                py_spy,
                "record",
                "--pid",
                str(api.process.pid if api.process else 0),
                "--subprocesses",
                "--duration",
                f"{seconds:g}",
                "--rate",
                "250",
                "--nonblocking",
                "--format",
                "raw",
                "--output",
                raw,
            ],
            timeout=seconds + 60,
            output=out / f"py-spy-{endpoint}.txt",
        )
        elapsed = time.monotonic() - began
        app_cpu = cpu_seconds_between(app_before, cpu_ticks(api.pids()))
        load.wait(timeout=seconds + 30)
    finally:
        if load.poll() is None:
            load.kill()
            load.wait(timeout=10)
    text = (out / f"wrk-profile-{endpoint}.txt").read_text()
    found = re.search(r"^BENCH_JSON (\{.*\})$", text, re.MULTILINE)
    rate = 0.0
    if found:
        data = json.loads(found.group(1))
        rate = data["requests"] / (data["duration_us"] / 1e6)
    shares, leaves, samples, idle = categorize_profile(raw)
    return Profile(
        endpoint=endpoint,
        samples=samples,
        idle_samples=idle,
        requests=int(rate * elapsed),
        app_cpu_s=app_cpu,
        seconds=elapsed,
        shares=shares,
        leaves=leaves,
    )


# --------------------------------------------------------------------------------------------
# The run


@dataclass
class Results:
    app: dict[tuple[str, int], WrkResult] = field(default_factory=dict)
    pg: dict[tuple[str, int], PgResult] = field(default_factory=dict)
    protocol: dict[str, PgResult] = field(default_factory=dict)
    scale_app: dict[str, WrkResult] = field(default_factory=dict)
    scale_pg: dict[str, PgResult] = field(default_factory=dict)
    plans: dict[str, str] = field(default_factory=dict)
    profiles: list[Profile] = field(default_factory=list)
    rss: list[tuple[int, str, float]] = field(default_factory=list)
    pool_timeouts: int = 0
    unavailable: int = 0
    server_errors: int = 0
    timings: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def wrk_args(endpoint: str, connections: int, pool_size: int) -> list[str | int]:
    if endpoint == "list":
        return [USERS, "user"]
    if endpoint == "delete":
        return [pool_size, 1 if connections == 1 else 2]
    return []


def bench_endpoint(
    endpoint: str,
    api: Api,
    db: Database,
    pg_bin: Path,
    args: argparse.Namespace,
    results: Results,
) -> None:
    out: Path = args.out
    pool_size: int = args.pool_size
    is_delete = endpoint == "delete"
    if is_delete:
        log(f"filling the delete pool ({pool_size:,} rows)")
        top_up_pool(db, pool_size)
    log(f"{endpoint}: warm-up {args.warmup:g}s at 64 connections")
    wrk(
        api,
        db,
        endpoint,
        64,
        args.warmup,
        out,
        f"{endpoint}-warmup",
        wrk_args(endpoint, 64, pool_size),
    )
    for connections in APP_CONNECTIONS:
        if is_delete:
            top_up_pool(db, pool_size)
        result = wrk(
            api,
            db,
            endpoint,
            connections,
            args.duration,
            out,
            f"{endpoint}-c{connections}",
            wrk_args(endpoint, connections, pool_size),
        )
        results.app[endpoint, connections] = result
        log(
            f"{endpoint} app c={connections}: {result.rps:,.0f} req/s, p50 {result.p50_ms:.1f} "
            f"ms, p99 {result.p99_ms:.1f} ms, errors {result.errors}"
        )
    for clients in PG_CLIENTS:
        defines: dict[str, int] = {}
        if endpoint == "list":
            defines = {"users": USERS}
        if is_delete:
            top_up_pool(db, pool_size)
            defines = {"n": 0, "slice": pool_size // clients}
        result_pg = pgbench(
            db,
            pg_bin,
            PGBENCH_DIR / f"{endpoint}.sql",
            clients,
            args.duration,
            out,
            f"{endpoint}-c{clients}",
            defines,
            api=api,
        )
        if is_delete:
            deleted = pool_size - pool_remaining(db, pool_size)
            result_pg.misses = max(result_pg.transactions - deleted, 0)
        results.pg[endpoint, clients] = result_pg
        log(
            f"{endpoint} pgbench c={clients}: {result_pg.tps:,.0f} tps, "
            f"{result_pg.latency_ms:.2f} ms"
        )
    if endpoint in PROTOCOL_ENDPOINTS:
        defines = {"users": USERS} if endpoint == "list" else {}
        results.protocol[endpoint] = pgbench(
            db,
            pg_bin,
            protocol_script(endpoint, out),
            16,
            args.duration,
            out,
            f"protocol-{endpoint}-c16",
            defines,
            api=api,
        )
    if endpoint in {"create", "replace", "toggle", "delete"}:
        tidy(db, endpoint)


def scale_check(
    api: Api, db: Database, pg_bin: Path, args: argparse.Namespace, results: Results
) -> None:
    out: Path = args.out
    small_url = with_search_path(db.url, SMALL_SCHEMA)
    small = Api("small", small_url, out)
    try:
        small.start()
        wrk(small, db, "list", 16, args.warmup, out, "scale-warmup-1k", [SMALL_USERS, "user"])
        results.scale_app["1k rows, 100-task user"] = wrk(
            small, db, "list", 1, args.duration, out, "scale-1k", [SMALL_USERS, "user"]
        )
    finally:
        small.stop()
    wrk(api, db, "list", 16, args.warmup, out, "scale-warmup-heavy", [0, HEAVY_USER])
    results.scale_app["1M rows, 100-task user"] = wrk(
        api, db, "list", 1, args.duration, out, "scale-1m", [USERS, "user"]
    )
    results.scale_app["1M rows, 10,000-task user"] = wrk(
        api, db, "list", 1, args.duration, out, "scale-heavy", [0, HEAVY_USER]
    )
    list_sql = PGBENCH_DIR / "list.sql"
    results.scale_pg["1k rows, 100-task user"] = pgbench(
        db,
        pg_bin,
        list_sql,
        1,
        args.duration,
        out,
        "scale-1k",
        {"users": SMALL_USERS},
        url=small_url,
    )
    results.scale_pg["1M rows, 100-task user"] = pgbench(
        db, pg_bin, list_sql, 1, args.duration, out, "scale-1m", {"users": USERS}
    )
    results.scale_pg["1M rows, 10,000-task user"] = pgbench(
        db, pg_bin, PGBENCH_DIR / "list_heavy.sql", 1, args.duration, out, "scale-heavy"
    )
    for key, result in results.scale_app.items():
        log(
            f"scale {key}: app p50 {result.p50_ms:.2f} ms, mean {result.mean_ms:.2f} ms, "
            f"pgbench {results.scale_pg[key].latency_ms:.3f} ms"
        )


LIST_SQL = (
    "SELECT tasks.title, tasks.description, tasks.completed, tasks.id, tasks.user_id, "
    "tasks.completed_at, tasks.created_at, tasks.updated_at, (SELECT count(*) AS count_1 "
    "FROM tasks WHERE tasks.user_id = $1::VARCHAR) AS total FROM tasks "
    "WHERE tasks.user_id = $1::VARCHAR ORDER BY tasks.created_at DESC, tasks.id DESC "
    "LIMIT $2::INTEGER OFFSET $3::INTEGER"
)


def explain_plans(db: Database, results: Results) -> None:
    """EXPLAIN (ANALYZE, BUFFERS) of the list statement, as a custom and as a generic plan."""
    cases = [
        ("1M rows, 10,000-task user, custom plan", HEAVY_USER, "auto"),
        ("1M rows, 10,000-task user, generic plan", HEAVY_USER, "force_generic_plan"),
        ("1M rows, 100-task user, custom plan", "user04242", "auto"),
    ]
    with db.connect() as connection:
        connection.execute(f"PREPARE bench_list AS {LIST_SQL}")
        for title, owner, mode in cases:
            connection.execute(f"SET plan_cache_mode = {mode}")
            for _ in range(2):  # the second run shows the warm-cache timing
                rows = connection.execute(
                    f"EXPLAIN (ANALYZE, BUFFERS) EXECUTE bench_list('{owner}', 100, 0)"
                ).fetchall()
            results.plans[title] = "\n".join(row[0] for row in rows)
        connection.execute("RESET plan_cache_mode")
        connection.execute("DEALLOCATE bench_list")


# --------------------------------------------------------------------------------------------
# The report


def _git(*command: str) -> str:
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        done = subprocess.run(
            ["git", *command], cwd=ROOT, capture_output=True, text=True, timeout=10, check=False
        )
        return done.stdout.strip() if done.returncode == 0 else ""
    return ""


def machine_description(db: Database) -> list[str]:
    model = "unknown CPU"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    mem_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    version = db.execute("SELECT version()")[0][0]
    versions = ", ".join(
        f"{name} {metadata.version(name)}"
        for name in (
            "fastapi",
            "starlette",
            "pydantic",
            "sqlmodel",
            "sqlalchemy",
            "psycopg",
            "uvicorn",
        )
    )
    wrk_version = subprocess.run(
        ["wrk", "--version"], capture_output=True, text=True, timeout=10, check=False
    ).stdout.split(" Copyright")[0]
    commit = _git("rev-parse", "--short", "HEAD") or "unknown"
    dirty = subprocess.run(
        ["git", "diff-index", "--quiet", "HEAD", "--"], cwd=ROOT, check=False, timeout=10
    ).returncode
    where = "a private cluster started by the benchmark" if db.cluster else "BENCH_DATABASE_URL"
    return [
        f"- Date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC; commit `{commit}`"
        + (" with uncommitted changes in the working tree" if dirty else ""),
        f"- Machine: {os.cpu_count()} cores ({model}), {mem_gib:.0f} GiB memory, "
        f"{platform.system()} {platform.release()}; app, database and load generator share it",
        f"- Database: {version.split(',')[0]} ({where})"
        + (
            "; "
            + ", ".join(
                f"{k}={v.strip(chr(39))}"
                for k, v in SERVER_SETTINGS.items()
                if k != "listen_addresses"
            )
            if db.cluster
            else ""
        ),
        f"- Python {platform.python_version()}; {versions}; load generator {wrk_version}",
    ]


NOISY_CORES = 0.25
NOISY_MARK = "†"


def _noisy(cpu: Cpu) -> str:
    return NOISY_MARK if cpu.foreign_cores > NOISY_CORES else ""


def _rate(result: WrkResult | PgResult | None) -> str:
    if result is None:
        return "-"
    value = result.rps if isinstance(result, WrkResult) else result.tps
    return f"{value:,.0f}{_noisy(result.cpu)}"


def app_settings_summary() -> str:
    """The API's engine settings as they default (the benchmark sets none of them)."""
    try:
        from todo_api.settings import Settings

        settings = Settings(_env_file=None)
    except Exception as exc:
        return f"(unreadable: {exc})"
    names = (
        "db_pool_size",
        "db_max_overflow",
        "db_pool_timeout",
        "db_statement_timeout_ms",
        "db_pool_recycle",
    )
    values = [
        f"{name.upper()}={getattr(settings, name)}" for name in names if hasattr(settings, name)
    ]
    return "(" + ", ".join(values) + ")" if values else "(pool 10 + 10 overflow)"


def _ms(value: float) -> str:
    return f"{value:.1f}" if value < 100 else f"{value:.0f}"


def _mark(ok: bool) -> str:
    return "PASS" if ok else "**FAIL**"


def _within(a: float, b: float) -> float:
    return abs(a / b - 1) if b else float("inf")


def target_summary(results: Results, total_s: float) -> list[str]:
    """One line per target of issue 4: how many endpoints meet it."""
    endpoints = [e for e in ENDPOINTS if (e, 16) in results.app and (e, 16) in results.pg]
    ratio_ok = [
        e for e in endpoints if results.app[e, 16].rps >= TARGET_RATIO * results.pg[e, 16].tps
    ]
    p99_ok = [e for e in endpoints if results.app[e, 64].p99_ms < TARGET_P99_MS]
    clean = [
        e for e in endpoints if (e, 256) in results.app and not results.app[e, 256].error_count
    ]
    reference = results.scale_app.get("1M rows, 100-task user")
    scale = [
        f"{key}: {_mark(_within(r.p50_ms, reference.p50_ms) <= TARGET_SCALE)}"
        for key, r in results.scale_app.items()
        if reference is not None and r is not reference
    ]
    rss = [mb for _, _, mb in results.rss]

    def names(ok: list[str]) -> str:
        missing = [e for e in endpoints if e not in ok]
        return f"{len(ok)}/{len(endpoints)}" + (f" (not: {', '.join(missing)})" if missing else "")

    lines = [
        "",
        "### Targets",
        "",
        f"- Throughput >= {TARGET_RATIO:.0%} of the pgbench ceiling at 16 connections: "
        f"{names(ratio_ok)} endpoints",
        f"- p99 < {TARGET_P99_MS:.0f} ms at 64 connections: {names(p99_ok)} endpoints",
        f"- No errors and no pool timeouts at 256 connections: {names(clean)} endpoints",
        "- First page of a list as fast (within 25%) as for a 100-task user on 1M rows: "
        + ("; ".join(scale) if scale else "not run"),
        f"- Resident memory per worker < {TARGET_RSS_MB:.0f} MB: "
        + (f"{_mark(max(rss) < TARGET_RSS_MB)} (largest {max(rss):.0f} MB)" if rss else "not read"),
        f"- Whole command < {TARGET_TOTAL_S / 60:.0f} minutes: {_mark(total_s < TARGET_TOTAL_S)} "
        f"({total_s:.0f} s)",
        "",
    ]
    return lines


def render(results: Results, db: Database, args: argparse.Namespace, total_s: float) -> str:
    lines: list[str] = []
    add = lines.append
    d = f"{args.duration:g}"
    add("## Results (generated)")
    add("")
    lines += machine_description(db)
    workers = results.rss
    add(
        f"- API: `python -m todo_api`, LOG_LEVEL=warning, WORKERS={len(workers)} (one per core, "
        f"as `make serve`), engine defaults {app_settings_summary()}; each cell runs {d} s "
        f"after a {args.warmup:g} s warm-up at 64 connections"
    )
    add(
        f"- Data: {USERS:,} users x {TASKS_PER_USER} tasks + user `{HEAVY_USER}` with "
        f"{HEAVY_TASKS:,} tasks ({USERS * TASKS_PER_USER + HEAVY_TASKS:,} rows); rows created "
        "or deleted by a cell are put back after its endpoint, then VACUUM (ANALYZE)"
    )
    add(
        f"- Whole command: {total_s:.0f} s (target < {TARGET_TOTAL_S:.0f} s: "
        f"{_mark(total_s < TARGET_TOTAL_S)})"
    )
    cell_cpus = [r.cpu for r in results.app.values()] + [r.cpu for r in results.pg.values()]
    if cell_cpus:
        foreign = [cpu.foreign_cores for cpu in cell_cpus]
        add(
            f"- Other processes on the machine (not the API, PostgreSQL, wrk or pgbench) used "
            f"{sum(foreign) / len(foreign):.2f} cores on average during the cells, "
            f"{max(foreign):.2f} at most; cells where they used more than "
            f"{NOISY_CORES:.2f} cores are marked {NOISY_MARK}"
        )
    add("")
    lines += target_summary(results, total_s)
    add("### Throughput against the pgbench ceiling")
    add("")
    add(
        "App: requests/s from wrk (one connection per client, keep-alive). Ceiling: the same "
        "statement through pgbench `-M prepared`, transactions/s. Ratio = app / ceiling at "
        "16 connections (target >= 10%). Latency p50 / p99 in ms."
    )
    add("")
    add(
        "| endpoint | app @1 | app @16 | app @64 | app @256 | p50 / p99 @16 | p50 / p99 @64 "
        "| pgbench @1 | @16 | @64 | ratio @16 | >= 10% | p99 @64 < 50 ms |"
    )
    add("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|:-:|:-:|")
    for endpoint in ENDPOINTS:
        app = {c: results.app.get((endpoint, c)) for c in APP_CONNECTIONS}
        pg = {c: results.pg.get((endpoint, c)) for c in PG_CLIENTS}
        if app[16] is None or pg[16] is None:
            continue
        a16, a64, p16 = app[16], app[64], pg[16]
        assert a16 is not None
        assert a64 is not None
        assert p16 is not None
        ratio = a16.rps / p16.tps if p16.tps else 0.0
        cells = [
            ENDPOINT_LABELS[endpoint],
            *(_rate(app[c]) for c in APP_CONNECTIONS),
            f"{_ms(a16.p50_ms)} / {_ms(a16.p99_ms)}",
            f"{_ms(a64.p50_ms)} / {_ms(a64.p99_ms)}",
            *(_rate(pg[c]) for c in PG_CLIENTS),
            f"{ratio:.1%}",
            _mark(ratio >= TARGET_RATIO),
            _mark(a64.p99_ms < TARGET_P99_MS),
        ]
        add("| " + " | ".join(cells) + " |")
    add("")
    add("### Where the CPU went (16 connections)")
    add("")
    add(
        "CPU time per request of each party, measured from /proc during the cell; the app "
        "column is all API processes. 100% = one core; the machine has "
        f"{os.cpu_count()}."
    )
    add("")
    add(
        "| endpoint | app CPU | app us/req | of it in the kernel | PostgreSQL us/req (app) "
        "| wrk us/req | machine busy "
        "| other processes, cores | PostgreSQL us/tx (pgbench) | pgbench us/tx "
        "| other processes, cores |"
    )
    add("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for endpoint in ENDPOINTS:
        a = results.app.get((endpoint, 16))
        p = results.pg.get((endpoint, 16))
        if a is None or p is None or not a.requests or not p.transactions:
            continue
        add(
            f"| {endpoint} | {a.cpu.app_s / a.seconds:.0%} | {a.cpu.app_s / a.requests * 1e6:,.0f} "
            f"| {a.cpu.app_kernel_s / a.cpu.app_s if a.cpu.app_s else 0:.0%} "
            f"| {a.cpu.db_s / a.requests * 1e6:,.0f} | {a.cpu.client_s / a.requests * 1e6:,.0f} "
            f"| {a.cpu.machine_busy:.0%} | {a.cpu.foreign_cores:.2f} "
            f"| {p.cpu.db_s / p.transactions * 1e6:,.0f} "
            f"| {p.cpu.client_s / p.transactions * 1e6:,.0f} | {p.cpu.foreign_cores:.2f} |"
        )
    add("")
    if results.protocol:
        add("### The app's round trips, replayed by pgbench (16 clients)")
        add("")
        add(
            "Until commit 78dff1a each request of the app sent four messages in turn: the "
            "pool's pre-ping (`;`), `BEGIN`, the statement, `ROLLBACK`/`COMMIT`; it now sends "
            "the statement alone (autocommit, no pre-ping). pgbench replays the old sequence "
            "(`SELECT 1` for the ping) to show what those messages cost."
        )
        add("")
        add("| endpoint | statement alone, tps | with ping + BEGIN + end, tps | cost |")
        add("|---|---:|---:|---:|")
        for endpoint, result in results.protocol.items():
            alone = results.pg.get((endpoint, 16))
            if alone is None:
                continue
            add(
                f"| {endpoint} | {alone.tps:,.0f} | {result.tps:,.0f} | "
                f"{1 - result.tps / alone.tps:.0%} fewer |"
            )
        add("")
    add("### 256 connections")
    add("")
    add(
        f"wrk with a {WRK_TIMEOUT_S} s timeout. Errors = non-2xx responses + socket errors "
        "(connect/read/write/timeout). A pool timeout answers 503 "
        "(`urn:todo-api:database-unavailable`), so the 503 column counts them."
    )
    add("")
    add(
        "| endpoint | req/s | p50 ms | p99 ms | max ms | 503 (pool timeout) | other non-2xx "
        "| socket errors | no errors |"
    )
    add("|---|---:|---:|---:|---:|---:|---:|---:|:-:|")
    for endpoint in ENDPOINTS:
        r = results.app.get((endpoint, 256))
        if r is None:
            continue
        socket_errors = r.error_count - r.errors["status"]
        unavailable = r.statuses.get(503, 0)
        add(
            f"| {endpoint} | {r.rps:,.0f} | {_ms(r.p50_ms)} | {_ms(r.p99_ms)} | "
            f"{_ms(r.max_ms)} | {unavailable} | {r.errors['status'] - unavailable} | "
            f"{socket_errors} | {_mark(r.error_count == 0)} |"
        )
    add("")
    lower = [
        f"{endpoint} @{c}: {dict(sorted(r.statuses.items()))}"
        for (endpoint, c), r in results.app.items()
        if c < 256 and r.errors["status"]
    ]
    add(
        "Non-2xx below 256 connections: " + ("; ".join(lower) if lower else "none") + ". "
        f"App log: {results.pool_timeouts} outage(s) logged with a pool `TimeoutError`, "
        f"{results.unavailable} 'database unavailable' line(s), {results.server_errors} "
        "unhandled error(s)."
    )
    delete_misses = [r.misses for (e, _), r in results.pg.items() if e == "delete"]
    if any(delete_misses):
        add(f"pgbench delete transactions that found no row: {sum(delete_misses)}.")
    add("")
    if results.scale_app:
        add("### Listing one user's first page: table size and user size")
        add("")
        add(
            "One connection, latency of the default page (100 tasks). Target: the median within "
            f"{TARGET_SCALE:.0%} of the 1M-row, 100-task case (the median, because other work on "
            "the machine skews the mean)."
        )
        add("")
        add(
            "| case | app p50 ms | app mean ms | app p99 ms | statement alone (pgbench) ms "
            "| within 25% |"
        )
        add("|---|---:|---:|---:|---:|:-:|")
        reference = results.scale_app.get("1M rows, 100-task user")
        for key, r in results.scale_app.items():
            ok = reference is not None and _within(r.p50_ms, reference.p50_ms) <= TARGET_SCALE
            pg_ms = results.scale_pg[key].latency_ms if key in results.scale_pg else 0.0
            add(
                f"| {key} | {r.p50_ms:.2f}{_noisy(r.cpu)} | {r.mean_ms:.2f} | {r.p99_ms:.2f} | "
                f"{pg_ms:.3f} | {'-' if r is reference else _mark(ok)} |"
            )
        add("")
    for title, plan in results.plans.items():
        add(
            f"<details><summary>EXPLAIN (ANALYZE, BUFFERS) of the list statement: {title}</summary>"
        )
        add("")
        add("```")
        add(plan)
        add("```")
        add("")
        add("</details>")
        add("")
    add("### Memory")
    add("")
    for pid, role, mb in results.rss:
        add(
            f"- {role} (pid {pid}): VmRSS {mb:.0f} MB after the run "
            f"({_mark(mb < TARGET_RSS_MB)} < {TARGET_RSS_MB:.0f} MB)"
        )
    add("")
    if results.profiles:
        add("### Profile (py-spy, 16 connections)")
        add("")
        add(
            "Sampled at 250 Hz with `py-spy record --nonblocking --subprocesses` on all API "
            "processes while wrk drives one endpoint. Shares are of the busy samples (thread-"
            "pool threads asleep waiting for work are left out). A sample belongs to the first "
            "phase whose marker is anywhere in its stack, else to the area of its deepest "
            "frame (PROFILE_PHASES and PROFILE_AREAS in bench/run.py); us/request = share x the "
            "measured CPU time of the API processes per request. Raw stacks: "
            "bench/out/profile-*.txt (collapsed format, e.g. for speedscope)."
        )
        add("")
        for profile in results.profiles:
            add(
                f"**{profile.endpoint}**: {profile.requests:,} requests, {profile.samples:,} busy "
                f"samples ({profile.idle_samples:,} idle left out); the API processes used "
                f"{profile.app_cpu_s / profile.seconds:.0%} of one core ({os.cpu_count()} "
                f"cores), {profile.cpu_us_per_request:,.0f} us of CPU per request."
            )
            add("")
            add("| category | share | us/request |")
            add("|---|---:|---:|")
            for name, share in profile.shares:
                add(f"| {name} | {share:.1%} | {share * profile.cpu_us_per_request:,.0f} |")
            add("")
            add(
                "Top functions by self time: "
                + "; ".join(f"`{name}` {share:.1%}" for name, share in profile.leaves[:8])
                + "."
            )
            add("")
    if results.notes:
        add("### Notes")
        add("")
        lines += [f"- {note}" for note in results.notes]
        add("")
    return "\n".join(lines)


def write_doc(section: str) -> None:
    block = f"{BEGIN_MARK}\n{section}\n{END_MARK}"
    if DOC.exists():
        text = DOC.read_text()
        if BEGIN_MARK in text and END_MARK in text:
            head, rest = text.split(BEGIN_MARK, 1)
            tail = rest.split(END_MARK, 1)[1]
            DOC.write_text(head + block + tail)
            return
        DOC.write_text(text.rstrip("\n") + "\n\n" + block + "\n")
        return
    DOC.parent.mkdir(parents=True, exist_ok=True)
    DOC.write_text(
        "# Benchmarks\n\nRun `make bench` (see bench/run.py). The section between the markers "
        "is rewritten by each run.\n\n" + block + "\n"
    )


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--duration", type=int, default=5, help="seconds per cell")
    parser.add_argument("--warmup", type=int, default=2, help="seconds of warm-up")
    parser.add_argument("--profile-seconds", type=int, default=8)
    parser.add_argument("--no-profile", action="store_true", help="skip py-spy")
    parser.add_argument(
        "--only", default=",".join(ENDPOINTS), help="comma-separated endpoints to drive"
    )
    parser.add_argument(
        "--pool-size", type=int, default=0, help="rows for the delete cells (default: 60k/s)"
    )
    parser.add_argument("--no-doc", action="store_true", help="do not touch docs/benchmarks.md")
    parser.add_argument(
        "--reset", action="store_true", help="TRUNCATE tasks in BENCH_DATABASE_URL first"
    )
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="raw outputs")
    args = parser.parse_args()
    if not args.pool_size:
        args.pool_size = int(60_000 * args.duration) // POOL_OWNERS * POOL_OWNERS
    return args


def main() -> int:
    args = parse_args()
    for tool in ("wrk",):
        if shutil.which(tool) is None:
            raise BenchError(f"{tool} is not installed (apt-get install {tool})")
    args.out.mkdir(parents=True, exist_ok=True)
    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGHUP, _on_signal)
    pg_bin = find_pg_bin()
    results = Results()
    endpoints = [e for e in args.only.split(",") if e]
    unknown = set(endpoints) - set(ENDPOINTS)
    if unknown:
        raise BenchError(f"unknown endpoints: {sorted(unknown)}")
    with contextlib.ExitStack() as cleanup:
        external = os.environ.get("BENCH_DATABASE_URL", "").strip()
        if external:
            db = Database(libpq_url(external), None)
        else:
            cluster = PrivateCluster(pg_bin, args.out)
            cleanup.callback(cluster.stop)
            db = Database(cluster.start(), cluster)
        results.timings.update(prepare_data(db, args.out, reset=args.reset))
        api = Api("main", db.url, args.out)
        cleanup.callback(api.stop)
        api.start()
        for endpoint in endpoints:
            bench_endpoint(endpoint, api, db, pg_bin, args, results)
        if "list" in endpoints:
            log("scale check")
            scale_check(api, db, pg_bin, args, results)
            explain_plans(db, results)
        if not args.no_profile:
            for endpoint in ("list", "read"):
                log(f"profiling {endpoint} for {args.profile_seconds:g}s")
                try:
                    results.profiles.append(
                        profile_endpoint(api, db, endpoint, args.profile_seconds, args.out)
                    )
                except BenchError as exc:
                    results.notes.append(f"profile of {endpoint} failed: {exc}")
        for pid in api.workers():
            mb = rss_mb(pid)
            if mb is not None:
                role = (
                    "worker"
                    if pid != (api.process.pid if api.process else -1)
                    else ("API process (single worker)")
                )
                results.rss.append((pid, role, mb))
        results.pool_timeouts = api.log_count(r"TimeoutError")
        results.unavailable = api.log_count(r"(?i)database unavailable")
        results.server_errors = api.log_count(r"(?i)unhandled error")
        api.stop()
        total_s = time.monotonic() - _started
        report = render(results, db, args, total_s)
    print(report)
    (args.out / "report.md").write_text(report + "\n")
    if not args.no_doc:
        write_doc(report)
        log(f"wrote {DOC.relative_to(ROOT)}")
    log(f"done in {time.monotonic() - _started:.0f}s")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BenchError as exc:
        log(f"benchmark failed: {exc}")
        sys.exit(1)
    except KeyboardInterrupt:
        log("interrupted; cleaned up")
        sys.exit(130)
