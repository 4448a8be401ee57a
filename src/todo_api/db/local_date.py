"""Calendar dates in a time zone: the date of an instant, in SQL on both databases, and the
instant a date begins."""

from datetime import MAXYEAR, UTC, date, datetime, time, tzinfo
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Date
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement

#: The name of the SQLite function (todo_api.db.sqlite registers it on every connection).
SQLITE_FUNCTION = "todo_local_date"


def day_starts(day: date, zone: tzinfo) -> datetime:
    """The instant `day` begins in `zone` (the first instant of it, across a DST change)."""
    return datetime.combine(day, time(), zone).astimezone(UTC)


class local_date(FunctionElement[Any]):  # noqa: N801 - an SQL function, named like one
    """local_date(instant, zone): the date `instant` falls on in the IANA `zone`."""

    type = Date()
    inherit_cache = True


@compiles(local_date)
def _local_date_default(element: local_date, compiler: SQLCompiler, **kw: Any) -> str:
    # For printing a statement without a dialect (logs, tests); never sent to a database.
    instant, zone = list(element.clauses)
    return f"local_date({compiler.process(instant, **kw)}, {compiler.process(zone, **kw)})"


@compiles(local_date, "postgresql")
def _local_date_postgresql(element: local_date, compiler: SQLCompiler, **kw: Any) -> str:
    instant, zone = list(element.clauses)
    return (
        f"CAST(timezone({compiler.process(zone, **kw)}, {compiler.process(instant, **kw)}) AS DATE)"
    )


@compiles(local_date, "sqlite")
def _local_date_sqlite(element: local_date, compiler: SQLCompiler, **kw: Any) -> str:
    instant, zone = list(element.clauses)
    return f"{SQLITE_FUNCTION}({compiler.process(instant, **kw)}, {compiler.process(zone, **kw)})"


@lru_cache(maxsize=64)
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def sqlite_local_date(instant: str | None, zone: str) -> str | None:
    """The SQLite side: `instant` is stored as UTC text without an offset."""
    if instant is None:
        return None
    moment = datetime.fromisoformat(instant).replace(tzinfo=UTC)
    try:
        return moment.astimezone(_zone(zone)).date().isoformat()
    except OverflowError:
        # Past the end (or before the start) of Python's calendar in this zone: its last
        # (first) day, which sorts and compares with any other day as the true one would.
        return (date.max if moment.year == MAXYEAR else date.min).isoformat()
