"""The report: Markdown for the terminal, bench/out/report.md and docs/benchmarks.md."""

import argparse
import contextlib
import os
import platform
import statistics
import subprocess
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

from todo_bench.bounded import CLIENT_THREADS, PLAN_RUNS, SHAPE_REPEATS, ListingFlood
from todo_bench.cells import Results
from todo_bench.cluster import SERVER_SETTINGS, Database
from todo_bench.common import (
    APP_CONNECTIONS,
    BEGIN_MARK,
    END_MARK,
    ENDPOINT_LABELS,
    ENDPOINTS,
    PG_CLIENTS,
    ROOT,
    TARGET_P99_MS,
    TARGET_PLANNING_MS,
    TARGET_RATIO,
    TARGET_RSS_MB,
    TARGET_SCALE,
    WRK_TIMEOUT_S,
)
from todo_bench.data import COMMON_TAG, HEAVY_TASKS, HEAVY_USER, TAG_NAMES, TASKS_PER_USER, USERS
from todo_bench.formatting import NOISY_CORES, NOISY_MARK, mark, ms, noisy, rate, within
from todo_bench.targets import floor_gap, floor_tables, target_summary, target_total_s


def _git(*command: str) -> str:
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        done = subprocess.run(
            ["git", *command], cwd=ROOT, capture_output=True, text=True, timeout=10, check=False
        )
        return done.stdout.strip() if done.returncode == 0 else ""
    return ""


def machine_description(db: Database) -> list[str]:
    model = "unknown CPU"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    mem_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    version = db.execute("SELECT version()")[0][0]
    versions = ", ".join(
        f"{name} {metadata.version(name)}"
        for name in (
            "fastapi",
            "starlette",
            "pydantic",
            "sqlmodel",
            "sqlalchemy",
            "psycopg",
            "uvicorn",
        )
    )
    wrk_version = subprocess.run(
        ["wrk", "--version"], capture_output=True, text=True, timeout=10, check=False
    ).stdout.split(" Copyright")[0]
    commit = _git("rev-parse", "--short", "HEAD") or "unknown"
    dirty = subprocess.run(
        ["git", "diff-index", "--quiet", "HEAD", "--"], cwd=ROOT, check=False, timeout=10
    ).returncode
    where = "a private cluster started by the benchmark" if db.cluster else "BENCH_DATABASE_URL"
    return [
        f"- Date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC; commit `{commit}`"
        + (" with uncommitted changes in the working tree" if dirty else ""),
        f"- Machine: {os.cpu_count()} cores ({model}), {mem_gib:.0f} GiB memory, "
        f"{platform.system()} {platform.release()}; app, database and load generator share it",
        f"- Database: {version.split(',')[0]} ({where})"
        + (
            "; "
            + ", ".join(
                f"{k}={v.strip(chr(39))}"
                for k, v in SERVER_SETTINGS.items()
                if k != "listen_addresses"
            )
            if db.cluster
            else ""
        ),
        f"- Python {platform.python_version()}; {versions}; load generator {wrk_version}",
    ]


def app_settings_summary() -> str:
    """The API's engine settings as they default (the benchmark sets none of them)."""
    try:
        from todo_api.settings import Settings

        settings = Settings(_env_file=None)
    except Exception as exc:
        return f"(unreadable: {exc})"
    names = (
        "db_pool_size",
        "db_max_overflow",
        "db_pool_timeout",
        "db_statement_timeout_ms",
        "db_pool_recycle",
        "db_prepared_statements",
    )
    values = [
        f"{name.upper()}={'unset' if getattr(settings, name) is None else getattr(settings, name)}"
        for name in names
        if hasattr(settings, name)
    ]
    return "(" + ", ".join(values) + ")" if values else "(pool 10 + 10 overflow)"


def _workers(count: int) -> str:
    if count == 1:
        return "WORKERS=1 (as `make run`)"
    if count == os.cpu_count():
        return f"WORKERS={count} (one per core, as `make serve`)"
    return f"WORKERS={count}"


def render(results: Results, db: Database, args: argparse.Namespace, total_s: float) -> str:
    lines: list[str] = []
    add = lines.append
    d = f"{args.duration:g}"
    add("## Results (generated)")
    add("")
    lines += machine_description(db)
    primary = results.primary
    add(
        f"- API: `python -m todo_api`, LOG_LEVEL=warning, "
        f"{' and '.join(_workers(w) for w in sorted(results.configs))}, engine defaults "
        f"{app_settings_summary()}; each cell runs {d} s after a {args.warmup:g} s warm-up at 64 "
        f"connections; issue 4's tables are for WORKERS={primary.workers}"
    )
    add(
        "- Floor: bench/todo_bench/floor.py beside the API, with its worker count: the API's SQL "
        "(compiled from todo_api.db.tasks) on a psycopg_pool of DB_POOL_SIZE connections per "
        "worker, tuple rows, orjson, uvicorn with httptools and uvloop, nothing else"
    )
    tag_count = len({name.casefold() for name in TAG_NAMES})
    add(
        f"- Data: {USERS:,} users x {TASKS_PER_USER} tasks + user `{HEAVY_USER}` with "
        f"{HEAVY_TASKS:,} tasks ({USERS * TASKS_PER_USER + HEAVY_TASKS:,} rows); rows created "
        "or deleted by a cell are put back after its endpoint, then VACUUM (ANALYZE). Priority "
        "low / medium / high on 20 / 55 / 25% of tasks; a due on 40% (half dates, half "
        "instants, from 30 days before the seed day to 89 after); 0-3 tags of "
        f"{tag_count} (`{COMMON_TAG}` on 30%), in tasks.tags and task_tags "
        "(bench/todo_bench/data.py)"
    )
    limit = target_total_s(len(results.configs))
    add(f"- Whole command: {total_s:.0f} s (target < {limit:.0f} s: {mark(total_s < limit)})")
    cell_cpus = [r.cpu for r in results.pg.values()] + [
        r.cpu for c in results.configs.values() for r in [*c.app.values(), *c.floor.values()]
    ]
    if cell_cpus:
        foreign = [cpu.foreign_cores for cpu in cell_cpus]
        add(
            f"- Other processes on the machine (not the server under load, PostgreSQL, wrk or "
            f"pgbench) used "
            f"{sum(foreign) / len(foreign):.2f} cores on average during the cells, "
            f"{max(foreign):.2f} at most; cells where they used more than "
            f"{NOISY_CORES:.2f} cores are marked {NOISY_MARK}"
        )
    add("")
    lines += target_summary(results, total_s)
    lines += floor_tables(results)
    add("### Throughput against the pgbench ceiling")
    add("")
    add(
        "App: requests/s from wrk (one connection per client, keep-alive). Ceiling: the same "
        "statement through pgbench `-M prepared`, transactions/s. Ratio = app / ceiling at "
        "16 connections (target >= 10%). Latency p50 / p99 in ms."
    )
    add("")
    add(
        "| endpoint | app @1 | app @16 | app @64 | app @256 | p50 / p99 @16 | p50 / p99 @64 "
        "| pgbench @1 | @16 | @64 | ratio @16 | >= 10% | p99 @64 < 50 ms |"
    )
    add("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|:-:|:-:|")
    for endpoint in ENDPOINTS:
        app = {c: primary.app.get((endpoint, c)) for c in APP_CONNECTIONS}
        pg = {c: results.pg.get((endpoint, c)) for c in PG_CLIENTS}
        if app[16] is None or pg[16] is None:
            continue
        a16, a64, p16 = app[16], app[64], pg[16]
        assert a16 is not None
        assert a64 is not None
        assert p16 is not None
        ratio = a16.rps / p16.tps if p16.tps else 0.0
        cells = [
            ENDPOINT_LABELS[endpoint],
            *(rate(app[c]) for c in APP_CONNECTIONS),
            f"{ms(a16.p50_ms)} / {ms(a16.p99_ms)}",
            f"{ms(a64.p50_ms)} / {ms(a64.p99_ms)}",
            *(rate(pg[c]) for c in PG_CLIENTS),
            f"{ratio:.1%}",
            mark(ratio >= TARGET_RATIO),
            mark(a64.p99_ms < TARGET_P99_MS),
        ]
        add("| " + " | ".join(cells) + " |")
    add("")
    add("### Where the CPU went (16 connections)")
    add("")
    add(
        "CPU time per request of each party, measured from /proc during the cell; the app "
        "column is all API processes. 100% = one core; the machine has "
        f"{os.cpu_count()}."
    )
    add("")
    add(
        "| endpoint | app CPU | app us/req | of it in the kernel | PostgreSQL us/req (app) "
        "| wrk us/req | machine busy "
        "| other processes, cores | PostgreSQL us/tx (pgbench) | pgbench us/tx "
        "| other processes, cores |"
    )
    add("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for endpoint in ENDPOINTS:
        a = primary.app.get((endpoint, 16))
        p = results.pg.get((endpoint, 16))
        if a is None or p is None or not a.requests or not p.transactions:
            continue
        add(
            f"| {endpoint} | {a.cpu.app_s / a.seconds:.0%} | {a.cpu.app_s / a.requests * 1e6:,.0f} "
            f"| {a.cpu.app_kernel_s / a.cpu.app_s if a.cpu.app_s else 0:.0%} "
            f"| {a.cpu.db_s / a.requests * 1e6:,.0f} | {a.cpu.client_s / a.requests * 1e6:,.0f} "
            f"| {a.cpu.machine_busy:.0%} | {a.cpu.foreign_cores:.2f} "
            f"| {p.cpu.db_s / p.transactions * 1e6:,.0f} "
            f"| {p.cpu.client_s / p.transactions * 1e6:,.0f} | {p.cpu.foreign_cores:.2f} |"
        )
    add("")
    if results.protocol:
        add("### The app's round trips, replayed by pgbench (16 clients)")
        add("")
        add(
            "Until commit 78dff1a each request of the app sent four messages in turn: the "
            "pool's pre-ping (`;`), `BEGIN`, the statement, `ROLLBACK`/`COMMIT`; it now sends "
            "the statement alone (autocommit, no pre-ping). pgbench replays the old sequence "
            "(`SELECT 1` for the ping) to show what those messages cost."
        )
        add("")
        add("| endpoint | statement alone, tps | with ping + BEGIN + end, tps | cost |")
        add("|---|---:|---:|---:|")
        for endpoint, result in results.protocol.items():
            alone = results.pg.get((endpoint, 16))
            if alone is None:
                continue
            add(
                f"| {endpoint} | {alone.tps:,.0f} | {result.tps:,.0f} | "
                f"{1 - result.tps / alone.tps:.0%} fewer |"
            )
        add("")
    add("### 256 connections")
    add("")
    add(
        f"wrk with a {WRK_TIMEOUT_S} s timeout. Errors = non-2xx responses + socket errors "
        "(connect/read/write/timeout). A pool timeout answers 503 "
        "(`urn:todo-api:database-unavailable`), so the 503 column counts them."
    )
    add("")
    add(
        "| endpoint | req/s | p50 ms | p99 ms | max ms | 503 (pool timeout) | other non-2xx "
        "| socket errors | no errors |"
    )
    add("|---|---:|---:|---:|---:|---:|---:|---:|:-:|")
    for endpoint in ENDPOINTS:
        r = primary.app.get((endpoint, 256))
        if r is None:
            continue
        socket_errors = r.error_count - r.errors["status"]
        unavailable = r.statuses.get(503, 0)
        add(
            f"| {endpoint} | {r.rps:,.0f} | {ms(r.p50_ms)} | {ms(r.p99_ms)} | "
            f"{ms(r.max_ms)} | {unavailable} | {r.errors['status'] - unavailable} | "
            f"{socket_errors} | {mark(r.error_count == 0)} |"
        )
    add("")
    lower = [
        f"{endpoint} @{c}: {dict(sorted(r.statuses.items()))}"
        for (endpoint, c), r in primary.app.items()
        if c < 256 and r.errors["status"]
    ]
    add(
        "Non-2xx below 256 connections: " + ("; ".join(lower) if lower else "none") + ". "
        f"App log: {primary.pool_timeouts} outage(s) logged with a pool `TimeoutError`, "
        f"{primary.unavailable} 'database unavailable' line(s), {primary.server_errors} "
        "unhandled error(s)."
    )
    delete_misses = [r.misses for (e, _), r in results.pg.items() if e == "delete"]
    if any(delete_misses):
        add(f"pgbench delete transactions that found no row: {sum(delete_misses)}.")
    add("")
    if results.scale_app:
        add("### Listing one user's first page: table size and user size")
        add("")
        add(
            "One connection, latency of the default page (100 tasks). Target: the median within "
            f"{TARGET_SCALE:.0%} of the 1M-row, 100-task case (the median, because other work on "
            "the machine skews the mean)."
        )
        add("")
        add(
            "| case | app p50 ms | app mean ms | app p99 ms | statement alone (pgbench) ms "
            "| within 25% |"
        )
        add("|---|---:|---:|---:|---:|:-:|")
        reference = results.scale_app.get("1M rows, 100-task user")
        for key, r in results.scale_app.items():
            ok = reference is not None and within(r.p50_ms, reference.p50_ms) <= TARGET_SCALE
            pg_ms = results.scale_pg[key].latency_ms if key in results.scale_pg else 0.0
            add(
                f"| {key} | {r.p50_ms:.2f}{noisy(r.cpu)} | {r.mean_ms:.2f} | {r.p99_ms:.2f} | "
                f"{pg_ms:.3f} | {'-' if r is reference else mark(ok)} |"
            )
        add("")
    lines += _query_table(results)
    for title, plan in results.plans.items():
        add(
            f"<details><summary>EXPLAIN (ANALYZE, BUFFERS) of the list statement: {title}</summary>"
        )
        add("")
        add("```")
        add(plan)
        add("```")
        add("")
        add("</details>")
        add("")
    lines += _bounded_costs(results)
    add("### Memory")
    add("")
    for pid, role, mb in [row for c in results.configs.values() for row in c.rss]:
        add(
            f"- {role} (pid {pid}): VmRSS {mb:.0f} MB after the run "
            f"({mark(mb < TARGET_RSS_MB)} < {TARGET_RSS_MB:.0f} MB)"
        )
    add("")
    lines += floor_gap(results)
    if results.profiles:
        add("### Profile (py-spy, 16 connections)")
        add("")
        add(
            "Sampled at 250 Hz with `py-spy record --nonblocking --subprocesses` on all API "
            "processes while wrk drives one endpoint. Shares are of the busy samples (thread-"
            "pool threads asleep waiting for work are left out). A sample belongs to the first "
            "phase whose marker is anywhere in its stack, else to the area of its deepest "
            "frame (PROFILE_PHASES and PROFILE_AREAS in bench/todo_bench/profiling.py); "
            "us/request = share x the measured CPU time of the API processes per request. "
            "Raw stacks: bench/out/profile-*.txt (collapsed format, e.g. for speedscope)."
        )
        add("")
        for profile in results.profiles:
            add(
                f"**{profile.endpoint}**: {profile.requests:,} requests, {profile.samples:,} busy "
                f"samples ({profile.idle_samples:,} idle left out); the API processes used "
                f"{profile.app_cpu_s / profile.seconds:.0%} of one core ({os.cpu_count()} "
                f"cores), {profile.cpu_us_per_request:,.0f} us of CPU per request."
            )
            add("")
            add("| category | share | us/request |")
            add("|---|---:|---:|")
            for name, share in profile.shares:
                add(f"| {name} | {share:.1%} | {share * profile.cpu_us_per_request:,.0f} |")
            add("")
            add(
                "Top functions by self time: "
                + "; ".join(f"`{name}` {share:.1%}" for name, share in profile.leaves[:8])
                + "."
            )
            add("")
    if results.notes:
        add("### Notes")
        add("")
        lines += [f"- {note}" for note in results.notes]
        add("")
    return "\n".join(lines)


def _query_table(results: Results) -> list[str]:
    """The 10,000-task user's first page per sort and filter, against its default page."""
    reference = results.scale_app.get("1M rows, 10,000-task user")
    reference_pg = results.scale_pg.get("1M rows, 10,000-task user")
    if not results.query_app:
        return []
    lines = [
        f"### The {HEAVY_TASKS:,}-task user's first page, sorted and filtered (issue 14)",
        "",
        f"As above: one connection, the first page (100 tasks) of user `{HEAVY_USER}`, now with "
        "a query string; the statement alone is the API's statement for it through pgbench, "
        "its values as parameters (bench/todo_bench/queries.py): prepared (`-M prepared`, as "
        "the API's connections with DB_PREPARED_STATEMENTS=true; after five runs PostgreSQL "
        "may keep a generic plan), and unprepared (`-M extended`, planned for its values each "
        "time, as the API's connections by default). Ratios are to the default page (first "
        "row, from the table above), prepared. Their plans (unprepared) follow.",
        "",
        "| query | tasks listed | app p50 ms | app mean ms | app p99 ms "
        "| statement alone, prepared ms | unprepared ms | p50 / default "
        "| statement / default |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    if reference is not None and reference_pg is not None:
        lines.append(
            f"| (none: newest first) | {HEAVY_TASKS:,} | {reference.p50_ms:.2f}"
            f"{noisy(reference.cpu)} | {reference.mean_ms:.2f} | {reference.p99_ms:.2f} "
            f"| {reference_pg.latency_ms:.3f} | | - | - |"
        )
    for query, r in results.query_app.items():
        pg = results.query_pg.get(query)
        pg_ms = pg.latency_ms if pg else 0.0
        unprepared = results.query_pg_unprepared.get(query)
        unprepared_ms = f"{unprepared.latency_ms:.3f}" if unprepared else "-"
        app_ratio = f"{r.p50_ms / reference.p50_ms:.2f}" if reference else "-"
        pg_ratio = (
            f"{pg_ms / reference_pg.latency_ms:.2f}"
            if reference_pg and reference_pg.latency_ms
            else "-"
        )
        lines.append(
            f"| `{query}` | {results.query_matches.get(query, 0):,} | {r.p50_ms:.2f}"
            f"{noisy(r.cpu)} | {r.mean_ms:.2f} | {r.p99_ms:.2f} | {pg_ms:.3f} | {unprepared_ms} "
            f"| {app_ratio} | {pg_ratio} |"
        )
    return [*lines, ""]


def _bounded_costs(results: Results) -> list[str]:
    """Issue 20: the worst listing's planning time; worker RSS across distinct listings."""
    worst, flood = results.worst_listing, results.flood
    if worst is None and flood is None:
        return []
    lines = ["### What one request can cost, whatever it asks (issue 20)", ""]
    if worst is not None:
        lines += [
            f"**The worst listing's planning time.** Every filter of the list at once and "
            f"{worst.tags} tags, past the first page: `GET /api/<user>/tasks?{worst.query}`, "
            "as the API sends it by default (its values bound, so planned afresh for every "
            "request; prepared statements are off unless DB_PREPARED_STATEMENTS=true), through "
            f"EXPLAIN (ANALYZE, SUMMARY): the median of {PLAN_RUNS - 1} runs on one connection "
            "after a first one. Planning is what the database spends before running the "
            "statement, paid by every request; the tags, priorities and If-Match versions are "
            "one array parameter each, so it stays flat however many are named. With offset > "
            "0, a page that finds no rows runs the count as well.",
            "",
            "| user | statement | planning ms | first, on a new connection ms | execution ms "
            f"| planned < {TARGET_PLANNING_MS:g} ms |",
            "|---|---|---:|---:|---:|:-:|",
        ]
        for t in worst.timings:
            lines.append(
                f"| `{t.owner}` | {t.statement} | {t.planning_p50:.2f} | "
                f"{t.first_planning_ms:.2f} | {t.execution_p50:.2f} "
                f"| {mark(t.planning_p50 < TARGET_PLANNING_MS)} |"
            )
        lines.append("")
    if flood is not None:
        lines += _flood_lines(flood)
    return lines


def _flood_lines(flood: ListingFlood) -> list[str]:
    cache = (
        f"kept in a cache of {flood.cache_size} (STATEMENT_CACHE_SIZE), least recently used "
        "dropped first"
        if flood.cache_size
        else "kept"
    )
    lines = [
        f"**Worker memory after {flood.requests:,} distinct listings.** Valid `GET "
        f"/api/<user>/tasks` queries, {flood.shapes:,} statement shapes among them (every "
        "combination of status, sort, priority, has_due, overdue, due_from / due_to, q and "
        f"tags; the {flood.pinned_shapes} without a due-date filter are compiled at start-up), "
        "their values varied so that no two query strings are alike, sent by "
        f"{CLIENT_THREADS} threads on new connections so that every worker gets its share. "
        f"A shape compiled on first use is {cache}: a worker's RSS should level off once "
        "the cache is full instead of growing with every new shape.",
        "",
        "| worker (pid) | CPU s during it | RSS before MB | "
        + " | ".join(f"after {count:,}" for count in flood.readings)
        + " | growth MB |",
        "|---|---:|---:|" + "---:|" * len(flood.readings) + "---:|",
    ]
    for pid, readings in flood.rss_mb.items():
        lines.append(
            f"| {pid} | {flood.cpu_s.get(pid, 0.0):.1f} | "
            + " | ".join(f"{mb:.0f}" for mb in readings)
            + f" | {readings[-1] - readings[0]:+.0f} |"
        )
    latencies = sorted(flood.latencies_ms) or [0.0]
    p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
    lines += [
        "",
        f"{flood.requests:,} requests in {flood.seconds:.1f} s "
        f"({flood.requests / flood.seconds if flood.seconds else 0:,.0f}/s), p50 "
        f"{statistics.median(latencies):.1f} ms, p99 {p99:.1f} ms; not 200: {flood.not_ok} "
        f"({mark(flood.not_ok == 0)})"
        + (f", e.g. {'; '.join(flood.failures)}" if flood.failures else "")
        + ".",
    ]
    if flood.first_ms and flood.repeated_ms:
        lines[-1] += (
            f" A listing whose shape the worker had dropped since, on a kept-alive connection: "
            f"p50 {statistics.median(flood.first_ms):.1f} ms the first time (built and "
            f"compiled), {statistics.median(flood.repeated_ms):.1f} ms repeated (median of "
            f"{SHAPE_REPEATS}), over {len(flood.first_ms)} shapes."
        )
    return [*lines, ""]


def write_doc(section: str, doc: Path) -> None:
    block = f"{BEGIN_MARK}\n{section}\n{END_MARK}"
    if doc.exists():
        text = doc.read_text()
        if BEGIN_MARK in text and END_MARK in text:
            head, rest = text.split(BEGIN_MARK, 1)
            tail = rest.split(END_MARK, 1)[1]
            doc.write_text(head + block + tail)
            return
        doc.write_text(text.rstrip("\n") + "\n\n" + block + "\n")
        return
    doc.parent.mkdir(parents=True, exist_ok=True)
    doc.write_text(
        "# Benchmarks\n\nRun `make bench` (see bench/run.py). The section between the markers "
        "is rewritten by each run.\n\n" + block + "\n"
    )
