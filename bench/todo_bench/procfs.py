"""CPU time and memory of processes, from /proc."""

import contextlib
import os
from collections.abc import Sequence
from pathlib import Path


def _children_map() -> dict[int, list[int]]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    return children


def process_tree(root: int) -> list[int]:
    children = _children_map()
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(children.get(pid, []))
    return found


def kernel_ticks(pids: Sequence[int]) -> dict[int, int]:
    """stime alone: the part of a process's CPU spent in the kernel (socket I/O, wake-ups)."""
    ticks = {}
    for pid in pids:
        with contextlib.suppress(OSError):
            ticks[pid] = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[12])
    return ticks


def cpu_ticks(pids: Sequence[int], reaper: int | None = None) -> dict[int, int]:
    """utime + stime of each process; with `reaper`, also the CPU of its exited children.

    A PostgreSQL backend that starts and exits within a cell (pgbench's) is gone before the
    second reading; the postmaster reaps it, and its CPU shows up in the postmaster's cutime
    and cstime, kept here under the key -reaper.
    """
    ticks = {}
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        ticks[pid] = int(fields[11]) + int(fields[12])  # utime + stime
        if pid == reaper:
            ticks[-pid] = int(fields[13]) + int(fields[14])  # cutime + cstime
    return ticks


def cpu_seconds_between(before: dict[int, int], after: dict[int, int]) -> float:
    grown = sum(value - before.get(pid, 0) for pid, value in after.items())
    # A process that existed before and was reaped since is counted in full in its parent's
    # cutime; take off what it had already used before.
    gone = sum(value for pid, value in before.items() if pid > 0 and pid not in after)
    return (grown - gone) / os.sysconf("SC_CLK_TCK")


def machine_ticks() -> tuple[int, int]:
    """(busy, total) jiffies of all CPUs; iowait counts as idle."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + values[4]
    total = sum(values[:8])
    return total - idle, total


def rss_mb(pid: int) -> float | None:
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return None


def cmdline(pid: int) -> str:
    with contextlib.suppress(OSError):
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
    return ""
