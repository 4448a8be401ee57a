"""What one request can cost whatever it asks (issue 20): the worst listing's planning time,
and the API workers' memory after many distinct listings.

- `worst_listing_plans`: the listing with every filter at once and the most tags a request
  may name, for the 10,000-task user and an ordinary one, as the API sends it
  (todo_bench.queries: list_tasks on a stand-in database, compiled as the API's PostgreSQL
  database compiles it), EXPLAIN (ANALYZE, SUMMARY)'d with its values bound, as the API's
  connections send it by default: planned afresh for each request.
- `listing_flood`: each worker's RSS before, during and after thousands of distinct valid
  `GET /api/<user>/tasks` queries, one statement shape each (every combination of status,
  sort, priority, due-date filters, search and tags), sent from a few threads on new
  connections so that every worker gets its share; then the latency of a listing whose
  shape the worker no longer has compiled against the same listing repeated.
"""

import http.client
import itertools
import os
import random
import statistics
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import date, timedelta
from typing import Any
from urllib.parse import urlencode

from todo_bench.cluster import Database
from todo_bench.common import log
from todo_bench.data import HEAVY_USER, TAG_NAMES, USERS
from todo_bench.procfs import cpu_ticks, rss_mb
from todo_bench.queries import ListCase, list_statements, unprepared
from todo_bench.servers import Api

ORDINARY_USER = "user04242"
# EXPLAIN runs of each statement on one connection: the first (its catalog caches cold, as
# on a connection the pool has just opened), then the rest, whose median is reported.
PLAN_RUNS = 6
DISTINCT_LISTINGS = 10_000
READINGS = 4  # RSS readings during the flood, after each quarter
CLIENT_THREADS = 4
REQUEST_TIMEOUT_S = 30
# First-time against repeated shape: samples, and repeats of each on the same connection.
SHAPE_SAMPLES = 20
SHAPE_REPEATS = 3

_WORDS = ("receipts", "statement", "shop", "folder", "charger", "meeting", "room", "notes")
_PRIORITIES = ("low", "medium", "high", "high,medium", "low,high", "low,medium", "low,medium,high")
_ZONES = ("UTC", "Europe/Paris", "America/New_York", "Asia/Tokyo", "Australia/Sydney")


@dataclass
class PlanTiming:
    """EXPLAIN (ANALYZE, SUMMARY) of one statement of the worst listing, in ms."""

    owner: str
    statement: str  # "page" or "count"
    first_planning_ms: float
    planning_ms: list[float]
    execution_ms: list[float]

    @property
    def planning_p50(self) -> float:
        return statistics.median(self.planning_ms)

    @property
    def execution_p50(self) -> float:
        return statistics.median(self.execution_ms)


@dataclass
class WorstListing:
    query: str
    tags: int
    timings: list[PlanTiming] = field(default_factory=list)


@dataclass
class ListingFlood:
    """Distinct listings sent to the API, and each worker's RSS along the way."""

    requests: int = 0
    shapes: int = 0
    pinned_shapes: int = 0  # shapes without a due-date filter: compiled at the API's start-up
    seconds: float = 0.0
    statuses: Counter[int] = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)
    latencies_ms: list[float] = field(default_factory=list)
    readings: list[int] = field(default_factory=list)  # requests sent at each RSS reading
    rss_mb: dict[int, list[float]] = field(default_factory=dict)  # worker pid -> readings
    cpu_s: dict[int, float] = field(default_factory=dict)  # worker pid -> CPU during it
    first_ms: list[float] = field(default_factory=list)
    repeated_ms: list[float] = field(default_factory=list)
    cache_size: int | None = None

    @property
    def not_ok(self) -> int:
        return sum(count for status, count in self.statuses.items() if status != 200)


def worst_case(today: date) -> ListCase:
    """Every filter of the list at once, the most tags it takes, past the first page."""
    from todo_api.db.models import TAGS_MAX_COUNT

    # Distinct keys (tags are compared ignoring case): the data's tags, then made-up ones.
    names = {name.casefold(): name for name in TAG_NAMES}
    fillers = (f"label{index:02d}" for index in itertools.count(1))
    tags = tuple(itertools.islice(itertools.chain(names.values(), fillers), TAGS_MAX_COUNT))
    case = ListCase(
        query="",
        sort="-due",
        status="pending",
        search="receipts",
        priorities=("low", "medium", "high"),
        tz="America/New_York",
        has_due=True,
        due_from=today - timedelta(days=30),
        due_to=today + timedelta(days=90),
        overdue=False,
        tags=tags,
        offset=100,
    )
    query = {
        "status": case.status,
        "q": case.search,
        "priority": ",".join(case.priorities),
        "has_due": "true",
        "due_from": str(case.due_from),
        "due_to": str(case.due_to),
        "overdue": "false",
        "tz": case.tz,
        "sort": case.sort,
        "tags": ",".join(case.tags),
        "offset": str(case.offset),
    }
    return replace(case, query=urlencode(query, safe=",/"))


def worst_listing_plans(db: Database) -> WorstListing:
    """Planning and execution time of the worst listing's statements, per owner."""
    case = worst_case(date.today())
    worst = WorstListing(case.query, len(case.tags))
    for owner in (HEAVY_USER, ORDINARY_USER):
        # The stand-in finds no rows, so with offset > 0 the API's count statement follows
        # the page: what a page past the end runs.
        statements = list_statements(case, owner)
        with unprepared(db) as connection:
            for name, statement in zip(("page", "count"), statements, strict=False):
                planning, execution = [], []
                for _ in range(PLAN_RUNS):
                    row = connection.execute(
                        f"EXPLAIN (ANALYZE, SUMMARY, FORMAT JSON) {statement.sql}",
                        statement.params,
                    ).fetchone()
                    assert row is not None
                    plan: dict[str, Any] = row[0][0]
                    planning.append(float(plan["Planning Time"]))
                    execution.append(float(plan["Execution Time"]))
                timing = PlanTiming(owner, name, planning[0], planning[1:], execution[1:])
                worst.timings.append(timing)
                log(
                    f"worst listing, {owner}, {name}: planning {timing.planning_p50:.2f} ms "
                    f"(first {timing.first_planning_ms:.2f} ms), execution "
                    f"{timing.execution_p50:.2f} ms"
                )
    return worst


@dataclass(frozen=True)
class _Shape:
    status: str
    sort: str
    priority: bool
    has_due: str | None
    overdue: str | None
    due_range: tuple[bool, bool]
    search: bool
    tags: bool

    @property
    def pinned(self) -> bool:
        return self.has_due is None and self.overdue is None and self.due_range == (False, False)


def _shapes() -> list[_Shape]:
    """Every combination of the list's filters and sorts, in a fixed shuffled order."""
    from todo_api.db.tasks import TaskSort, TaskStatus

    flags = (False, True)
    maybe = (None, "true", "false")
    shapes = [
        _Shape(*combination)
        for combination in itertools.product(
            [status.value for status in TaskStatus],
            [sort.value for sort in TaskSort],
            flags,
            maybe,
            maybe,
            list(itertools.product(flags, flags)),
            flags,
            flags,
        )
    ]
    random.Random(20).shuffle(shapes)
    return shapes


def _path(shape: _Shape, index: int, today: date, rounds: int = 0) -> str:
    """GET /api/<user>/tasks for `shape`, its values varied by `index`."""
    query: dict[str, str] = {"status": shape.status, "sort": shape.sort}
    if shape.priority:
        query["priority"] = _PRIORITIES[index % len(_PRIORITIES)]
    if shape.has_due is not None:
        query["has_due"] = shape.has_due
    if shape.overdue is not None:
        query["overdue"] = shape.overdue
    start = today + timedelta(days=index % 120 - 30)
    if shape.due_range[0]:
        query["due_from"] = str(start)
    if shape.due_range[1]:
        query["due_to"] = str(start + timedelta(days=index % 45))
    if shape.due_range != (False, False) or shape.overdue is not None:
        query["tz"] = _ZONES[index % len(_ZONES)]
    if shape.search:
        query["q"] = _WORDS[index % len(_WORDS)]
    if shape.tags:
        count = 1 + index % 3
        query["tags"] = ",".join(
            TAG_NAMES[(index + step) % len(TAG_NAMES)] for step in range(count)
        )
    if rounds:
        query["offset"] = str(rounds)  # past every shape once: the values still differ
    owner = f"user{index * 7919 % USERS + 1:05d}"
    return f"/api/{owner}/tasks?{urlencode(query, safe=',/')}"


def distinct_listings(count: int, today: date) -> Iterator[tuple[_Shape, str]]:
    shapes = _shapes()
    for index in range(count):
        rounds, position = divmod(index, len(shapes))
        shape = shapes[position]
        yield shape, _path(shape, index, today, rounds)


def _get(port: int, path: str) -> tuple[int, float]:
    """Status (0 if no answer) and milliseconds, on a new connection: any worker takes it."""
    started = time.perf_counter()
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=REQUEST_TIMEOUT_S)
    try:
        connection.request("GET", path, headers={"Connection": "close"})
        response = connection.getresponse()
        response.read()
        status = response.status
    except (OSError, http.client.HTTPException):
        status = 0
    finally:
        connection.close()
    return status, (time.perf_counter() - started) * 1000


def _timed(connection: http.client.HTTPConnection, path: str) -> float:
    started = time.perf_counter()
    connection.request("GET", path)
    response = connection.getresponse()
    response.read()
    if response.status != 200:
        raise http.client.HTTPException(f"GET {path}: {response.status}")
    return (time.perf_counter() - started) * 1000


def _statement_cache_size() -> int | None:
    """The API's bound on statements compiled on first use, if this checkout has one."""
    try:
        from todo_api.db.database import STATEMENT_CACHE_SIZE
    except ImportError:
        return None
    return STATEMENT_CACHE_SIZE


def listing_flood(api: Api, count: int = DISTINCT_LISTINGS) -> ListingFlood:
    """Worker RSS across `count` distinct listings; then first-time against repeated shape."""
    flood = ListingFlood(cache_size=_statement_cache_size())
    today = date.today()
    listings = list(distinct_listings(count, today))
    flood.requests = len(listings)
    shapes = {shape for shape, _ in listings}
    flood.shapes = len(shapes)
    flood.pinned_shapes = sum(shape.pinned for shape in shapes)
    workers = api.workers()
    flood.rss_mb = {pid: [rss_mb(pid) or 0.0] for pid in workers}
    ticks = cpu_ticks(workers)
    quarter = -(-len(listings) // READINGS)
    started = time.monotonic()
    with ThreadPoolExecutor(CLIENT_THREADS) as pool:
        for first in range(0, len(listings), quarter):
            batch = [path for _, path in listings[first : first + quarter]]
            for path, (status, ms) in zip(
                batch, pool.map(lambda path: _get(api.port, path), batch), strict=True
            ):
                flood.statuses[status] += 1
                flood.latencies_ms.append(ms)
                if status != 200 and len(flood.failures) < 5:
                    flood.failures.append(f"{status} GET {path}")
            flood.readings.append(first + len(batch))
            for pid in workers:
                flood.rss_mb[pid].append(rss_mb(pid) or 0.0)
            log(
                f"{first + len(batch):,} distinct listings: RSS "
                + ", ".join(f"{flood.rss_mb[pid][-1]:.0f}" for pid in workers)
                + " MB"
            )
    flood.seconds = time.monotonic() - started
    after = cpu_ticks(workers)
    hertz = os.sysconf("SC_CLK_TCK")
    flood.cpu_s = {pid: (after.get(pid, 0) - ticks.get(pid, 0)) / hertz for pid in workers}
    # Shapes of the first quarter have left every worker's cache since (unless compiled at
    # start-up): asked again with other values, each is compiled anew, then repeated.
    evicted = [shape for shape, _ in listings[:quarter] if not shape.pinned][:SHAPE_SAMPLES]
    for sample, shape in enumerate(evicted):
        path = _path(shape, count + sample, today)
        connection = http.client.HTTPConnection("127.0.0.1", api.port, timeout=REQUEST_TIMEOUT_S)
        try:
            _timed(connection, f"/api/{ORDINARY_USER}/tasks")  # connected, worker chosen
            flood.first_ms.append(_timed(connection, path))
            flood.repeated_ms.append(
                statistics.median(_timed(connection, path) for _ in range(SHAPE_REPEATS))
            )
        except (OSError, http.client.HTTPException) as exc:
            flood.failures.append(f"first-time shape: {exc}")
        finally:
            connection.close()
    log(
        f"{flood.requests:,} distinct listings ({flood.shapes:,} shapes) in {flood.seconds:.1f} s, "
        f"{flood.not_ok} not 200; first-time shape p50 "
        f"{statistics.median(flood.first_ms or [0]):.1f} ms, repeated "
        f"{statistics.median(flood.repeated_ms or [0]):.1f} ms"
    )
    return flood
