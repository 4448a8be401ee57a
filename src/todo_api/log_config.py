"""Logging for the server process: plain text lines, or one JSON object per line.

`python -m todo_api` hands `log_config()` to uvicorn, which applies it in every process,
including each worker when WORKERS > 1. Uvicorn's own access log is switched off there; the
request log middleware (`todo_api.api.middleware.request_log`) writes the one line per request.
"""

import asyncio
import json
import logging
import sqlite3
import traceback
from datetime import UTC, datetime
from types import TracebackType
from typing import Any

import psycopg
from pydantic import ValidationError
from sqlalchemy.exc import StatementError

from todo_api.api.middleware.request_log import current_request_id
from todo_api.settings import LogFormat, LogLevel

ExcInfo = tuple[type[BaseException], BaseException, TracebackType | None] | tuple[None, None, None]

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# Loggers held at WARNING because below that they write statement parameters, or (the MCP
# SDK) a line per message and the text of each tool error, which todo_api.mcp says instead.
QUIET_LOGGERS = ("sqlalchemy", "aiosqlite", "psycopg", "mcp")


# C0 and C1 controls, DEL and the Unicode line separators: in a message any of them could
# start what looks like a new log line, so they are written as escapes instead.
_ESCAPES = {code: f"\\u{code:04x}" for code in (*range(0x20), *range(0x7F, 0xA0), 0x2028, 0x2029)}


def escape_controls(text: str) -> str:
    return text.translate(_ESCAPES)


def _safe_message(exc: BaseException) -> str:
    """What an exception says, minus anything that could hold request data.

    Database errors can quote the row they refused ("Failing row contains (...)") or the
    statement's parameters, and validation errors quote their input: none of it may reach
    a log. Only the error's kind, code and primary message stay.
    """
    if isinstance(exc, StatementError):
        cause = exc.orig
        said = _safe_message(cause) if cause is not None else ""
        kind = "" if cause is None else f"({type(cause).__module__}.{type(cause).__qualname__}) "
        return f"{kind}{said} [SQL: {exc.statement}]"
    if isinstance(exc, psycopg.Error):
        if exc.sqlstate is None:  # raised by the client library: about the connection
            return (str(exc).strip().splitlines() or [""])[0]
        # Class 22 (data exception) messages may quote the value they could not take.
        primary = "" if exc.sqlstate.startswith("22") else exc.diag.message_primary or ""
        return f"{primary} (SQLSTATE {exc.sqlstate})".strip()
    if isinstance(exc, sqlite3.Error):
        return str(exc)  # SQLite names tables, columns and constraints, never values
    if isinstance(exc, ValidationError):
        return f"{exc.error_count()} validation errors at " + ", ".join(
            ".".join(map(str, error["loc"])) for error in exc.errors()
        )
    return str(exc)


def format_exception_safely(exc: BaseException) -> str:
    """A traceback like Python's, with each message passed through `_safe_message`."""
    chain: list[tuple[BaseException, str]] = []
    current: BaseException | None = exc
    link = ""
    seen: set[int] = set()
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        chain.append((current, link))
        if current.__cause__ is not None:
            current, link = current.__cause__, _CAUSE
        elif current.__context__ is not None and not current.__suppress_context__:
            current, link = current.__context__, _CONTEXT
        else:
            current = None
    parts: list[str] = []
    # Oldest first, as Python prints them; each link joins an exception to the next one.
    for index, (error, _) in enumerate(reversed(chain)):
        if index:
            parts.append(chain[len(chain) - index][1])
        if error.__traceback__ is not None:
            parts.append("Traceback (most recent call last):\n")
            parts.extend(traceback.format_tb(error.__traceback__))
        kind = type(error)
        parts.append(f"{kind.__module__}.{kind.__qualname__}: {_safe_message(error)}\n")
    return "".join(parts).rstrip("\n")


_CAUSE = "\nThe above exception was the direct cause of the following exception:\n\n"
_CONTEXT = "\nDuring handling of the above exception, another exception occurred:\n\n"


def _format_exc_info(exc_info: ExcInfo) -> str:
    error = exc_info[1]
    return "" if error is None else format_exception_safely(error)


class TextFormatter(logging.Formatter):
    """`TEXT_FORMAT` lines; a message never spans lines, a traceback holds no request data."""

    def formatMessage(self, record: logging.LogRecord) -> str:  # noqa: N802 (logging's name)
        record.message = escape_controls(record.message)
        return super().formatMessage(record)

    def formatException(self, ei: Any) -> str:  # noqa: N802
        return _format_exc_info(ei)


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line; newlines inside values are escaped."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        request_id = current_request_id.get()
        if request_id is not None:
            entry["request_id"] = request_id
        fields = getattr(record, "log_fields", None)
        if isinstance(fields, dict):
            entry.update(fields)
        if record.exc_info:
            entry["exception"] = _format_exc_info(record.exc_info)
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


class CutOffRequestFilter(logging.Filter):
    """Drops uvicorn's traceback of a request it cancelled at shutdown: the request has
    answered 503 and logged one line of its own (todo_api.api.middleware.unexpected_errors).
    Any other error in the application still gets uvicorn's record."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        return not (
            isinstance(error, asyncio.CancelledError)
            and record.getMessage().startswith("Exception in ASGI application")
        )


def log_config(log_format: LogFormat, log_level: LogLevel) -> dict[str, Any]:
    """A `logging.config.dictConfig` document: everything to stderr through one formatter."""
    formatter: dict[str, Any] = (
        {"()": f"{__name__}.JsonFormatter"}
        if log_format == "json"
        else {"()": f"{__name__}.TextFormatter", "format": TEXT_FORMAT}
    )
    level = log_level.upper()
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"default": formatter},
        "filters": {"cut_off": {"()": f"{__name__}.CutOffRequestFilter"}},
        "handlers": {
            "default": {
                "class": "logging.StreamHandler",
                "formatter": "default",
                "stream": "ext://sys.stderr",
            }
        },
        "root": {"handlers": ["default"], "level": level},
        "loggers": {
            # Uvicorn's loggers come with handlers of their own; route them through ours.
            "uvicorn": {"handlers": [], "level": level, "propagate": True},
            "uvicorn.error": {
                "handlers": [],
                "level": level,
                "propagate": True,
                "filters": ["cut_off"],
            },
            "uvicorn.access": {"handlers": [], "level": level, "propagate": False},
            # These log SQL parameters (task titles and descriptions) at INFO or DEBUG; task
            # content must never reach the logs, whatever LOG_LEVEL says.
            **{name: {"level": "WARNING"} for name in QUIET_LOGGERS},
        },
    }
