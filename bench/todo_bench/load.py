"""Load: wrk against a server, with the CPU each party used during the cell."""

import contextlib
import json
import os
import re
import resource
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from todo_bench.cluster import Database
from todo_bench.common import WRK_DIR, WRK_TIMEOUT_S, BenchError, log, run
from todo_bench.procfs import cpu_seconds_between, cpu_ticks, kernel_ticks, machine_ticks
from todo_bench.servers import Server


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
def measure_cpu(server: Server | None, db: Database) -> Iterator[Cpu]:
    cpu = Cpu()
    app_before = cpu_ticks(server.pids()) if server else {}
    app_kernel_before = kernel_ticks(server.pids()) if server else {}
    db_before = db.server_ticks()
    child_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    busy_before, total_before = machine_ticks()
    began = time.monotonic()
    yield cpu
    cpu.seconds = time.monotonic() - began
    busy_after, total_after = machine_ticks()
    cpu.busy_s = (busy_after - busy_before) / os.sysconf("SC_CLK_TCK")
    child_after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu.app_s = cpu_seconds_between(app_before, cpu_ticks(server.pids())) if server else 0.0
    if server:
        cpu.app_kernel_s = cpu_seconds_between(app_kernel_before, kernel_ticks(server.pids()))
    cpu.db_s = cpu_seconds_between(db_before, db.server_ticks())
    cpu.client_s = (child_after.ru_utime - child_before.ru_utime) + (
        child_after.ru_stime - child_before.ru_stime
    )
    cpu.machine_busy = (busy_after - busy_before) / max(total_after - total_before, 1)


def settle(server: Server, db: Database, limit_s: float = 30.0) -> None:
    """Wait until the server has finished what wrk left in flight (bounded).

    wrk stops sending at the end of a cell, but the requests it already sent are still served;
    a write among them could land in the next step (a delete after the pool was refilled).
    """
    deadline = time.monotonic() + limit_s
    quiet = 0
    while time.monotonic() < deadline and quiet < 2:
        before = cpu_ticks(server.pids())
        time.sleep(0.2)
        busy = cpu_seconds_between(before, cpu_ticks(server.pids()))
        quiet = quiet + 1 if busy < 0.02 and db.active_queries() == 0 else 0
    if quiet < 2:
        log(f"the {server.role} was still busy {limit_s:.0f}s after wrk stopped; going on")


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
    server: Server,
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
        server.base,
    ]
    if script_args:
        command += ["--", *(str(arg) for arg in script_args)]
    with measure_cpu(server, db) as cpu:
        text = run(command, cwd=WRK_DIR, timeout=seconds + 60, output=out / f"wrk-{label}.txt")
    settle(server, db)
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
