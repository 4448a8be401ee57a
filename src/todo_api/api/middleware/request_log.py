"""One log line per request, and a request id that follows it into the response and the logs.

The line names the route's path template (`/api/{user_id}/tasks/{task_id}`), never the concrete
path, so owner ids stay out of log aggregation; a request that matches no route is logged as
`(no route)`, since its path may hold an owner id or text made to look like a log line. Bodies
are never read here, so titles and descriptions cannot reach the logs.
"""

import logging
import re
import secrets
import time
from contextvars import ContextVar
from typing import Any

from starlette.datastructures import Headers
from starlette.routing import compile_path
from starlette.types import ASGIApp, Message, Receive, Scope, Send

logger = logging.getLogger("todo_api.requests")

REQUEST_ID_HEADER = "X-Request-ID"
_REQUEST_ID_HEADER_RAW = REQUEST_ID_HEADER.lower().encode("latin-1")
# What an incoming id may look like to be kept; anything else is replaced, so a client
# cannot inject spaces, quotes or newlines into the logs.
REQUEST_ID_PATTERN = re.compile(r"[A-Za-z0-9._-]{1,128}")

UNMATCHED_ROUTE = "(no route)"

#: The id of the request being handled, for log records made while handling it.
current_request_id: ContextVar[str | None] = ContextVar("current_request_id", default=None)


def accepted_request_id(value: str | None) -> str | None:
    """The incoming id if it is well formed, else None."""
    if value is not None and REQUEST_ID_PATTERN.fullmatch(value):
        return value
    return None


def new_request_id() -> str:
    # 32 random hex digits, like uuid4().hex, without building a UUID for them.
    return secrets.token_hex(16)


class RequestLogMiddleware:
    """Pure ASGI: logs method, route template, status, duration and request id, once each."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._published: list[tuple[re.Pattern[str], str]] | None = None

    def route_template(self, scope: Scope) -> str:
        """The route's path template, or `(no route)` when no route's path matches.

        Routing sets `scope["route"]`. A response made before routing (a CORS preflight, a body
        over the size limit) has none; its path is matched against the published templates.
        """
        # path_format: the template without convertor suffixes ("{task_id}", not
        # "{task_id:task_id}"), as the OpenAPI document spells it.
        template = getattr(scope.get("route"), "path_format", None)
        if isinstance(template, str) and template:
            return template
        path: str = scope["path"]
        for pattern, published in self._published_templates(scope):
            if pattern.match(path):
                return published
        return UNMATCHED_ROUTE

    def _published_templates(self, scope: Scope) -> list[tuple[re.Pattern[str], str]]:
        if self._published is None:
            openapi = getattr(scope.get("app"), "openapi", None)
            paths: dict[str, Any] = openapi().get("paths", {}) if callable(openapi) else {}
            self._published = [(compile_path(template)[0], template) for template in paths]
        return self._published

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        request_id = (
            accepted_request_id(Headers(scope=scope).get(REQUEST_ID_HEADER)) or new_request_id()
        )
        scope.setdefault("state", {})["request_id"] = request_id
        status: int | None = None
        start = time.perf_counter()

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = [
                    (name, value)
                    for name, value in message.get("headers", [])
                    if name.lower() != _REQUEST_ID_HEADER_RAW
                ]
                headers.append((_REQUEST_ID_HEADER_RAW, request_id.encode("latin-1")))
                message["headers"] = headers
            await send(message)

        token = current_request_id.set(request_id)
        try:
            await self.app(scope, receive, send_with_id)
        except BaseException:
            # The server's error handler answers 500 after this; the id stays set so that its
            # log record of the error carries the id too.
            self._log(scope, status or 500, start, request_id)
            raise
        self._log(scope, status, start, request_id)
        current_request_id.reset(token)

    def _log(self, scope: Scope, status: int | None, start: float, request_id: str) -> None:
        if not logger.isEnabledFor(logging.INFO):
            return  # below the configured level: skip matching the route and building fields
        duration_ms = round((time.perf_counter() - start) * 1000, 3)
        fields: dict[str, Any] = {
            "method": scope["method"],
            "route": self.route_template(scope),
            "status": status,
            "duration_ms": duration_ms,
            "request_id": request_id,
        }
        logger.info(
            "%s %s %s %.1fms request_id=%s",
            fields["method"],
            fields["route"],
            "-" if status is None else status,
            fields["duration_ms"],
            request_id,
            extra={"log_fields": fields},
        )
