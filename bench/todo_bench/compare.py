"""This checkout against an older commit: the benchmark's endpoints, turn by turn, same rows.

`.venv/bin/python -m todo_bench.compare BASE` (from bench/, or `make bench-compare
BASE=<commit>`) answers "did a change make anything existing slower?" where `make bench`
cannot: two runs of it on different days differ by up to 10% here, and a change to the data
set changes every number.

- A private cluster holds two databases, each migrated by its own checkout (BASE in a
  temporary git worktree, and this one) and seeded with identical rows: the 10,000 users'
  million tasks with only the columns every schema since revision 0002 has. Newer columns
  take their defaults, as on a database that has just been upgraded.
- Both APIs run at once (`python -m todo_api` from each checkout, the same virtualenv).
- Each round drives every endpoint against one and then the other, after a warm-up, at each
  connection count; the order of the two flips every round, and write endpoints put their
  table back to the seed after each side.

It prints a Markdown table (also written to OUT/compare.md): requests/s of every round and the
change of the means, and the median latencies.

`--base-env NAME=VALUE` and `--head-env NAME=VALUE` (repeatable) set environment variables
for one side's API only, so that a checkout can be compared with itself under two settings:
`make bench-compare BASE=HEAD BENCH_ARGS="--base-env DB_PREPARED_STATEMENTS=true"` runs the
committed HEAD with prepared statements against this checkout with the default. BASE `.`
is this working tree itself, uncommitted changes included: the same code on both sides,
`make bench-compare BASE=. BENCH_ARGS="--base-env DB_PREPARED_STATEMENTS=true"`. A name
that the side's todo_api/settings.py does not mention is still set, and the report says so
(an older commit ignores a setting it does not have).
"""

import argparse
import contextlib
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from todo_bench.cells import wrk_args
from todo_bench.cluster import Database, PrivateCluster, find_pg_bin
from todo_bench.common import DEFAULT_OUT, ENDPOINTS, ROOT, BenchError, log, run
from todo_bench.data import (
    POOL_OWNERS,
    TASKS_PER_USER,
    USERS,
    checkpoint,
    ids_from_floor,
    migrate,
    seed_users,
    tidy,
    top_up_pool,
)
from todo_bench.load import WrkResult, wrk
from todo_bench.servers import Api

WRITES = {"create", "replace", "toggle", "delete"}
# What the benchmark itself sets for each API: not for --base-env / --head-env.
RESERVED_ENV = {"DATABASE_URL", "HOST", "PORT", "WORKERS", "PYTHONPATH"}


@dataclass
class Side:
    """One checkout with its database and its API."""

    name: str
    source: Path
    db: Database
    api: Api
    env: dict[str, str] = field(default_factory=dict)
    results: dict[tuple[str, int], list[WrkResult]] = field(default_factory=dict)


def _env_setting(text: str) -> tuple[str, str]:
    name, equals, value = text.partition("=")
    name = name.strip()
    if not equals or not name.isidentifier():
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE: {text!r}")
    if name.upper() in RESERVED_ENV:
        raise argparse.ArgumentTypeError(f"{name} is set by the benchmark itself")
    return name, value


# BASE naming this working tree rather than a commit.
WORKING_TREE = "."


def describe_env(env: dict[str, str], source: Path) -> str:
    """`A=1 B=2`, or what no setting means; names `source`'s settings do not know marked."""
    try:
        settings = (source / "src" / "todo_api" / "settings.py").read_text().lower()
    except OSError:
        settings = ""
    return (
        " ".join(
            f"{name}={value}" + ("" if name.lower() in settings else " (not in its settings)")
            for name, value in env.items()
        )
        or "no extra environment"
    )


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n", 1)[0])
    parser.add_argument(
        "base",
        help="the commit to compare against (anything git accepts), or `.` for this working "
        "tree itself (with --base-env / --head-env: one code, two settings)",
    )
    parser.add_argument("--rounds", type=int, default=3, help="default 3")
    parser.add_argument("--duration", type=int, default=5, help="seconds per cell (default 5)")
    parser.add_argument("--warmup", type=int, default=2, help="seconds (default 2)")
    parser.add_argument(
        "--workers",
        type=int,
        default=os.cpu_count() or 1,
        help="API workers on each side (default one per core, as `make serve`)",
    )
    parser.add_argument(
        "--connections", default="16,1", help="comma-separated wrk connections (default 16,1)"
    )
    parser.add_argument("--only", default=",".join(ENDPOINTS), help="comma-separated endpoints")
    for side in ("base", "head"):
        parser.add_argument(
            f"--{side}-env",
            type=_env_setting,
            action="append",
            default=[],
            metavar="NAME=VALUE",
            help=f"an environment variable for the {side} side's API only (repeatable)",
        )
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT / "compare", help="raw outputs")
    args = parser.parse_args()
    args.base_env = dict(args.base_env)
    args.head_env = dict(args.head_env)
    args.connections = [int(part) for part in args.connections.split(",") if part.strip()]
    args.only = [part for part in args.only.split(",") if part]
    unknown = set(args.only) - set(ENDPOINTS)
    if unknown:
        raise BenchError(f"unknown endpoints: {sorted(unknown)}")
    args.pool_size = 60_000 * args.duration // POOL_OWNERS * POOL_OWNERS
    return args


def add_worktree(base: str, parent: Path, out: Path) -> Path:
    commit = run(["git", "-C", ROOT, "rev-parse", "--verify", f"{base}^{{commit}}"], timeout=30)
    path = parent / "base"
    run(
        ["git", "-C", ROOT, "worktree", "add", "--detach", path, commit.strip()],
        timeout=120,
        output=out / "worktree.txt",
    )
    return path


def remove_worktree(path: Path) -> None:
    subprocess.run(
        ["git", "-C", str(ROOT), "worktree", "remove", "--force", str(path)],
        capture_output=True,
        check=False,
        timeout=60,
    )


def prepare(
    cluster: PrivateCluster,
    url: str,
    name: str,
    source: Path,
    out: Path,
    workers: int,
    env: dict[str, str],
) -> Side:
    """A database migrated by `source` and seeded with the plain rows, and its API (with
    `env` over the benchmark's environment)."""
    Database(url, cluster).execute(f"CREATE DATABASE {name}")
    db = Database(url.rsplit("/", 1)[0] + f"/{name}", cluster)
    log(f"{name}: migrating with {source}, seeding {USERS * TASKS_PER_USER:,} tasks")
    migrate(db.url, out, f"alembic-{name}.txt", source)
    seed_users(db, plain=True)
    ids_from_floor(db)
    db.execute("VACUUM (ANALYZE) tasks")
    api = Api(name, db.url, out, workers, source=source, env=env)
    return Side(name, source, db, api, env)


def fields_of_task_1(side: Side) -> list[str]:
    """The keys of a task as this side answers it: shows that each side runs its own code."""
    url = f"{side.api.base}/api/user00001/tasks/1"
    with urllib.request.urlopen(url, timeout=10) as response:
        return sorted(json.loads(response.read()))


def drive(side: Side, endpoint: str, args: argparse.Namespace, label: str) -> None:
    if endpoint == "delete":
        top_up_pool(side.db, args.pool_size, plain=True)
    wrk(
        side.api,
        side.db,
        endpoint,
        64,
        args.warmup,
        args.out,
        f"{label}-warmup",
        wrk_args(endpoint, 64, args.pool_size),
    )
    for connections in args.connections:
        if endpoint == "delete":
            top_up_pool(side.db, args.pool_size, plain=True)
        result = wrk(
            side.api,
            side.db,
            endpoint,
            connections,
            args.duration,
            args.out,
            f"{label}-c{connections}",
            wrk_args(endpoint, connections, args.pool_size),
        )
        if result.error_count or any(status >= 300 for status in result.statuses):
            raise BenchError(
                f"{label} at {connections} connections: errors {result.errors}, "
                f"statuses {result.statuses}; see {args.out}"
            )
        side.results.setdefault((endpoint, connections), []).append(result)
        log(
            f"{label} c={connections}: {result.rps:,.0f} req/s, p50 {result.p50_ms:.2f} ms, "
            f"p99 {result.p99_ms:.2f} ms"
        )
    if endpoint in WRITES:
        tidy(side.db, label)


def report(base: Side, head: Side, args: argparse.Namespace, commits: tuple[str, str]) -> str:
    lines = [
        f"Base `{commits[0]}` ({describe_env(base.env, base.source)}) against this checkout "
        f"`{commits[1]}` ({describe_env(head.env, head.source)}): {args.rounds} rounds, "
        f"{args.duration} s cells after {args.warmup} s of warm-up, WORKERS={args.workers} on "
        "each side, identical rows (the columns both schemas have).",
        "",
        "| endpoint | connections | base req/s | now req/s | change | base p50 ms | now p50 ms |",
        "|---|---:|---|---|---:|---:|---:|",
    ]
    for endpoint in args.only:
        for connections in args.connections:
            before = base.results.get((endpoint, connections), [])
            after = head.results.get((endpoint, connections), [])
            if not before or not after:
                continue
            mean_before = statistics.fmean(r.rps for r in before)
            mean_after = statistics.fmean(r.rps for r in after)
            change = (mean_after / mean_before - 1) * 100
            lines.append(
                f"| {endpoint} | {connections} "
                f"| {' / '.join(f'{r.rps:,.0f}' for r in before)} "
                f"| {' / '.join(f'{r.rps:,.0f}' for r in after)} "
                f"| {change:+.1f}% "
                f"| {statistics.median(r.p50_ms for r in before):.2f} "
                f"| {statistics.median(r.p50_ms for r in after):.2f} |"
            )
    return "\n".join(lines) + "\n"


def main() -> int:
    args = parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    signal.signal(signal.SIGTERM, lambda signum, _frame: sys.exit(128 + signum))
    checkout = run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], timeout=30).strip()
    if run(["git", "-C", ROOT, "status", "--porcelain", "--untracked-files=no"], timeout=30):
        checkout += " with uncommitted changes"
    if args.base == WORKING_TREE:
        commits = (f"{checkout} (this working tree)", checkout)
    else:
        base_commit = run(["git", "-C", ROOT, "rev-parse", "--short", args.base], timeout=30)
        commits = (base_commit.strip(), checkout)
    with contextlib.ExitStack() as cleanup:
        worktree = ROOT
        if args.base != WORKING_TREE:
            parent = Path(tempfile.mkdtemp(prefix="todo-bench-compare-"))
            cleanup.callback(shutil.rmtree, parent, ignore_errors=True)
            worktree = add_worktree(args.base, parent, args.out)
            cleanup.callback(remove_worktree, worktree)
        cluster = PrivateCluster(find_pg_bin(), args.out)
        cleanup.callback(cluster.stop)
        url = cluster.start()
        base = prepare(cluster, url, "bench_base", worktree, args.out, args.workers, args.base_env)
        head = prepare(cluster, url, "bench_head", ROOT, args.out, args.workers, args.head_env)
        checkpoint(head.db)
        for side in (base, head):
            cleanup.callback(side.api.stop)
            side.api.start()
            log(
                f"{side.name} ({describe_env(side.env, side.source)}) answers a task with "
                f"{', '.join(fields_of_task_1(side))}"
            )
        for round_number in range(args.rounds):
            order = (base, head) if round_number % 2 == 0 else (head, base)
            for endpoint in args.only:
                for side in order:
                    drive(side, endpoint, args, f"{endpoint}-{side.name}-r{round_number + 1}")
        text = report(base, head, args, commits)
    (args.out / "compare.md").write_text(text)
    print(text)
    return 0


def entry() -> int:
    try:
        return main()
    except (BenchError, KeyboardInterrupt) as exc:
        log(f"failed: {exc}")
        return 1


if __name__ == "__main__":
    sys.exit(entry())
