"""CPU per request of one endpoint, the app called as ASGI in this process, without a server.

`.venv/bin/python bench/inprocess.py read` (or list, create, createtags, replace, toggle), with
`--app reference` for bench/todo_bench/reference.py instead of the API. It makes a throwaway
database on the PostgreSQL server of TEST_DATABASE_URL (seeded as bench/auth_cost.py seeds
it), then sends the endpoint's request straight to the application object: no uvicorn, no
sockets, no client, so what it measures is the app's own work plus the driver's. Logging is
as the benchmark servers run it (LOG_LEVEL=warning: no request log line) unless LOG_LEVEL is
set. What docs/benchmarks.md compares the API with the reference with.

`--instructions` counts instead of timing: the script runs itself under valgrind's callgrind
with instrumentation switched on for the measured requests only, and prints the instructions
per request. Unlike CPU time, that count does not move with what else the machine is doing
(within about 1% from run to run: the driver's and the event loop's own bookkeeping).
"""

import argparse
import asyncio
import json
import logging.config
import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from auth_cost import throwaway_database

BENCH = Path(__file__).resolve().parent
Send = Callable[[str, str, bytes], Awaitable[tuple[int, bytes]]]

#: method, path (under /api/u1/tasks; {id} is a task of u1), body.
ENDPOINTS: dict[str, tuple[str, str, bytes]] = {
    "list": ("GET", "", b""),
    "read": ("GET", "/{id}", b""),
    "create": ("POST", "", b'{"title":"Bench","description":"d"}'),
    "createtags": ("POST", "", b'{"title":"Bench","description":"d","tags":["a","b"]}'),
    "replace": ("PUT", "/{id}", b'{"title":"Replaced","description":"d"}'),
    "toggle": ("PATCH", "/{id}/complete", b""),
}


def _application(which: str) -> Any:
    if which == "reference":
        sys.path.insert(0, str(BENCH))
        from todo_bench.reference import create_app as reference_app

        return reference_app()
    from todo_api.app import create_app
    from todo_api.log_config import log_config
    from todo_api.settings import get_settings

    settings = get_settings()
    logging.config.dictConfig(log_config(settings.log_format, settings.log_level))
    return create_app(settings)


def _sender(app: Any, state: dict[str, Any]) -> Send:
    async def send_request(method: str, path: str, body: bytes) -> tuple[int, bytes]:
        headers = [(b"host", b"127.0.0.1:8000"), (b"user-agent", b"bench")]
        if body:
            headers += [(b"content-type", b"application/json")]
            headers += [(b"content-length", str(len(body)).encode())]
        scope = {
            "type": "http",
            "asgi": {"version": "3.0", "spec_version": "2.3"},
            "http_version": "1.1",
            "method": method,
            "scheme": "http",
            "path": path,
            "raw_path": path.encode(),
            "root_path": "",
            "query_string": b"",
            "headers": headers,
            "client": ("127.0.0.1", 50000),
            "server": ("127.0.0.1", 8000),
            "state": dict(state),
        }
        messages: list[dict[str, Any]] = []
        pending = [{"type": "http.request", "body": body, "more_body": False}]

        async def receive() -> dict[str, Any]:
            if pending:
                return pending.pop()
            await asyncio.Event().wait()  # no disconnect while the app answers
            raise AssertionError("unreachable")

        async def send(message: dict[str, Any]) -> None:
            messages.append(message)

        await app(scope, receive, send)
        return messages[0]["status"], b"".join(m.get("body", b"") for m in messages[1:])

    return send_request


async def _measure(which: str, endpoint: str, requests: int) -> tuple[float, float]:
    app = _application(which)
    async with app.router.lifespan_context(app) as state:
        send_request = _sender(app, state or {})
        status, body = await send_request("POST", "/api/u1/tasks", b'{"title":"target"}')
        assert status == 201, body
        method, suffix, payload = ENDPOINTS[endpoint]
        path = "/api/u1/tasks" + suffix.replace("{id}", str(json.loads(body)["id"]))
        for _ in range(300):  # warm-up: statements prepared, caches filled
            status, body = await send_request(method, path, payload)
            assert status < 300, (status, body)
        _count_instructions(True)
        cpu, wall = time.process_time(), time.perf_counter()
        for _ in range(requests):
            await send_request(method, path, payload)
        elapsed = time.process_time() - cpu, time.perf_counter() - wall
        _count_instructions(False)
        return elapsed


def _count_instructions(on: bool) -> None:
    """Switch callgrind's counting on or off for this process, when run under it."""
    if os.environ.get("INPROCESS_UNDER_CALLGRIND"):
        switch = ["callgrind_control", "--instr", "on" if on else "off", str(os.getpid())]
        subprocess.run(switch, check=True, capture_output=True)


def _instructions_per_request(argv: list[str], requests: int) -> float:
    """Run this script with `argv` under callgrind, counting the measured requests only."""
    with tempfile.TemporaryDirectory() as directory:
        out = Path(directory) / "callgrind.out"
        command = ["valgrind", "--tool=callgrind", "--instr-atstart=no"]
        command += [f"--callgrind-out-file={out}", sys.executable, __file__, *argv]
        # A fixed hash seed: set and dict layouts, and so the work, the same every run.
        env = os.environ | {"INPROCESS_UNDER_CALLGRIND": "1", "PYTHONHASHSEED": "0"}
        subprocess.run(command, check=True, env=env, capture_output=True)
        totals = re.search(r"^totals: (\d+)", out.read_text(), re.MULTILINE)
        assert totals, "callgrind wrote no totals"
        return int(totals[1]) / requests


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("endpoint", choices=sorted(ENDPOINTS))
    parser.add_argument("--app", choices=("api", "reference"), default="api")
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument(
        "--instructions",
        action="store_true",
        help="count instructions per request under valgrind (about a minute for 200 requests)",
    )
    args = parser.parse_args()
    if args.app == "reference" and args.endpoint == "createtags":
        parser.error("the reference has no tags")
    if args.instructions:
        argv = [args.endpoint, "--app", args.app, "--requests", str(args.requests)]
        per_request = _instructions_per_request(argv, args.requests)
        print(f"{args.app} {args.endpoint}: {per_request:,.0f} instructions per request")
        return
    admin = os.environ.get("TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")
    with throwaway_database(admin) as url:
        os.environ["DATABASE_URL"] = url
        os.environ.setdefault("LOG_LEVEL", "warning")
        cpu, wall = asyncio.run(_measure(args.app, args.endpoint, args.requests))
    per_request = 1e6 / args.requests
    print(
        f"{args.app} {args.endpoint}: {cpu * per_request:.0f} µs CPU, "
        f"{wall * per_request:.0f} µs wall per request ({args.requests} requests)"
    )


if __name__ == "__main__":
    main()
