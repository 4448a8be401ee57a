"""The profile: py-spy on the API while wrk drives one endpoint, stacks sorted into phases."""

import json
import re
import shutil
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from todo_bench.cluster import Database
from todo_bench.common import WRK_DIR, WRK_TIMEOUT_S, run
from todo_bench.data import USERS
from todo_bench.procfs import cpu_seconds_between, cpu_ticks
from todo_bench.servers import Server

# A sample belongs to the first phase whose marker appears anywhere in its stack...
PROFILE_PHASES: tuple[tuple[str, Sequence[str]], ...] = (
    (
        "response_model validation + serialization",
        ("serialize_response (fastapi/routing.py", "jsonable_encoder (fastapi/encoders.py"),
    ),
    ("JSON encoding of the response", ("render (starlette/responses.py", "to_json")),
    (
        "opening/closing DB connections (pool overflow)",
        ("_connect_gen (psycopg", "AsyncConnection.connect (psycopg", "close (psycopg/"),
    ),
    ("psycopg (driver, protocol, waiting)", ("psycopg/", "psycopg_binary/")),
    (
        "data layer: pool, deadline, statements, rows (todo_api/db)",
        ("todo_api/db/",),
    ),
    ("SQLAlchemy (should be start-up only)", ("sqlalchemy/",)),
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


def profile_endpoint(
    api: Server, db: Database, endpoint: str, seconds: float, out: Path
) -> Profile:
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
