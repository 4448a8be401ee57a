"""What every step shares: paths, the endpoint list, the targets, logging and `run`."""

import os
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BENCH = ROOT / "bench"
WRK_DIR = BENCH / "wrk"
PGBENCH_DIR = BENCH / "pgbench"
DEFAULT_OUT = BENCH / "out"
DOC = ROOT / "docs" / "benchmarks.md"
# The marker still names bench/run.py: an existing docs/benchmarks.md is found by it, and
# bench/run.py is still what `make bench` runs.
BEGIN_MARK = "<!-- bench:begin (written by bench/run.py; edits between the markers are lost) -->"
END_MARK = "<!-- bench:end -->"

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
# The floor is only compared where the targets of issue 12 look; one connection would add
# a cell per endpoint and worker count for no target.
FLOOR_CONNECTIONS = (16, 64, 256)
PG_CLIENTS = (1, 16, 64)
PROTOCOL_ENDPOINTS = ("list", "read", "toggle")

# The targets of issue 4.
TARGET_RATIO = 0.10
TARGET_P99_MS = 50.0
TARGET_SCALE = 0.25
TARGET_RSS_MB = 120.0
TARGET_TOTAL_S = 600.0
# Issue 4's 10 minutes were for one worker count; each further one runs every endpoint again.
TARGET_TOTAL_EXTRA_S = 300.0

# The target of issue 20: the worst listing a request can ask for is planned within this.
TARGET_PLANNING_MS = 10.0

# The targets of issue 12, against the floor app.
FLOOR_CONNECTIONS_CHECKED = (16, 64)
TARGET_FLOOR_RPS = 0.8
TARGET_FLOOR_P99 = 1.5
CLEAN_CONNECTIONS = (64, 256)

WRK_TIMEOUT_S = 10
SERVER_READY_TIMEOUT_S = 60

_started = time.monotonic()


def elapsed() -> float:
    return time.monotonic() - _started


def log(message: str) -> None:
    print(f"[{elapsed():6.1f}s] {message}", file=sys.stderr, flush=True)


class BenchError(RuntimeError):
    """A step failed; the message says which and where its output is."""


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


def cpu_count() -> int:
    return os.cpu_count() or 1
