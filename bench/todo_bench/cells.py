"""The cells of a run: one endpoint against the API, the floor and pgbench; the scale check."""

import argparse
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from todo_bench.bounded import ListingFlood, WorstListing
from todo_bench.ceiling import PgResult, pgbench, protocol_script
from todo_bench.cluster import Database, with_search_path
from todo_bench.common import (
    APP_CONNECTIONS,
    FLOOR_CONNECTIONS,
    PG_CLIENTS,
    PGBENCH_DIR,
    PROTOCOL_ENDPOINTS,
    log,
)
from todo_bench.data import (
    HEAVY_USER,
    SMALL_SCHEMA,
    SMALL_USERS,
    USERS,
    pool_remaining,
    tidy,
    top_up_pool,
)
from todo_bench.load import WrkResult, wrk
from todo_bench.profiling import Profile
from todo_bench.queries import CASES, list_statement, matching
from todo_bench.servers import Api, Floor, Server


@dataclass
class Config:
    """One worker count: the cells of the API and of the floor, and what the API left behind."""

    workers: int
    app: dict[tuple[str, int], WrkResult] = field(default_factory=dict)
    floor: dict[tuple[str, int], WrkResult] = field(default_factory=dict)
    rss: list[tuple[int, str, float]] = field(default_factory=list)
    pool_timeouts: int = 0
    unavailable: int = 0
    server_errors: int = 0
    # How the floor's answers differ from the API's for the same requests (none expected).
    parity: list[str] = field(default_factory=list)


@dataclass
class Results:
    configs: dict[int, Config] = field(default_factory=dict)
    pg: dict[tuple[str, int], PgResult] = field(default_factory=dict)
    protocol: dict[str, PgResult] = field(default_factory=dict)
    scale_app: dict[str, WrkResult] = field(default_factory=dict)
    scale_pg: dict[str, PgResult] = field(default_factory=dict)
    # The 10,000-task user's first page by query string (todo_bench.queries.CASES): the API
    # at one connection, its statement through pgbench, and how many tasks it lists.
    query_app: dict[str, WrkResult] = field(default_factory=dict)
    query_pg: dict[str, PgResult] = field(default_factory=dict)
    # The same statement unprepared (pgbench -M extended), as the API sends it by default.
    query_pg_unprepared: dict[str, PgResult] = field(default_factory=dict)
    query_matches: dict[str, int] = field(default_factory=dict)
    plans: dict[str, str] = field(default_factory=dict)
    # Issue 20's bounded costs (todo_bench.bounded): the worst listing's planning time, and
    # the workers' RSS across distinct listings.
    worst_listing: WorstListing | None = None
    flood: ListingFlood | None = None
    profiles: list[Profile] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def primary(self) -> Config:
        """The production configuration (the most workers): what issue 4's tables show."""
        return self.configs[max(self.configs)] if self.configs else Config(0)


def wrk_args(endpoint: str, connections: int, pool_size: int) -> list[str | int]:
    if endpoint == "list":
        return [USERS, "user"]
    if endpoint == "delete":
        return [pool_size, 1 if connections == 1 else 2]
    return []


def _fetch(url: str) -> tuple[int, dict[str, str], bytes]:
    """Status, headers by lower-case name, body."""
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            status, headers, body = response.status, response.headers, response.read()
    except urllib.error.HTTPError as error:
        status, headers, body = error.code, error.headers, error.read()
    return status, {name.lower(): value for name, value in headers.items()}, body


def compare_answers(api: Server, floor: Server, out: Path) -> list[str]:
    """Differences between the two servers' answers to the same reads; [] when they agree.

    The floor stands for the API only if it does the same work: the same rows, encoded the
    same way, behind the same status and headers.
    """
    differences = []
    for path in ("/api/user00042/tasks", "/api/user00042/tasks/42", "/api/user00042/tasks/43"):
        ours, theirs = _fetch(api.base + path), _fetch(floor.base + path)
        if ours[0] != theirs[0]:
            differences.append(
                f"GET {path}: status {ours[0]} from the API, {theirs[0]} from the floor"
            )
            continue
        for header in ("etag", "x-total-count", "content-type"):
            if ours[0] == 200 and ours[1].get(header) != theirs[1].get(header):
                differences.append(
                    f"GET {path}: {header} {ours[1].get(header)!r} from the API, "
                    f"{theirs[1].get(header)!r} from the floor"
                )
        if ours[0] == 200 and ours[2] != theirs[2]:
            name = path.strip("/").replace("/", "-")
            (out / f"parity-api-{name}.json").write_bytes(ours[2])
            (out / f"parity-floor-{name}.json").write_bytes(theirs[2])
            differences.append(f"GET {path}: the bodies differ ({out}/parity-*-{name}.json)")
    return differences


def _cell(
    server: Server,
    db: Database,
    endpoint: str,
    connections: int,
    args: argparse.Namespace,
    label: str,
) -> WrkResult:
    if endpoint == "delete":
        top_up_pool(db, args.pool_size)
    result = wrk(
        server,
        db,
        endpoint,
        connections,
        args.duration,
        args.out,
        label,
        wrk_args(endpoint, connections, args.pool_size),
    )
    log(
        f"{endpoint} {server.role} w={server.workers_wanted} c={connections}: "
        f"{result.rps:,.0f} req/s, p50 {result.p50_ms:.1f} ms, p99 {result.p99_ms:.1f} ms, "
        f"errors {result.errors}"
    )
    return result


def bench_endpoint(
    endpoint: str,
    config: Config,
    api: Api,
    floor: Floor | None,
    db: Database,
    pg_bin: Path,
    args: argparse.Namespace,
    results: Results,
    *,
    ceiling: bool,
    single: bool,
) -> None:
    """The endpoint's cells: API and floor in turn at each connection count, then pgbench.

    Turn by turn, so that a change in what else the machine is doing hits both alike. With
    `single`, the API also gets a cell at one connection, which one worker serves whatever
    their number, so one worker count is enough.
    """
    out: Path = args.out
    pool_size: int = args.pool_size
    is_delete = endpoint == "delete"
    tag = f"w{config.workers}"
    if is_delete:
        log(f"filling the delete pool ({pool_size:,} rows)")
    for server in (api, floor):
        if server is None:
            continue
        if is_delete:
            top_up_pool(db, pool_size)
        log(f"{endpoint}: {server.role} warm-up {args.warmup:g}s at 64 connections")
        prefix = "" if server is api else "floor-"
        warm_args = wrk_args(endpoint, 64, pool_size)
        wrk(
            server,
            db,
            endpoint,
            64,
            args.warmup,
            out,
            f"{prefix}{endpoint}-{tag}-warmup",
            warm_args,
        )
    for connections in APP_CONNECTIONS if single else FLOOR_CONNECTIONS:
        label = f"{endpoint}-{tag}-c{connections}"
        config.app[endpoint, connections] = _cell(api, db, endpoint, connections, args, label)
        if floor is not None and connections in FLOOR_CONNECTIONS:
            result = _cell(floor, db, endpoint, connections, args, f"floor-{label}")
            config.floor[endpoint, connections] = result
    if ceiling:
        run_ceiling(endpoint, api, db, pg_bin, args, results)
    if endpoint in {"create", "replace", "toggle", "delete"}:
        tidy(db, endpoint)


def run_ceiling(
    endpoint: str,
    api: Api,
    db: Database,
    pg_bin: Path,
    args: argparse.Namespace,
    results: Results,
) -> None:
    """pgbench with the endpoint's statement; the API is idle but its CPU is still watched."""
    out: Path = args.out
    pool_size: int = args.pool_size
    is_delete = endpoint == "delete"
    for clients in PG_CLIENTS:
        defines: dict[str, int] = {}
        if endpoint == "list":
            defines = {"users": USERS}
        if is_delete:
            top_up_pool(db, pool_size)
            defines = {"n": 0, "slice": pool_size // clients}
        result_pg = pgbench(
            db,
            pg_bin,
            PGBENCH_DIR / f"{endpoint}.sql",
            clients,
            args.duration,
            out,
            f"{endpoint}-c{clients}",
            defines,
            server=api,
        )
        if is_delete:
            deleted = pool_size - pool_remaining(db, pool_size)
            result_pg.misses = max(result_pg.transactions - deleted, 0)
        results.pg[endpoint, clients] = result_pg
        log(
            f"{endpoint} pgbench c={clients}: {result_pg.tps:,.0f} tps, "
            f"{result_pg.latency_ms:.2f} ms"
        )
    if endpoint in PROTOCOL_ENDPOINTS:
        defines = {"users": USERS} if endpoint == "list" else {}
        results.protocol[endpoint] = pgbench(
            db,
            pg_bin,
            protocol_script(endpoint, out),
            16,
            args.duration,
            out,
            f"protocol-{endpoint}-c16",
            defines,
            server=api,
        )


def scale_check(
    api: Api, db: Database, pg_bin: Path, args: argparse.Namespace, results: Results
) -> None:
    out: Path = args.out
    small_url = with_search_path(db.url, SMALL_SCHEMA)
    small = Api("small", small_url, out, api.workers_wanted)
    try:
        small.start()
        wrk(small, db, "list", 16, args.warmup, out, "scale-warmup-1k", [SMALL_USERS, "user"])
        results.scale_app["1k rows, 100-task user"] = wrk(
            small, db, "list", 1, args.duration, out, "scale-1k", [SMALL_USERS, "user"]
        )
    finally:
        small.stop()
    wrk(api, db, "list", 16, args.warmup, out, "scale-warmup-heavy", [0, HEAVY_USER])
    results.scale_app["1M rows, 100-task user"] = wrk(
        api, db, "list", 1, args.duration, out, "scale-1m", [USERS, "user"]
    )
    results.scale_app["1M rows, 10,000-task user"] = wrk(
        api, db, "list", 1, args.duration, out, "scale-heavy", [0, HEAVY_USER]
    )
    list_sql = PGBENCH_DIR / "list.sql"
    results.scale_pg["1k rows, 100-task user"] = pgbench(
        db,
        pg_bin,
        list_sql,
        1,
        args.duration,
        out,
        "scale-1k",
        {"users": SMALL_USERS},
        url=small_url,
    )
    results.scale_pg["1M rows, 100-task user"] = pgbench(
        db, pg_bin, list_sql, 1, args.duration, out, "scale-1m", {"users": USERS}
    )
    results.scale_pg["1M rows, 10,000-task user"] = pgbench(
        db, pg_bin, PGBENCH_DIR / "list_heavy.sql", 1, args.duration, out, "scale-heavy"
    )
    for key, result in results.scale_app.items():
        log(
            f"scale {key}: app p50 {result.p50_ms:.2f} ms, mean {result.mean_ms:.2f} ms, "
            f"pgbench {results.scale_pg[key].latency_ms:.3f} ms"
        )


def query_check(
    api: Api, db: Database, pg_bin: Path, args: argparse.Namespace, results: Results
) -> None:
    """The 10,000-task user's first page with each sort and filter of issue 14.

    As the scale check measures the default page: one connection after a warm-up at 16,
    then the API's statement for it alone through pgbench at one client, prepared (as with
    DB_PREPARED_STATEMENTS=true) and unprepared (as the API's connections by default).
    """
    out: Path = args.out
    for case in CASES:
        script_args: list[str | int] = [0, HEAVY_USER, case.query]
        wrk(api, db, "list", 16, args.warmup, out, f"query-warmup-{case.slug}", script_args)
        app = wrk(api, db, "list", 1, args.duration, out, f"query-{case.slug}", script_args)
        script = out / f"pgbench-list-{case.slug}.sql"
        defines = list_statement(case).pgbench_script(
            script, f"GET /api/{HEAVY_USER}/tasks?{case.query} as the API sends it"
        )
        pg = pgbench(db, pg_bin, script, 1, args.duration, out, f"query-{case.slug}", defines)
        unprepared = pgbench(
            db,
            pg_bin,
            script,
            1,
            args.duration,
            out,
            f"query-{case.slug}-unprepared",
            defines,
            mode="extended",
        )
        results.query_app[case.query] = app
        results.query_pg[case.query] = pg
        results.query_pg_unprepared[case.query] = unprepared
        results.query_matches[case.query] = matching(db, case)
        log(
            f"{HEAVY_USER} ?{case.query}: app p50 {app.p50_ms:.2f} ms, mean {app.mean_ms:.2f} "
            f"ms, pgbench {pg.latency_ms:.3f} ms prepared, {unprepared.latency_ms:.3f} ms "
            f"unprepared, {results.query_matches[case.query]:,} tasks"
        )
