"""How numbers are written in the report's tables."""

from todo_bench.ceiling import PgResult
from todo_bench.load import Cpu, WrkResult

NOISY_CORES = 0.25
NOISY_MARK = "†"


def noisy(cpu: Cpu) -> str:
    return NOISY_MARK if cpu.foreign_cores > NOISY_CORES else ""


def rate(result: WrkResult | PgResult | None) -> str:
    if result is None:
        return "-"
    value = result.rps if isinstance(result, WrkResult) else result.tps
    return f"{value:,.0f}{noisy(result.cpu)}"


def ms(value: float) -> str:
    return f"{value:.1f}" if value < 100 else f"{value:.0f}"


def mark(ok: bool) -> str:
    return "PASS" if ok else "**FAIL**"


def within(a: float, b: float) -> float:
    return abs(a / b - 1) if b else float("inf")


def us_per_request(result: WrkResult) -> float:
    """CPU of the server's processes per request, in microseconds."""
    return result.cpu.app_s / result.requests * 1e6 if result.requests else 0.0


def error_summary(result: WrkResult) -> str:
    """Non-2xx and socket errors, by status code and kind."""
    parts = [f"{count} x {code}" for code, count in sorted(result.statuses.items()) if code >= 300]
    parts += [
        f"{count} {kind}" for kind, count in result.errors.items() if kind != "status" and count
    ]
    return ", ".join(parts) or "none"
