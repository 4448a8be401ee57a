"""At a distance from the database: latency per endpoint with a delay per round trip (issue 23).

`make bench-distance` (or `.venv/bin/python bench/distance.py`). Between the API and a
throwaway database on TEST_DATABASE_URL's server sits tests/roundtrip_proxy.py, which adds
`--delay-ms` (20) to every round trip, as a database in another region would. One server
(one worker), one client, requests one after another: for each endpoint the round trips per
request and the p50/p99 latency. Target: p50 at most one round trip plus 3 ms. The proxy's
event loop wakes up to a millisecond or so late, so a round trip is what it really added:
besides the nominal target, the table judges the median of each request's time beyond the
delay the proxy added to it.
"""

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from auth_cost import TASKS_PER_USER, USERS, api_server, throwaway_database  # noqa: E402
from tests.roundtrip_proxy import roundtrip_proxy  # noqa: E402

TARGET_MARGIN_MS = 3.0
OWNER = "u1"
Request = Callable[[httpx.Client, int], httpx.Response]

ENDPOINTS: dict[str, Request] = {
    "list": lambda c, _t: c.get(f"/api/{OWNER}/tasks"),
    "read": lambda c, t: c.get(f"/api/{OWNER}/tasks/{t}"),
    "create": lambda c, _t: c.post(f"/api/{OWNER}/tasks", json={"title": "far"}),
    "create with tags": lambda c, _t: c.post(
        f"/api/{OWNER}/tasks", json={"title": "far", "tags": ["a", "b"]}
    ),
    "keyed create": lambda c, _t: c.post(
        f"/api/{OWNER}/tasks",
        json={"title": "far"},
        headers={"Idempotency-Key": uuid.uuid4().hex},
    ),
    "patch": lambda c, t: c.patch(f"/api/{OWNER}/tasks/{t}", json={"title": "moved"}),
    "patch tags": lambda c, t: c.patch(f"/api/{OWNER}/tasks/{t}", json={"tags": ["c"]}),
    "put": lambda c, t: c.put(f"/api/{OWNER}/tasks/{t}", json={"title": "put"}),
    "toggle": lambda c, t: c.patch(f"/api/{OWNER}/tasks/{t}/complete"),
    "delete": lambda c, t: c.delete(f"/api/{OWNER}/tasks/{t}"),
    "stats": lambda c, _t: c.get(f"/api/{OWNER}/tasks/stats"),
    "tags": lambda c, _t: c.get(f"/api/{OWNER}/tags"),
    "complete repeating": lambda c, t: c.patch(f"/api/{OWNER}/tasks/{t}/complete"),
    "move reminded due": lambda c, t: c.patch(
        f"/api/{OWNER}/tasks/{t}", json={"due_at": "2027-02-01T09:00:00Z"}
    ),
}
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
    # Without a delay, the pool allows whatever the machine can do.
    allowed = POOL_SIZE / (round_trip_ms / 1000) if round_trip_ms else float("inf")
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
        met = "yes" if rate >= 0.8 * allowed else "no"
        rows.append(
            f"| {name} | {rate:,.0f} | {allowed:,.0f} | {rate / allowed:.2f} | {p50} | {met} |"
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--delay-ms", type=float, default=20.0)
    parser.add_argument("--requests", type=int, default=30, help="measured per endpoint")
    parser.add_argument("--load-seconds", type=int, default=5, help="per endpoint; 0: no load run")
    parser.add_argument("--pgbouncer", action="store_true", help="PgBouncer behind the proxy")
    args = parser.parse_args()
    if args.pgbouncer and "TODO_BENCH_PGBOUNCER" not in os.environ:
        # Re-run under a PgBouncer of the tests' script, which sets TEST_DATABASE_URL to it.
        command = ["scripts/with-pgbouncer.sh", sys.executable, __file__, *sys.argv[1:]]
        os.execvpe(command[0], command, os.environ | {"TODO_BENCH_PGBOUNCER": "1"})
    admin_url = os.environ.get("TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")
    rows = []
    with (
        tempfile.TemporaryDirectory() as scratch,
        throwaway_database(admin_url) as database_url,
        roundtrip_proxy(database_url, delay=args.delay_ms / 1000) as (proxied, counter),
        api_server(
            proxied, Path(scratch) / "server.log", AUTH_MODE="none", DB_POOL_SIZE=str(POOL_SIZE)
        ) as (base, _pid),
        httpx.Client(base_url=base, timeout=30) as client,
    ):
        for name, request in ENDPOINTS.items():
            trips, latencies, beyond = [], [], []
            for attempt in range(args.requests + 3):  # three to warm up
                target = client.post(
                    f"/api/{OWNER}/tasks", json=TARGETS.get(name, {"title": "target"})
                )
                before, delayed_before = counter.count, counter.delayed
                started = time.perf_counter()
                response = request(client, target.json()["id"])
                elapsed = (time.perf_counter() - started) * 1000
                if response.status_code >= 300:
                    raise SystemExit(f"{name}: {response.status_code} {response.text}")
                if attempt >= 3:
                    trips.append(counter.count - before)
                    latencies.append(elapsed)
                    beyond.append(elapsed - (counter.delayed - delayed_before) * 1000)
            latencies.sort()
            p50 = statistics.median(latencies)
            p99 = latencies[min(len(latencies) - 1, round(0.99 * (len(latencies) - 1)))]
            rows.append((name, statistics.median(trips), p50, p99, statistics.median(beyond)))
            print(
                f"{name:18} {rows[-1][1]:3.0f} round trips  p50 {p50:6.1f} ms  "
                f"p99 {p99:6.1f} ms  beyond the delay {rows[-1][4]:5.1f} ms"
            )
        load = (
            load_run(base, Path(scratch), args.load_seconds, args.delay_ms)
            if args.load_seconds
            else []
        )
    limit = args.delay_ms + TARGET_MARGIN_MS
    print(
        f"\n| endpoint | round trips | p50 ms | p99 ms | p50 <= {limit:g} ms "
        f"| p50 beyond the added delay, ms | <= {TARGET_MARGIN_MS:g} ms |"
    )
    print("|---|---:|---:|---:|---|---:|---|")
    for name, median_trips, p50, p99, past_delay in rows:
        met = "yes" if p50 <= limit else "no"
        met_past_delay = "yes" if past_delay <= TARGET_MARGIN_MS else "no"
        print(
            f"| {name} | {median_trips:g} | {p50:.1f} | {p99:.1f} | {met} "
            f"| {past_delay:.1f} | {met_past_delay} |"
        )

    if load:
        print(
            f"\n| endpoint | req/s at {CONNECTIONS} connections | pool allows | ratio | p50 "
            "| within 20% |"
        )
        print("|---|---:|---:|---:|---:|---|")
        print("\n".join(load))


if __name__ == "__main__":
    main()
