"""Logging for the server process: plain text lines, or one JSON object per line.

`python -m todo_api` hands `log_config()` to uvicorn, which applies it in every process,
including each worker when WORKERS > 1. Uvicorn's own access log is switched off there; the
request log middleware (`todo_api.api.request_log`) writes the one line per request.
"""

import json
import logging
from datetime import UTC, datetime
from typing import Any

from todo_api.api.request_log import current_request_id
from todo_api.settings import LogFormat, LogLevel

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# Loggers held at WARNING because below that they write statement parameters.
QUIET_LOGGERS = ("sqlalchemy", "aiosqlite", "psycopg")


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
            entry["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


def log_config(log_format: LogFormat, log_level: LogLevel) -> dict[str, Any]:
    """A `logging.config.dictConfig` document: everything to stderr through one formatter."""
    formatter: dict[str, Any] = (
        {"()": f"{__name__}.JsonFormatter"} if log_format == "json" else {"format": TEXT_FORMAT}
    )
    level = log_level.upper()
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"default": formatter},
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
            "uvicorn.error": {"handlers": [], "level": level, "propagate": True},
            "uvicorn.access": {"handlers": [], "level": level, "propagate": False},
            # These log SQL parameters (task titles and descriptions) at INFO or DEBUG; task
            # content must never reach the logs, whatever LOG_LEVEL says.
            **{name: {"level": "WARNING"} for name in QUIET_LOGGERS},
        },
    }
