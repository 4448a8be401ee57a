"""At a distance from the database: latency per endpoint with a delay per round trip (issue 23).

`make bench-distance` (or `.venv/bin/python bench/distance.py`). Between the API and a
throwaway database on TEST_DATABASE_URL's server sits tests/roundtrip_proxy.py, which adds
`--delay-ms` (20) to every round trip, as a database in another region would. One server
(one worker), one client, requests one after another: for each endpoint the round trips per
request and the p50/p99 latency. Target: p50 at most one round trip plus 3 ms.
"""

import argparse
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from auth_cost import api_server, throwaway_database  # noqa: E402
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
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--delay-ms", type=float, default=20.0)
    parser.add_argument("--requests", type=int, default=30, help="measured per endpoint")
    args = parser.parse_args()
    admin_url = os.environ.get("TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")
    rows = []
    with (
        tempfile.TemporaryDirectory() as scratch,
        throwaway_database(admin_url) as database_url,
        roundtrip_proxy(database_url, delay=args.delay_ms / 1000) as (proxied, counter),
        api_server(proxied, Path(scratch) / "server.log", AUTH_MODE="none") as (base, _pid),
        httpx.Client(base_url=base, timeout=30) as client,
    ):
        for name, request in ENDPOINTS.items():
            trips, latencies = [], []
            for attempt in range(args.requests + 3):  # three to warm up
                target = client.post(f"/api/{OWNER}/tasks", json={"title": "target"})
                before = counter.count
                started = time.perf_counter()
                response = request(client, target.json()["id"])
                elapsed = (time.perf_counter() - started) * 1000
                if response.status_code >= 300:
                    raise SystemExit(f"{name}: {response.status_code} {response.text}")
                if attempt >= 3:
                    trips.append(counter.count - before)
                    latencies.append(elapsed)
            latencies.sort()
            p50 = statistics.median(latencies)
            p99 = latencies[min(len(latencies) - 1, round(0.99 * (len(latencies) - 1)))]
            rows.append((name, statistics.median(trips), p50, p99))
            print(f"{name:17} {rows[-1][1]:3.0f} round trips  p50 {p50:6.1f} ms  p99 {p99:6.1f} ms")
    limit = args.delay_ms + TARGET_MARGIN_MS
    print(f"\n| endpoint | round trips | p50 ms | p99 ms | p50 <= {limit:g} ms |")
    print("|---|---:|---:|---:|---|")
    for name, trips, p50, p99 in rows:
        print(f"| {name} | {trips:g} | {p50:.1f} | {p99:.1f} | {'yes' if p50 <= limit else 'no'} |")


if __name__ == "__main__":
    main()
