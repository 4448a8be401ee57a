"""At a distance from the database: latency per endpoint with a delay per round trip (issue 23).

`make bench-distance` (or `.venv/bin/python bench/distance.py`). Between the API and a
throwaway database on TEST_DATABASE_URL's server sits tests/roundtrip_proxy.py, which adds
`--delay-ms` (20) to every round trip, as a database in another region would. One server
(one worker), one client on `http.client`, requests one after another: for each endpoint the
round trips per request and the p50/p99 latency. Target: p50 at most one round trip plus 3 ms.
The proxy's event loop wakes up to a millisecond or so late, so a round trip is what it really
added: besides the nominal target, the table judges the median of each request's time beyond
the delay the proxy added to it. `--reference` times the reference app (FastAPI on the bare
driver, bench/todo_bench/reference.py) behind the same proxy, endpoint by endpoint beside the
API, for what this machine allows.
"""

import argparse
import http.client
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from contextlib import ExitStack, closing
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from auth_cost import TASKS_PER_USER, USERS, api_server, throwaway_database  # noqa: E402
from tests.roundtrip_proxy import RoundTrips, roundtrip_proxy  # noqa: E402
from writes import bench_server  # noqa: E402

TARGET_MARGIN_MS = 3.0
#: Requests of each endpoint before those measured: past opening a connection, and past the
#: sixth run of a statement that psycopg prepares itself, in a round trip of its own (the
#: pool hands out the most recently used connection). The statements compiled at start-up
#: are prepared on their first run, without one.
WARM_UP = 8
OWNER = "u1"


class Client:
    """One keep-alive connection through the standard library's `http.client`.

    The time measured is the service's: httpx costs about 1 ms of its own per request on
    this machine, as much as the service's whole answer to a read without the delay.
    """

    def __init__(self, base: str) -> None:
        self._connection = http.client.HTTPConnection(urlsplit(base).netloc, timeout=30)

    def send(
        self,
        method: str,
        path: str,
        body: object = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, bytes]:
        """The status and body of the answer to one request."""
        sent = dict(headers or {})
        encoded = None
        if body is not None:
            encoded = json.dumps(body).encode()
            sent["Content-Type"] = "application/json"
        self._connection.request(method, path, encoded, sent)
        response = self._connection.getresponse()
        return response.status, response.read()

    def close(self) -> None:
        self._connection.close()


Request = Callable[[Client, int], tuple[int, bytes]]

ENDPOINTS: dict[str, Request] = {
    "list": lambda c, _t: c.send("GET", f"/api/{OWNER}/tasks"),
    "read": lambda c, t: c.send("GET", f"/api/{OWNER}/tasks/{t}"),
    "create": lambda c, _t: c.send("POST", f"/api/{OWNER}/tasks", {"title": "far"}),
    "create with tags": lambda c, _t: c.send(
        "POST", f"/api/{OWNER}/tasks", {"title": "far", "tags": ["a", "b"]}
    ),
    "keyed create": lambda c, _t: c.send(
        "POST",
        f"/api/{OWNER}/tasks",
        {"title": "far"},
        headers={"Idempotency-Key": uuid.uuid4().hex},
    ),
    "patch": lambda c, t: c.send("PATCH", f"/api/{OWNER}/tasks/{t}", {"title": "moved"}),
    "patch tags": lambda c, t: c.send("PATCH", f"/api/{OWNER}/tasks/{t}", {"tags": ["c"]}),
    "put": lambda c, t: c.send("PUT", f"/api/{OWNER}/tasks/{t}", {"title": "put"}),
    "toggle": lambda c, t: c.send("PATCH", f"/api/{OWNER}/tasks/{t}/complete"),
    "delete": lambda c, t: c.send("DELETE", f"/api/{OWNER}/tasks/{t}"),
    "stats": lambda c, _t: c.send("GET", f"/api/{OWNER}/tasks/stats"),
    "tags": lambda c, _t: c.send("GET", f"/api/{OWNER}/tags"),
    "complete repeating": lambda c, t: c.send("PATCH", f"/api/{OWNER}/tasks/{t}/complete"),
    "move reminded due": lambda c, t: c.send(
        "PATCH", f"/api/{OWNER}/tasks/{t}", {"due_at": "2027-02-01T09:00:00Z"}
    ),
}
#: What the reference app (bench/todo_bench/reference.py) serves, for `--reference`.
REFERENCE_ENDPOINTS = ("list", "read", "create", "put", "toggle", "delete")
#: The task each request acts on is made just before it: a plain one, unless its endpoint is here.
TARGETS: dict[str, dict[str, object]] = {
    "complete repeating": {
        "title": "target",
        "due_date": "2027-01-04",
        "recurrence": {"frequency": "daily"},
    },
    "move reminded due": {
        "title": "target",
        "due_at": "2027-01-04T09:00:00Z",
        "reminder": {"minutes_before": 10},
    },
}


POOL_SIZE = 20
CONNECTIONS = 64
#: The load run: wrk Lua that makes one request of each endpoint, on the seeded tasks
#: (task `id` belongs to user `id % USERS`).
_LOAD = """
math.randomseed(os.time())
local headers = {{["Content-Type"] = "application/json"}}
request = function()
  local id = math.random(1, {tasks})
  local path = string.format("/api/u%d/tasks", id % {users})
  {body}
end
"""
LOAD: dict[str, str] = {
    "read": 'return wrk.format("GET", path .. "/" .. id)',
    "create": """return wrk.format("POST", path, headers, '{"title":"far"}')""",
    "create with tags": (
        """return wrk.format("POST", path, headers, '{"title":"far","tags":["a","b"]}')"""
    ),
    "keyed create": (
        'headers["Idempotency-Key"] = string.format("%d-%d", math.random(1e9), math.random(1e9))\n'
        """  return wrk.format("POST", path, headers, '{"title":"far"}')"""
    ),
    "patch tags": """return wrk.format("PATCH", path .. "/" .. id, headers, '{"tags":["c"]}')""",
}


def load_run(base: str, scratch: Path, seconds: int, round_trip_ms: float) -> list[str]:
    """Requests per second at CONNECTIONS connections per endpoint, as markdown rows."""
    # Without a delay, the pool allows whatever the machine can do: no ratio to judge.
    allowed = POOL_SIZE / (round_trip_ms / 1000) if round_trip_ms else None
    rows = []
    for name, body in LOAD.items():
        script = scratch / f"{name.replace(' ', '_')}.lua"
        script.write_text(_LOAD.format(tasks=USERS * TASKS_PER_USER, users=USERS, body=body))
        output = subprocess.run(
            [
                "wrk",
                "-t1",
                f"-c{CONNECTIONS}",
                f"-d{seconds}s",
                "--latency",
                "-s",
                str(script),
                base,
            ],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        if "Non-2xx" in output:
            raise SystemExit(f"{name}: non-2xx answers:\n{output}")
        rate = float(
            next(line for line in output.splitlines() if "Requests/sec" in line).split()[1]
        )
        p50 = next(line for line in output.splitlines() if line.strip().startswith("50%")).split()[
            1
        ]
        print(f"{name:17} {rate:8.1f} req/s at {CONNECTIONS} connections, p50 {p50}")
        if allowed is None:
            rows.append(f"| {name} | {rate:,.0f} | any | - | {p50} | - |")
            continue
        met = "yes" if rate >= 0.8 * allowed else "no"
        rows.append(
            f"| {name} | {rate:,.0f} | {allowed:,.0f} | {rate / allowed:.2f} | {p50} | {met} |"
        )
    return rows


@dataclass(frozen=True)
class Timing:
    """One endpoint's requests on one server: medians, and p99 of the latency."""

    round_trips: float
    p50: float
    p99: float
    #: The time beyond the delay the proxy really added (its timer wakes up late).
    beyond: float


def time_endpoint(client: Client, counter: RoundTrips, name: str, requests: int) -> Timing:
    """`requests` requests of endpoint `name`, one after another, after WARM_UP others."""
    # A connection idle for seconds may have been closed by the server (its keep-alive
    # timeout): a new one, opened by the first request.
    client.close()
    trips, latencies, beyond = [], [], []
    for attempt in range(requests + WARM_UP):
        status, target = client.send(
            "POST", f"/api/{OWNER}/tasks", TARGETS.get(name, {"title": "target"})
        )
        if status != 201:
            raise SystemExit(f"{name}: creating its task: {status} {target.decode()}")
        before, delayed_before = counter.count, counter.delayed
        started = time.perf_counter()
        status, answer = ENDPOINTS[name](client, json.loads(target)["id"])
        elapsed = (time.perf_counter() - started) * 1000
        if status >= 300:
            raise SystemExit(f"{name}: {status} {answer.decode()}")
        if attempt >= WARM_UP:
            trips.append(counter.count - before)
            latencies.append(elapsed)
            beyond.append(elapsed - (counter.delayed - delayed_before) * 1000)
    latencies.sort()
    p99 = latencies[min(len(latencies) - 1, round(0.99 * (len(latencies) - 1)))]
    return Timing(
        statistics.median(trips), statistics.median(latencies), p99, statistics.median(beyond)
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--delay-ms", type=float, default=20.0)
    parser.add_argument("--requests", type=int, default=30, help="measured per endpoint")
    parser.add_argument("--load-seconds", type=int, default=5, help="per endpoint; 0: no load run")
    parser.add_argument("--pgbouncer", action="store_true", help="PgBouncer behind the proxy")
    parser.add_argument(
        "--reference",
        action="store_true",
        help="also time the reference app (FastAPI on the bare driver), endpoint by endpoint",
    )
    args = parser.parse_args()
    if args.pgbouncer and args.reference:
        # Its pool sends startup options that PgBouncer refuses.
        parser.error("--reference runs directly only")
    if args.pgbouncer and "TODO_BENCH_PGBOUNCER" not in os.environ:
        # Re-run under a PgBouncer of the tests' script, which sets TEST_DATABASE_URL to it.
        command = ["scripts/with-pgbouncer.sh", sys.executable, __file__, *sys.argv[1:]]
        os.execvpe(command[0], command, os.environ | {"TODO_BENCH_PGBOUNCER": "1"})
    admin_url = os.environ.get("TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")
    timings: dict[tuple[str, str], Timing] = {}
    with (
        tempfile.TemporaryDirectory() as scratch,
        throwaway_database(admin_url) as database_url,
        roundtrip_proxy(database_url, delay=args.delay_ms / 1000) as (proxied, counter),
        api_server(
            proxied, Path(scratch) / "server.log", AUTH_MODE="none", DB_POOL_SIZE=str(POOL_SIZE)
        ) as (base, _pid),
        ExitStack() as servers,
    ):
        clients = {"api": servers.enter_context(closing(Client(base)))}
        if args.reference:
            # Behind the same proxy. One connection: psycopg_pool hands its connections out
            # in turn, so with 20 none would run a statement six times, and prepare it, in
            # this run, where the API's most recently used one does.
            reference = servers.enter_context(
                bench_server(
                    "reference", proxied, Path(scratch) / "reference.log", "--pool-size", "1"
                )
            )
            clients["reference"] = servers.enter_context(closing(Client(reference)))
        for name in ENDPOINTS:
            for server, client in clients.items():
                if server == "reference" and name not in REFERENCE_ENDPOINTS:
                    continue
                timing = timings[(name, server)] = time_endpoint(
                    client, counter, name, args.requests
                )
                print(
                    f"{server:9} {name:18} {timing.round_trips:3.0f} round trips  "
                    f"p50 {timing.p50:6.1f} ms  p99 {timing.p99:6.1f} ms  "
                    f"beyond the delay {timing.beyond:5.1f} ms"
                )
        load = (
            load_run(base, Path(scratch), args.load_seconds, args.delay_ms)
            if args.load_seconds
            else []
        )
    report(timings, args.delay_ms, load)


def report(timings: dict[tuple[str, str], Timing], delay_ms: float, load: list[str]) -> None:
    limit = delay_ms + TARGET_MARGIN_MS
    compared = any(server == "reference" for _, server in timings)
    print(
        f"\n| endpoint | round trips | p50 ms | p99 ms | p50 <= {limit:g} ms "
        f"| p50 beyond the added delay, ms | <= {TARGET_MARGIN_MS:g} ms |"
        + (" reference: p50 ms | beyond the delay, ms |" if compared else "")
    )
    print("|---|---:|---:|---:|---|---:|---|" + ("---:|---:|" if compared else ""))
    for (name, server), timing in timings.items():
        if server != "api":
            continue
        met = "yes" if timing.p50 <= limit else "no"
        met_beyond = "yes" if timing.beyond <= TARGET_MARGIN_MS else "no"
        row = (
            f"| {name} | {timing.round_trips:g} | {timing.p50:.1f} | {timing.p99:.1f} | {met} "
            f"| {timing.beyond:.1f} | {met_beyond} |"
        )
        if compared:
            other = timings.get((name, "reference"))
            row += f" {other.p50:.1f} | {other.beyond:.1f} |" if other else " | |"
        print(row)
    if load:
        print(
            f"\n| endpoint | req/s at {CONNECTIONS} connections | pool allows | ratio | p50 "
            "| within 20% |"
        )
        print("|---|---:|---:|---:|---:|---|")
        print("\n".join(load))


if __name__ == "__main__":
    main()
