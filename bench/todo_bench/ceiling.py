"""The ceiling: the endpoints' statements through pgbench, with nothing in front of them."""

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from todo_bench.cluster import Database
from todo_bench.common import PGBENCH_DIR, BenchError, run
from todo_bench.data import HEAVY_USER
from todo_bench.load import Cpu, measure_cpu
from todo_bench.queries import list_statement
from todo_bench.servers import Server


@dataclass
class PgResult:
    label: str
    clients: int
    transactions: int
    tps: float
    latency_ms: float
    failed: int
    cpu: Cpu
    misses: int = 0


def pgbench(
    db: Database,
    pg_bin: Path,
    script: Path,
    clients: int,
    seconds: float,
    out: Path,
    label: str,
    defines: Mapping[str, int | str] | None = None,
    url: str | None = None,
    server: Server | None = None,
    mode: str = "prepared",
) -> PgResult:
    """pgbench with `script`; `mode` "prepared" (as the API's connections with
    DB_PREPARED_STATEMENTS=true) or "extended" (values bound to an unnamed statement, planned
    each time: as the API's connections by default)."""
    command: list[str | Path] = [
        pg_bin / "pgbench",
        "-n",
        "-M",
        mode,
        "-c",
        str(clients),
        "-j",
        str(min(2, clients)),
        "-T",
        f"{seconds:g}",
        "-f",
        script,
    ]
    for name, value in (defines or {}).items():
        command += ["-D", f"{name}={value}"]
    command.append(url or db.url)
    with measure_cpu(server, db) as cpu:
        text = run(command, timeout=seconds + 60, output=out / f"pgbench-{label}.txt")

    def number(pattern: str, default: float | None = None) -> float:
        found = re.search(pattern, text)
        if found is None:
            if default is not None:
                return default
            raise BenchError(f"pgbench output lacks {pattern!r}; see {out}/pgbench-{label}.txt")
        return float(found.group(1))

    return PgResult(
        label=label,
        clients=clients,
        transactions=int(number(r"number of transactions actually processed: (\d+)")),
        tps=number(r"tps = ([\d.]+) \(without initial connection time\)"),
        latency_ms=number(r"latency average = ([\d.]+) ms"),
        failed=int(number(r"number of failed transactions: (\d+)", 0)),
        cpu=cpu,
    )


def protocol_script(endpoint: str, out: Path) -> Path:
    """The endpoint's statement wrapped as the app sends it: pre-ping, BEGIN, it, end."""
    body = (PGBENCH_DIR / f"{endpoint}.sql").read_text()
    meta = [line for line in body.splitlines() if line.startswith("\\")]
    statement = [line for line in body.splitlines() if line and not line.startswith(("\\", "--"))]
    end = "ROLLBACK;" if endpoint in {"list", "read"} else "COMMIT;"
    script = out / f"protocol-{endpoint}.sql"
    script.write_text("\n".join([*meta, "SELECT 1;", "BEGIN;", *statement, end]) + "\n")
    return script


def explain_plans(db: Database) -> dict[str, str]:
    """EXPLAIN (ANALYZE, BUFFERS) of the list statement, as a custom and as a generic plan."""
    statement = list_statement()
    if statement.names() != ["owner", "limit", "offset"]:
        raise BenchError(f"the list statement's parameters changed: {statement.names()}")
    plans = {}
    cases = [
        ("1M rows, 10,000-task user, custom plan", HEAVY_USER, "auto"),
        ("1M rows, 10,000-task user, generic plan", HEAVY_USER, "force_generic_plan"),
        ("1M rows, 100-task user, custom plan", "user04242", "auto"),
    ]
    with db.connect() as connection:
        connection.execute(f"PREPARE bench_list AS {statement.positional()}")
        for title, owner, mode in cases:
            connection.execute(f"SET plan_cache_mode = {mode}")
            for _ in range(2):  # the second run shows the warm-cache timing
                rows = connection.execute(
                    f"EXPLAIN (ANALYZE, BUFFERS) EXECUTE bench_list('{owner}', 100, 0)"
                ).fetchall()
            plans[title] = "\n".join(row[0] for row in rows)
        connection.execute("RESET plan_cache_mode")
        connection.execute("DEALLOCATE bench_list")
    return plans
