"""What an MCP tool call costs against the REST request that does the same (issue 22).

`make bench` runs it after bench/auth_cost.py (or `.venv/bin/python bench/mcp_cost.py`). It
uses auth_cost.py's throwaway database (100 users with 100 tasks each, on TEST_DATABASE_URL's
server) and one server from this tree (AUTH_MODE=none, one worker). wrk drives each pair in
turn, round by round: a read (`GET /tasks/{id}` against `get_task`), a page of 20 (`GET
/tasks?limit=20` against `list_tasks`), a completion (`PATCH` with `{"completed": true}`
against `complete_task`) and a create (`POST` against `add_task`). It reports the server's
CPU time per request, from /proc, which a shared 2-core machine measures far more steadily
than throughput. Target: a tool call at most 2x the CPU of its REST request.
"""

import argparse
import json
import os
import statistics
import tempfile
import urllib.request
from pathlib import Path

from auth_cost import TASKS_PER_USER, USERS, api_server, drive, throwaway_database

TARGET_RATIO = 2.0

_LUA = """
math.randomseed(os.time())
request = function()
  local id = math.random(1, {tasks})
  local user = id % {users}
  {body}
end
"""
_MCP_HEADERS = (
    '{["Content-Type"] = "application/json", ["Accept"] = "application/json, text/event-stream"}'
)


_MODERN_HEADERS = (
    '{["Content-Type"] = "application/json", '
    '["Accept"] = "application/json, text/event-stream", '
    '["MCP-Protocol-Version"] = "2026-07-28", ["Mcp-Method"] = "tools/call", '
    '["Mcp-Name"] = "NAME"}'
)
_MODERN_META = (
    ',"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28",'
    '"io.modelcontextprotocol/clientCapabilities":{}}'
)


def _mcp(tool: str, arguments: str, *, modern: bool = False) -> str:
    """A Lua body that sends one tools/call; `arguments` is a Lua string.format of JSON.
    `modern`: as a client of the 2026-07-28 protocol sends it (no handshake era)."""
    meta = _MODERN_META if modern else ""
    envelope = (
        '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"' + tool + '",'
        '"arguments":%s' + meta + "}}"
    )
    headers = _MODERN_HEADERS.replace("NAME", tool) if modern else _MCP_HEADERS
    return (
        f"local arguments = {arguments}\n"
        f'  return wrk.format("POST", "/mcp", {headers}, '
        f"string.format('{envelope}', arguments))"
    )


#: operation -> (the REST request, the tool, its arguments as a Lua expression).
PAIRS: dict[str, tuple[str, str, str]] = {
    "read": (
        'return wrk.format("GET", string.format("/api/u%d/tasks/%d", user, id))',
        "get_task",
        'string.format(\'{"user_id":"u%d","task_id":%d}\', user, id)',
    ),
    "list": (
        'return wrk.format("GET", string.format("/api/u%d/tasks?limit=20", user))',
        "list_tasks",
        'string.format(\'{"user_id":"u%d","limit":20}\', user)',
    ),
    "complete": (
        'return wrk.format("PATCH", string.format("/api/u%d/tasks/%d", user, id), '
        '{["Content-Type"] = "application/json"}, \'{"completed":true}\')',
        "complete_task",
        'string.format(\'{"user_id":"u%d","task_id":%d}\', user, id)',
    ),
    "create": (
        'return wrk.format("POST", string.format("/api/u%d/tasks", user), '
        '{["Content-Type"] = "application/json"}, \'{"title":"Benchmark task"}\')',
        "add_task",
        'string.format(\'{"user_id":"u%d","title":"Benchmark task"}\', user)',
    ),
}
#: REST, a tool call of the handshake-era protocol (2025-11-25 and before), and of 2026-07-28.
SIDES = ("rest", "mcp", "mcp-2026")


def _scripts(directory: Path) -> dict[str, dict[str, Path]]:
    scripts: dict[str, dict[str, Path]] = {}
    for name, (rest, tool, arguments) in PAIRS.items():
        bodies = {
            "rest": rest,
            "mcp": _mcp(tool, arguments),
            "mcp-2026": _mcp(tool, arguments, modern=True),
        }
        scripts[name] = {}
        for side, body in bodies.items():
            path = directory / f"{name}_{side}.lua"
            path.write_text(_LUA.format(tasks=USERS * TASKS_PER_USER, users=USERS, body=body))
            scripts[name][side] = path
    return scripts


def _check_tool_answers(base: str) -> None:
    """A tool error is a 200 too: make sure the calls wrk sends succeed."""
    call = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "tools/call",
        "params": {"name": "get_task", "arguments": {"user_id": "u1", "task_id": 1}},
    }
    request = urllib.request.Request(
        f"{base}/mcp",
        data=json.dumps(call).encode(),
        headers={"Content-Type": "application/json", "Accept": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        answer = json.loads(response.read())
    if answer["result"]["isError"]:
        raise SystemExit(f"get_task failed: {answer}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=int, default=5, help="seconds per cell")
    args = parser.parse_args()
    admin_url = os.environ.get("TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")
    cpu: dict[tuple[str, str], list[float]] = {}
    with tempfile.TemporaryDirectory() as scratch, throwaway_database(admin_url) as database_url:
        work = Path(scratch)
        scripts = _scripts(work)
        with api_server(database_url, work / "server.log", AUTH_MODE="none") as (base, pid):
            _check_tool_answers(base)
            for sides in scripts.values():
                for script in sides.values():
                    drive(base, pid, script, 2)  # warm-up: connections, prepared statements
            for round_number in range(1, args.rounds + 1):
                for name, sides in scripts.items():
                    for side, script in sides.items():
                        rate, per_request = drive(base, pid, script, args.duration)
                        cpu.setdefault((name, side), []).append(per_request)
                        print(
                            f"round {round_number} {name:8} {side:8}: {rate:8.1f} req/s "
                            f"{per_request:7.1f} µs CPU/req"
                        )
    report(cpu)


def report(cpu: dict[tuple[str, str], list[float]]) -> None:
    print()
    print(
        "| operation | REST µs CPU/request | tool call, handshake era | / REST "
        "| tool call, 2026-07-28 | / REST |"
    )
    print("|---|---:|---:|---:|---:|---:|")
    worst = 0.0
    for name in PAIRS:
        rest = statistics.median(cpu[(name, "rest")])
        era = statistics.median(cpu[(name, "mcp")])
        modern = statistics.median(cpu[(name, "mcp-2026")])
        worst = max(worst, era / rest, modern / rest)
        print(
            f"| {name} | {rest:,.0f} | {era:,.0f} | {era / rest:.2f} "
            f"| {modern:,.0f} | {modern / rest:.2f} |"
        )
    met = worst <= TARGET_RATIO
    print(
        f"\nTarget (a tool call at most {TARGET_RATIO:g}x its REST request's CPU): "
        f"{'met' if met else 'MISSED'}"
    )


if __name__ == "__main__":
    main()
