"""What verifying tokens costs: `read` with AUTH_MODE=jwt against AUTH_MODE=none (issue 11).

`make bench` runs it after bench/run.py (or `.venv/bin/python bench/auth_cost.py`). It makes a
throwaway database on the PostgreSQL server of TEST_DATABASE_URL, seeds 100 users with 100 tasks
each, serves an Ed25519 JWKS from a local HTTP server, and starts two servers from this tree,
one per mode, as production runs them. wrk reads one task at a time, every request of the `jwt`
run with its user's token (as Better Auth issues them: EdDSA, `iss`, `aud`), alternating the two
servers round by round. Throughput varies a lot between identical runs on a small shared
machine, so it also reports each server's CPU time per request, from /proc. Target: `jwt` at
most 15% slower than `none`.
"""

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import jwt
import psycopg
from cryptography.hazmat.primitives.asymmetric import ed25519
from jwt.algorithms import OKPAlgorithm
from sqlalchemy import make_url

ROOT = Path(__file__).resolve().parent.parent
USERS = 100
TASKS_PER_USER = 100
ISSUER = "http://auth.bench.local"
TARGET_SLOWDOWN = 0.15
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")

READ_LUA = """
{tokens}
math.randomseed(os.time())
request = function()
  local id = math.random(1, {tasks})
  local user = id % {users}
  local headers = {{}}
  if tokens then headers["Authorization"] = "Bearer " .. tokens[user + 1] end
  return wrk.format("GET", string.format("/api/u%d/tasks/%d", user, id), headers)
end
"""


def _seed_tasks(connection: psycopg.Connection[Any]) -> None:
    connection.execute(
        "INSERT INTO tasks (user_id, title, completed, created_at, updated_at)"
        " SELECT 'u' || (g %% %s), 'Task ' || g, false, now(), now()"
        " FROM generate_series(1, %s) AS g",
        (USERS, USERS * TASKS_PER_USER),
    )


@contextmanager
def throwaway_database(
    admin_url: str, seed: Callable[[psycopg.Connection[Any]], None] | None = None
) -> Iterator[str]:
    """A new database on that server, migrated and seeded (by `seed`, or with USERS users'
    TASKS_PER_USER tasks each); dropped afterwards."""
    admin = make_url(admin_url).set(drivername="postgresql")
    name = f"todo_bench_{uuid.uuid4().hex[:8]}"
    admin_dsn = admin.render_as_string(hide_password=False)
    with psycopg.connect(admin_dsn, autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    url = admin.set(database=name).render_as_string(hide_password=False)
    try:
        subprocess.run(
            [sys.executable, "-m", "alembic", "upgrade", "head"],
            cwd=ROOT,
            env=os.environ | {"DATABASE_URL": url},
            check=True,
            capture_output=True,
        )
        with psycopg.connect(url, autocommit=True) as connection:
            (seed or _seed_tasks)(connection)
            connection.execute("VACUUM ANALYZE tasks")
        yield url
    finally:
        with psycopg.connect(admin_dsn, autocommit=True) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


class _QuietFileHandler(SimpleHTTPRequestHandler):
    def log_message(self, *_: object) -> None:
        pass


@contextmanager
def key_server(directory: Path) -> Iterator[tuple[str, list[str]]]:
    """A JWKS at a local URL, and one token per user signed with its key."""
    key = ed25519.Ed25519PrivateKey.generate()
    jwk = OKPAlgorithm.to_jwk(key.public_key(), as_dict=True) | {"kid": "bench", "alg": "EdDSA"}
    (directory / "jwks.json").write_text(json.dumps({"keys": [jwk]}))
    now = int(time.time())
    tokens = [
        jwt.encode(
            {"sub": f"u{n}", "iat": now, "exp": now + 3600, "iss": ISSUER, "aud": ISSUER},
            key,
            algorithm="EdDSA",
            headers={"kid": "bench"},
        )
        for n in range(USERS)
    ]
    handler = partial(_QuietFileHandler, directory=str(directory))
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/jwks.json", tokens
    finally:
        httpd.shutdown()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def api_server(database_url: str, log: Path, **env: str) -> Iterator[tuple[str, int]]:
    """`python -m todo_api`, one worker; its base URL and process id."""
    port = free_port()
    settings = {"DATABASE_URL": database_url, "PORT": str(port), "LOG_LEVEL": "warning", **env}
    with log.open("wb") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "todo_api"],
            env=os.environ | settings,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(200):
            try:
                urllib.request.urlopen(f"{base}/health", timeout=1).close()
                break
            except OSError:
                time.sleep(0.05)
        yield base, process.pid
    finally:
        process.terminate()
        process.wait(timeout=15)


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime + stime


def drive(base: str, pid: int, script: Path, seconds: int) -> tuple[float, float]:
    """Requests per second and server CPU µs per request; fails on any non-2xx answer."""
    before = cpu_seconds(pid)
    output = subprocess.run(
        ["wrk", "-t1", "-c16", f"-d{seconds}s", "-s", str(script), base],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    spent = cpu_seconds(pid) - before
    if "Non-2xx" in output:
        raise SystemExit(f"non-2xx answers from {base}:\n{output}")
    requests = int(next(line for line in output.splitlines() if "requests in" in line).split()[0])
    rate = float(next(line for line in output.splitlines() if "Requests/sec" in line).split()[1])
    return rate, spent / requests * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--duration", type=int, default=5, help="seconds per cell")
    args = parser.parse_args()
    admin_url = os.environ.get("TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")
    results: dict[str, list[tuple[float, float]]] = {"none": [], "jwt": []}
    with (
        tempfile.TemporaryDirectory() as scratch,
        throwaway_database(admin_url) as database_url,
        key_server(Path(scratch)) as (jwks_url, tokens),
    ):
        work = Path(scratch)
        plain = work / "read.lua"
        plain.write_text(READ_LUA.format(tokens="", tasks=USERS * TASKS_PER_USER, users=USERS))
        signed = work / "read_jwt.lua"
        table = "tokens = {" + ",".join(f'"{token}"' for token in tokens) + "}"
        signed.write_text(READ_LUA.format(tokens=table, tasks=USERS * TASKS_PER_USER, users=USERS))
        jwt_env = {
            "AUTH_MODE": "jwt",
            "AUTH_JWKS_URL": jwks_url,
            "AUTH_ISSUER": ISSUER,
            "AUTH_AUDIENCE": ISSUER,
        }
        with (
            api_server(database_url, work / "none.log", AUTH_MODE="none") as none,
            api_server(database_url, work / "jwt.log", **jwt_env) as verified,
        ):
            servers = (("none", none, plain), ("jwt", verified, signed))
            for _mode, (base, pid), script in servers:
                drive(base, pid, script, 2)  # warm-up: connections, prepared statements
            for round_number in range(1, args.rounds + 1):
                for mode, (base, pid), script in servers:
                    results[mode].append(drive(base, pid, script, args.duration))
                    rate, cpu = results[mode][-1]
                    print(f"round {round_number} {mode:4}: {rate:8.1f} req/s {cpu:7.1f} µs CPU/req")
    report(results)


def report(results: dict[str, list[tuple[float, float]]]) -> None:
    rate = {mode: statistics.median(r for r, _ in cells) for mode, cells in results.items()}
    cpu = {mode: statistics.median(c for _, c in cells) for mode, cells in results.items()}
    throughput_ratio = rate["jwt"] / rate["none"]
    cpu_ratio = cpu["jwt"] / cpu["none"]
    print()
    print("| read, 16 connections | none | jwt | jwt / none |")
    print("|---|---:|---:|---:|")
    print(f"| req/s (median) | {rate['none']:,.0f} | {rate['jwt']:,.0f} | {throughput_ratio:.2f} |")
    print(
        f"| server CPU µs/request (median) | {cpu['none']:,.0f} | {cpu['jwt']:,.0f} |"
        f" {cpu_ratio:.2f} |"
    )
    met = cpu_ratio <= 1 + TARGET_SLOWDOWN
    print(
        f"\nTarget (jwt at most {TARGET_SLOWDOWN:.0%} slower, by CPU per request):"
        f" {'met' if met else 'MISSED'}"
    )


if __name__ == "__main__":
    main()
