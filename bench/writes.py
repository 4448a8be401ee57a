"""Writes against reads: the API beside the reference and the floor app (issue 23).

`make bench-writes` (also run by `make bench`), or `.venv/bin/python bench/writes.py`. On a
throwaway database of TEST_DATABASE_URL's server (100 users with 100 tasks each, as
bench/auth_cost.py seeds it) it starts three servers of one worker and 20 connections each:
the API (`python -m todo_api`), the reference (bench/todo_bench/reference.py: FastAPI, pydantic
bodies, the same SQL on the bare driver) and the floor (bench/todo_bench/floor.py: the same SQL
and nothing around it). wrk drives each endpoint on each server in turn, at 16 and then 64
connections, round by round; medians of the rounds. Targets: every write at least 0.8x the
reference's throughput; every endpoint at least 0.6x the floor's, with p99 at most 1.5x its.
"""

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from auth_cost import TASKS_PER_USER, USERS, api_server, free_port, throwaway_database

BENCH = Path(__file__).resolve().parent
WRITES = ("create", "replace", "toggle")
SERVERS = ("api", "reference", "floor")
WRITE_TARGET = 0.8
FLOOR_TARGET = 0.6
P99_TARGET = 1.5

_LUA = """
math.randomseed(os.time())
local headers = {{["Content-Type"] = "application/json"}}
request = function()
  local id = math.random(1, {tasks})
  local path = string.format("/api/u%d/tasks", id % {users})
  {body}
end
"""
#: The endpoint, as a Lua body; every server answers each with a 2xx.
ENDPOINTS: dict[str, str] = {
    "list": 'return wrk.format("GET", path)',
    "read": 'return wrk.format("GET", path .. "/" .. id)',
    "create": """return wrk.format("POST", path, headers, '{"title":"Bench","description":"d"}')""",
    "replace": (
        """return wrk.format("PUT", path .. "/" .. id, headers, """
        """'{"title":"Replaced","description":"d"}')"""
    ),
    "toggle": 'return wrk.format("PATCH", path .. "/" .. id .. "/complete")',
}


@contextmanager
def bench_server(module: str, database_url: str, log: Path, *options: str) -> Iterator[str]:
    """`python -m todo_bench.<module> [options]`, one worker; its base URL."""
    port = free_port()
    env = os.environ | {"DATABASE_URL": database_url, "PYTHONPATH": str(BENCH)}
    command = [sys.executable, "-m", f"todo_bench.{module}", "--port", str(port), *options]
    with log.open("wb") as output:
        process = subprocess.Popen(command, env=env, stdout=output, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            try:
                urllib.request.urlopen(f"{base}/health/ready", timeout=1).close()
                break
            except OSError:
                time.sleep(0.05)
        else:
            raise SystemExit(f"{module} did not start: see {log}")
        yield base
    finally:
        process.terminate()
        process.wait(timeout=15)


def drive(base: str, script: Path, connections: int, seconds: int) -> tuple[float, float]:
    """Requests per second and p99 in ms; fails on any non-2xx answer."""
    output = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency", "-s", str(script), base],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    if "Non-2xx" in output:
        raise SystemExit(f"non-2xx answers from {base}:\n{output}")
    lines = output.splitlines()
    rate = float(next(line for line in lines if "Requests/sec" in line).split()[1])
    p99 = next(line for line in lines if line.strip().startswith("99%")).split()[1]
    return rate, _milliseconds(p99)


def _milliseconds(text: str) -> float:
    for unit, factor in (("us", 0.001), ("ms", 1.0), ("s", 1000.0)):
        if text.endswith(unit):
            return float(text.removesuffix(unit)) * factor
    raise ValueError(text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--duration", type=int, default=5, help="seconds per cell")
    args = parser.parse_args()
    admin_url = os.environ.get("TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")
    cells: dict[tuple[int, str, str], list[tuple[float, float]]] = {}
    with tempfile.TemporaryDirectory() as scratch, throwaway_database(admin_url) as database_url:
        work = Path(scratch)
        scripts = {}
        for name, body in ENDPOINTS.items():
            scripts[name] = work / f"{name}.lua"
            scripts[name].write_text(
                _LUA.format(tasks=USERS * TASKS_PER_USER, users=USERS, body=body)
            )
        with (
            api_server(database_url, work / "api.log", AUTH_MODE="none") as (api, _pid),
            bench_server("reference", database_url, work / "reference.log") as reference,
            bench_server("floor", database_url, work / "floor.log") as floor,
        ):
            bases = {"api": api, "reference": reference, "floor": floor}
            for base in bases.values():
                for script in scripts.values():
                    drive(base, script, 16, 1)  # warm-up: connections, prepared statements
            for connections in (16, 64):
                for round_number in range(1, args.rounds + 1):
                    for name, script in scripts.items():
                        for server, base in bases.items():
                            rate, p99 = drive(base, script, connections, args.duration)
                            cells.setdefault((connections, name, server), []).append((rate, p99))
                            print(
                                f"c{connections} round {round_number} {name:8} {server:9}: "
                                f"{rate:8.1f} req/s  p99 {p99:7.1f} ms",
                                flush=True,
                            )
    report(cells)


def report(cells: dict[tuple[int, str, str], list[tuple[float, float]]]) -> None:
    print(
        "\n| connections | endpoint | API req/s | reference | floor | API / reference "
        "| API / floor | p99 API / floor | targets |"
    )
    print("|---:|---|---:|---:|---:|---:|---:|---:|---|")
    for (connections, name, server), _ in sorted(cells.items()):
        if server != "api":
            continue
        rate = {s: statistics.median(r for r, _ in cells[(connections, name, s)]) for s in SERVERS}
        p99 = {s: statistics.median(p for _, p in cells[(connections, name, s)]) for s in SERVERS}
        to_reference = rate["api"] / rate["reference"]
        to_floor = rate["api"] / rate["floor"]
        p99_ratio = p99["api"] / p99["floor"]
        met = to_floor >= FLOOR_TARGET and p99_ratio <= P99_TARGET
        if name in WRITES:
            met = met and to_reference >= WRITE_TARGET
        print(
            f"| {connections} | {name} | {rate['api']:,.0f} | {rate['reference']:,.0f} "
            f"| {rate['floor']:,.0f} | {to_reference:.2f} | {to_floor:.2f} | {p99_ratio:.2f} "
            f"| {'met' if met else 'missed'} |"
        )


if __name__ == "__main__":
    main()
