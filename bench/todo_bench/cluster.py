"""PostgreSQL: a private cluster started for the run, or BENCH_DATABASE_URL, and access to it."""

import contextlib
import os
import pwd
import re
import shutil
import signal
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg

from todo_bench.common import BenchError, free_port, log, run
from todo_bench.procfs import cpu_ticks, process_tree

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
