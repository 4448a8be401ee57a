"""The targets: issue 4's against the pgbench ceiling, issue 12's against the floor app."""

from todo_bench.cells import Config, Results
from todo_bench.common import (
    CLEAN_CONNECTIONS,
    ENDPOINTS,
    FLOOR_CONNECTIONS,
    FLOOR_CONNECTIONS_CHECKED,
    TARGET_FLOOR_P99,
    TARGET_FLOOR_RPS,
    TARGET_P99_MS,
    TARGET_RATIO,
    TARGET_RSS_MB,
    TARGET_SCALE,
    TARGET_TOTAL_EXTRA_S,
    TARGET_TOTAL_S,
)
from todo_bench.formatting import error_summary, mark, ms, rate, us_per_request, within
from todo_bench.load import WrkResult


def target_total_s(configs: int) -> float:
    return TARGET_TOTAL_S + TARGET_TOTAL_EXTRA_S * max(configs - 1, 0)


def _needed(fraction: float) -> str:
    """How much more is needed, with a decimal when the miss would round to nothing."""
    return f"{fraction:+.0%}" if fraction >= 0.095 else f"{fraction:+.1%}"


def _count(ok: int, of: int, misses: list[str], unit: str) -> str:
    return f"{ok}/{of} {unit}" + (f" (not: {'; '.join(misses)})" if misses else "")


def _issue4(results: Results, total_s: float) -> list[str]:
    app = results.primary.app
    endpoints = [e for e in ENDPOINTS if (e, 16) in app and (e, 16) in results.pg]
    ratio_ok = [e for e in endpoints if app[e, 16].rps >= TARGET_RATIO * results.pg[e, 16].tps]
    p99_ok = [e for e in endpoints if app[e, 64].p99_ms < TARGET_P99_MS]
    clean = [e for e in endpoints if (e, 256) in app and not app[e, 256].error_count]
    reference = results.scale_app.get("1M rows, 100-task user")
    scale = [
        f"{key}: {mark(within(r.p50_ms, reference.p50_ms) <= TARGET_SCALE)}"
        for key, r in results.scale_app.items()
        if reference is not None and r is not reference
    ]
    rss = [mb for config in results.configs.values() for _, _, mb in config.rss]
    limit = target_total_s(len(results.configs))

    def names(ok: list[str]) -> str:
        missing = [e for e in endpoints if e not in ok]
        return f"{len(ok)}/{len(endpoints)}" + (f" (not: {', '.join(missing)})" if missing else "")

    return [
        f"- Throughput >= {TARGET_RATIO:.0%} of the pgbench ceiling at 16 connections: "
        f"{names(ratio_ok)} endpoints",
        f"- p99 < {TARGET_P99_MS:.0f} ms at 64 connections: {names(p99_ok)} endpoints",
        f"- No errors and no pool timeouts at 256 connections: {names(clean)} endpoints",
        "- First page of a list as fast (within 25%) as for a 100-task user on 1M rows: "
        + ("; ".join(scale) if scale else "not run"),
        f"- Resident memory per worker < {TARGET_RSS_MB:.0f} MB: "
        + (f"{mark(max(rss) < TARGET_RSS_MB)} (largest {max(rss):.0f} MB)" if rss else "not read"),
        f"- Whole command < {limit / 60:.0f} minutes ({TARGET_TOTAL_S / 60:.0f}, plus "
        f"{TARGET_TOTAL_EXTRA_S / 60:.0f} per further worker count): "
        f"{mark(total_s < limit)} ({total_s:.0f} s)",
    ]


def _floor_misses(config: Config) -> tuple[list[str], list[str], int]:
    """Cells below the floor targets, each with what it would take; and how many were checked."""
    slow, jittery = [], []
    checked = 0
    for endpoint in ENDPOINTS:
        for connections in FLOOR_CONNECTIONS_CHECKED:
            ours = config.app.get((endpoint, connections))
            floor = config.floor.get((endpoint, connections))
            if ours is None or floor is None or not floor.rps or not floor.p99_ms:
                continue
            checked += 1
            ratio = ours.rps / floor.rps
            if ratio < TARGET_FLOOR_RPS:
                needed = TARGET_FLOOR_RPS / ratio - 1 if ratio else float("inf")
                slow.append(
                    f"{endpoint} @{connections} {ratio:.2f}x, needs {_needed(needed)} req/s"
                )
            p99 = ours.p99_ms / floor.p99_ms
            if p99 > TARGET_FLOOR_P99:
                jittery.append(
                    f"{endpoint} @{connections} {p99:.2f}x, p99 must fall "
                    f"{1 - TARGET_FLOOR_P99 / p99:.0%} ({ms(ours.p99_ms)} -> "
                    f"{ms(TARGET_FLOOR_P99 * floor.p99_ms)} ms)"
                )
    return slow, jittery, checked


def _issue12(config: Config, results: Results) -> list[str]:
    who = f"WORKERS={config.workers}"
    lines = []
    slow, jittery, checked = _floor_misses(config)
    if checked:
        cells = f"cells at {' and '.join(map(str, FLOOR_CONNECTIONS_CHECKED))} connections"
        lines += [
            f"- {who}: throughput >= {TARGET_FLOOR_RPS:g} x the floor's: "
            + _count(checked - len(slow), checked, slow, cells),
            f"- {who}: p99 <= {TARGET_FLOOR_P99:g} x the floor's: "
            + _count(checked - len(jittery), checked, jittery, cells),
        ]
    below, measured = [], 0
    for endpoint in ENDPOINTS:
        ours, ceiling = config.app.get((endpoint, 16)), results.pg.get((endpoint, 16))
        if ours is None or ceiling is None or not ceiling.tps:
            continue
        measured += 1
        share = ours.rps / ceiling.tps
        if share < TARGET_RATIO:
            needed = TARGET_RATIO / share - 1 if share else float("inf")
            below.append(f"{endpoint} {share:.1%}, needs {_needed(needed)} req/s")
    if measured:
        lines.append(
            f"- {who}: throughput >= {TARGET_RATIO:.0%} of the pgbench ceiling at 16 "
            "connections: " + _count(measured - len(below), measured, below, "endpoints")
        )
    dirty, seen = [], 0
    for endpoint in ENDPOINTS:
        for connections in CLEAN_CONNECTIONS:
            ours = config.app.get((endpoint, connections))
            if ours is None:
                continue
            seen += 1
            if ours.error_count:
                dirty.append(f"{endpoint} @{connections}: {error_summary(ours)}")
    if seen:
        cells = f"cells at {' and '.join(map(str, CLEAN_CONNECTIONS))} connections"
        lines.append(f"- {who}: no errors: " + _count(seen - len(dirty), seen, dirty, cells))
    return lines


def target_summary(results: Results, total_s: float) -> list[str]:
    """One line per target: how many endpoints (or cells) meet it, and by how much others miss."""
    lines = ["", "### Targets", "", *_issue4(results, total_s), ""]
    floor_lines = [
        line for w in sorted(results.configs) for line in _issue12(results.configs[w], results)
    ]
    if floor_lines:
        lines += [
            "Issue 12, against the floor app (the same work on the bare driver, below) and the "
            "ceiling, per worker count; a miss says how far it is from the target:",
            "",
            *floor_lines,
            "",
        ]
    return lines


def _ratio(value: float, ok: bool) -> str:
    return f"{value:.2f}" if ok else f"**{value:.2f}**"


def _floor_row(
    endpoint: str, connections: int, ours: WrkResult, floor: WrkResult, results: Results
) -> str:
    checked = connections in FLOOR_CONNECTIONS_CHECKED
    throughput = ours.rps / floor.rps if floor.rps else 0.0
    p99 = ours.p99_ms / floor.p99_ms if floor.p99_ms else float("inf")
    ceiling = results.pg.get((endpoint, connections))
    share = f"{ours.rps / ceiling.tps:.1%}" if ceiling and ceiling.tps else "-"
    clean = ours.error_count == 0 or connections not in CLEAN_CONNECTIONS
    errors = str(ours.error_count) if clean else f"**{ours.error_count}**"
    cells = [
        endpoint,
        str(connections),
        rate(ours),
        rate(floor),
        _ratio(throughput, not checked or throughput >= TARGET_FLOOR_RPS),
        ms(ours.p99_ms),
        ms(floor.p99_ms),
        _ratio(p99, not checked or p99 <= TARGET_FLOOR_P99),
        errors,
        str(floor.error_count),
        share,
        f"{us_per_request(ours):,.0f} / {us_per_request(floor):,.0f}",
    ]
    return "| " + " | ".join(cells) + " |"


def floor_tables(results: Results) -> list[str]:
    """Per worker count: API and floor side by side, cell by cell; misses in bold."""
    lines: list[str] = []
    for workers in sorted(results.configs):
        config = results.configs[workers]
        if not config.floor:
            continue
        lines += [f"### Against the floor app, WORKERS={workers}", ""]
        lines += [
            "The same wrk scripts and data against the API (ours) and the floor, cell by cell "
            "in turn. Ratios are ours / floor; targets at 16 and 64 connections: throughput "
            f">= {TARGET_FLOOR_RPS:g}, p99 <= {TARGET_FLOOR_P99:g}; errors (non-2xx + socket) "
            "0 at 64 and 256. Ceiling: pgbench with as many clients (none at 256). CPU: "
            "microseconds of server CPU per request, all processes. Misses are in bold.",
            "",
            "| endpoint | conns | ours req/s | floor req/s | ours / floor | p99 ours ms "
            "| p99 floor ms | p99 ours / floor | errors ours | errors floor | ours / ceiling "
            "| CPU us/req ours / floor |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for endpoint in ENDPOINTS:
            for connections in FLOOR_CONNECTIONS:
                ours = config.app.get((endpoint, connections))
                floor = config.floor.get((endpoint, connections))
                if ours is not None and floor is not None:
                    lines.append(_floor_row(endpoint, connections, ours, floor, results))
        lines.append("")
        if config.parity:
            lines.append("The floor's answers differ from the API's: " + "; ".join(config.parity))
        else:
            lines.append(
                "The floor answered the same reads (a list page, a task, a missing task) with "
                "the same status, bytes, ETag and X-Total-Count as the API."
            )
        lines.append("")
    return lines


def floor_gap(results: Results) -> list[str]:
    """Where the API's extra CPU per request goes: the 16-connection cells, and the profile."""
    config = results.primary
    profiles = {profile.endpoint: profile for profile in results.profiles}
    rows = []
    for endpoint in ENDPOINTS:
        ours, floor = config.app.get((endpoint, 16)), config.floor.get((endpoint, 16))
        if ours is None or floor is None:
            continue
        extra = us_per_request(ours) - us_per_request(floor)
        profile = profiles.get(endpoint)
        largest = (
            "; ".join(
                f"{name} {share * profile.cpu_us_per_request:,.0f}"
                for name, share in profile.shares[:3]
            )
            if profile
            else "not profiled"
        )
        rows.append(
            f"| {endpoint} | {us_per_request(ours):,.0f} | {us_per_request(floor):,.0f} "
            f"| {extra:+,.0f} | {ours.rps / floor.rps if floor.rps else 0:.2f} | {largest} |"
        )
    if not rows:
        return []
    return [
        f"### Where the gap to the floor goes (WORKERS={config.workers}, 16 connections)",
        "",
        "Server CPU per request of the API and of the floor in the same cells; the extra is what "
        "the API does beyond the statement and the JSON. For the profiled endpoints, the largest "
        "categories of the API's profile (section Profile, us/request) say where it goes.",
        "",
        "| endpoint | API us/req | floor us/req | extra us/req | ours / floor req/s "
        "| largest profile categories, us/req |",
        "|---|---:|---:|---:|---:|---|",
        *rows,
        "",
    ]
