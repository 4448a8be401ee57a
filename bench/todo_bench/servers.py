"""The servers under load: the API as production runs it, and the floor app beside it."""

import contextlib
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from pathlib import Path

from todo_bench.common import BENCH, ROOT, SERVER_READY_TIMEOUT_S, BenchError, free_port, log
from todo_bench.procfs import cmdline, process_tree


class Server:
    """A server in its own session, so that it and its workers stop together."""

    role = "server"

    def __init__(
        self,
        name: str,
        database_url: str,
        out: Path,
        workers: int,
        *,
        source: Path = ROOT,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.name = name
        self.source = source  # the checkout whose code runs (todo_bench.compare: another commit)
        # Settings of this server's own (todo_bench.compare --base-env / --head-env), applied
        # over the benchmark's environment.
        self.extra_env = dict(env or {})
        self.database_url = database_url
        self.workers_wanted = workers
        self.port = free_port()
        self.log_path = out / f"{self.role}-{name}.log"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        raise NotImplementedError

    def environment(self) -> dict[str, str]:
        return {**os.environ, "DATABASE_URL": self.database_url}

    def start(self) -> None:
        workers = f"{self.workers_wanted} worker(s)"
        log(f"starting the {self.role} ({self.name}, {workers}) on {self.base}")
        with self.log_path.open("wb") as handle:
            self.process = subprocess.Popen(
                self.command(),
                cwd=self.source,
                env=self.environment(),
                stdin=subprocess.DEVNULL,
                stdout=handle,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + SERVER_READY_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise BenchError(
                    f"the {self.role} exited with {self.process.returncode}; see {self.log_path}"
                )
            with (
                contextlib.suppress(OSError, urllib.error.URLError),
                urllib.request.urlopen(f"{self.base}/health/ready", timeout=2) as response,
            ):
                if response.status == 200:
                    time.sleep(0.5)  # let every worker finish starting
                    return
            time.sleep(0.2)
        raise BenchError(f"the {self.role} was not ready within {SERVER_READY_TIMEOUT_S}s")

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
        log(f"stopping the {self.role} ({self.name})")
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)


class Api(Server):
    """`python -m todo_api` with the given worker count, LOG_LEVEL=warning, engine defaults
    (unless `env` says otherwise)."""

    role = "api"

    def command(self) -> list[str]:
        return [sys.executable, "-m", "todo_api"]

    def environment(self) -> dict[str, str]:
        env = {
            **super().environment(),
            "HOST": "127.0.0.1",
            "PORT": str(self.port),
            "LOG_LEVEL": "warning",
            "WORKERS": str(self.workers_wanted),
            # Ahead of the editable install, so that another checkout's package is imported.
            "PYTHONPATH": str(self.source / "src"),
        }
        env.pop("CORS_ORIGINS", None)
        return env | self.extra_env


class Floor(Server):
    """bench/todo_bench/floor.py under uvicorn, with the API's worker count and pool size."""

    role = "floor"

    def __init__(
        self, name: str, database_url: str, out: Path, workers: int, pool_size: int
    ) -> None:
        super().__init__(name, database_url, out, workers)
        self.pool_size = pool_size

    def command(self) -> list[str]:
        return [
            sys.executable,
            "-m",
            "todo_bench.floor",
            "--port",
            str(self.port),
            "--workers",
            str(self.workers_wanted),
            "--pool-size",
            str(self.pool_size),
        ]

    def environment(self) -> dict[str, str]:
        env = super().environment()
        # Spawned workers import the app by name, so bench/ must be on their path too.
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(BENCH), env.get("PYTHONPATH")]))
        return env


def api_pool_size() -> int:
    """DB_POOL_SIZE as the API will read it, so that the floor holds as many connections."""
    try:
        from todo_api.settings import Settings

        return Settings(_env_file=ROOT / ".env").db_pool_size
    except Exception as exc:
        log(f"could not read the API's DB_POOL_SIZE ({exc}); the floor takes 20")
        return 20
