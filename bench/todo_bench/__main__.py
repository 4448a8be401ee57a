"""`python -m todo_bench` (from bench/), or bench/run.py: arguments, then the run in order."""

import argparse
import contextlib
import os
import shutil
import signal
import sys
from pathlib import Path

from todo_bench import __doc__ as package_doc
from todo_bench.bounded import DISTINCT_LISTINGS, listing_flood, worst_listing_plans
from todo_bench.ceiling import explain_plans
from todo_bench.cells import (
    Config,
    Results,
    bench_endpoint,
    compare_answers,
    query_check,
    scale_check,
)
from todo_bench.cluster import Database, PrivateCluster, find_pg_bin, libpq_url
from todo_bench.common import DEFAULT_OUT, DOC, ENDPOINTS, ROOT, BenchError, elapsed, log
from todo_bench.data import POOL_OWNERS, prepare_data
from todo_bench.procfs import rss_mb
from todo_bench.profiling import profile_endpoint
from todo_bench.queries import explain_cases
from todo_bench.report import render, write_doc
from todo_bench.servers import Api, Floor, api_pool_size

# Seconds per cell, of warm-up and of each profile: (normal, --quick).
DURATION_S = (5, 2)
WARMUP_S = (2, 1)
PROFILE_S = (8, 3)


def _on_signal(signum: int, _frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def _worker_counts(text: str) -> list[int]:
    counts = sorted({int(part) for part in text.split(",") if part.strip()})
    if not counts or counts[0] < 1:
        raise argparse.ArgumentTypeError(f"worker counts must be positive: {text!r}")
    return counts


def parse_args() -> argparse.Namespace:
    cores = os.cpu_count() or 1
    parser = argparse.ArgumentParser(description=(package_doc or "").split("\n", 1)[0])
    parser.add_argument("--duration", type=int, help=f"seconds per cell (default {DURATION_S[0]})")
    parser.add_argument("--warmup", type=int, help=f"seconds of warm-up (default {WARMUP_S[0]})")
    parser.add_argument("--profile-seconds", type=int, help=f"default {PROFILE_S[0]}")
    parser.add_argument("--no-profile", action="store_true", help="skip py-spy")
    parser.add_argument(
        "--only", default=",".join(ENDPOINTS), help="comma-separated endpoints to drive"
    )
    parser.add_argument(
        "--workers",
        type=_worker_counts,
        # BENCH_WORKERS, as before --workers existed, still names the one count to run.
        default=_worker_counts(os.environ.get("BENCH_WORKERS") or f"1,{cores}"),
        help=f"comma-separated worker counts (default BENCH_WORKERS, else 1,{cores}: `make run` "
        "and `make serve`), each with every endpoint against the API and the floor; the largest "
        "also gets the one-connection cells, the scale check and the profile",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help=f"short cells ({DURATION_S[1]} s, warm-up {WARMUP_S[1]} s, profiles "
        f"{PROFILE_S[1]} s) to see that everything works; leaves docs/benchmarks.md alone "
        "unless --doc is given",
    )
    parser.add_argument(
        "--pool-size", type=int, default=0, help="rows for the delete cells (default: 60k/s)"
    )
    parser.add_argument(
        "--distinct-listings",
        type=int,
        default=DISTINCT_LISTINGS,
        help=f"distinct list queries for the workers' RSS (default {DISTINCT_LISTINGS:,})",
    )
    parser.add_argument("--no-doc", action="store_true", help="do not touch docs/benchmarks.md")
    parser.add_argument(
        "--doc",
        type=Path,
        help=f"write the section into this file (default {DOC.relative_to(ROOT)})",
    )
    parser.add_argument(
        "--reset",
        action="store_true",
        help="TRUNCATE tasks and task_tags in BENCH_DATABASE_URL first",
    )
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="raw outputs")
    args = parser.parse_args()
    quick = 1 if args.quick else 0
    args.duration = args.duration or DURATION_S[quick]
    args.warmup = args.warmup or WARMUP_S[quick]
    args.profile_seconds = args.profile_seconds or PROFILE_S[quick]
    if args.doc is None and not args.no_doc:
        if args.quick:
            args.no_doc = True
        args.doc = DOC
    if not args.pool_size:
        args.pool_size = int(60_000 * args.duration) // POOL_OWNERS * POOL_OWNERS
    return args


def run_config(
    workers: int,
    endpoints: list[str],
    db: Database,
    pg_bin: Path,
    args: argparse.Namespace,
    results: Results,
    *,
    ceiling: bool,
    primary: bool,
) -> None:
    """Every endpoint against the API and the floor with this many workers each."""
    config = results.configs[workers] = Config(workers)
    api = Api(f"w{workers}", db.url, args.out, workers)
    floor = Floor(f"w{workers}", db.url, args.out, workers, api_pool_size())
    with contextlib.ExitStack() as servers:
        servers.callback(api.stop)
        api.start()
        servers.callback(floor.stop)
        floor.start()
        config.parity = compare_answers(api, floor, args.out)
        for difference in config.parity:
            log(f"floor differs: {difference}")
        for endpoint in endpoints:
            bench_endpoint(
                endpoint,
                config,
                api,
                floor,
                db,
                pg_bin,
                args,
                results,
                ceiling=ceiling,
                single=primary,
            )
        floor.stop()
        if primary and "list" in endpoints:
            log("scale check")
            scale_check(api, db, pg_bin, args, results)
            log("sorts and filters of the 10,000-task user's first page")
            query_check(api, db, pg_bin, args, results)
            results.plans = explain_plans(db) | explain_cases(db)
            log("planning time of the worst listing")
            results.worst_listing = worst_listing_plans(db)
            log(f"worker RSS across {args.distinct_listings:,} distinct listings")
            results.flood = listing_flood(api, args.distinct_listings)
        if primary and not args.no_profile:
            for endpoint in ("list", "read"):
                log(f"profiling {endpoint} for {args.profile_seconds:g}s")
                try:
                    results.profiles.append(
                        profile_endpoint(api, db, endpoint, args.profile_seconds, args.out)
                    )
                except BenchError as exc:
                    results.notes.append(f"profile of {endpoint} failed: {exc}")
        main_pid = api.process.pid if api.process else -1
        for pid in api.workers():
            mb = rss_mb(pid)
            if mb is not None:
                role = "worker" if pid != main_pid else "API process (single worker)"
                config.rss.append((pid, f"WORKERS={workers}: {role}", mb))
        config.pool_timeouts = api.log_count(r"TimeoutError")
        config.unavailable = api.log_count(r"(?i)database unavailable")
        config.server_errors = api.log_count(r"(?i)unhandled error")


def main() -> int:
    args = parse_args()
    for tool in ("wrk",):
        if shutil.which(tool) is None:
            raise BenchError(f"{tool} is not installed (apt-get install {tool})")
    args.out.mkdir(parents=True, exist_ok=True)
    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGHUP, _on_signal)
    pg_bin = find_pg_bin()
    results = Results()
    endpoints = [e for e in args.only.split(",") if e]
    unknown = set(endpoints) - set(ENDPOINTS)
    if unknown:
        raise BenchError(f"unknown endpoints: {sorted(unknown)}")
    with contextlib.ExitStack() as cleanup:
        external = os.environ.get("BENCH_DATABASE_URL", "").strip()
        if external:
            db = Database(libpq_url(external), None)
        else:
            cluster = PrivateCluster(pg_bin, args.out)
            cleanup.callback(cluster.stop)
            db = Database(cluster.start(), cluster)
        results.timings.update(prepare_data(db, args.out, reset=args.reset))
        for index, workers in enumerate(args.workers):
            run_config(
                workers,
                endpoints,
                db,
                pg_bin,
                args,
                results,
                ceiling=index == 0,
                primary=workers == args.workers[-1],
            )
        report = render(results, db, args, elapsed())
    print(report)
    (args.out / "report.md").write_text(report + "\n")
    if not args.no_doc:
        write_doc(report, args.doc)
        log(f"wrote {args.doc}")
    log(f"done in {elapsed():.0f}s")
    return 0


def entry() -> int:
    """main() with the exit codes of a failed step (1) and of an interruption (130)."""
    try:
        return main()
    except BenchError as exc:
        log(f"benchmark failed: {exc}")
        return 1
    except KeyboardInterrupt:
        log("interrupted; cleaned up")
        return 130


if __name__ == "__main__":
    sys.exit(entry())
