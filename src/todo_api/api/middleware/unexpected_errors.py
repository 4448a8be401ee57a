"""The answer to a request whose handling raised something nobody expected, or that the
server cut off."""

import asyncio
import logging

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from todo_api.api.middleware.request_log import UNMATCHED_ROUTE
from todo_api.api.problems import RequestCutOffError, problem_response

logger = logging.getLogger("todo_api.errors")

UNEXPECTED_ERROR_DETAIL = "An unexpected error occurred; it has been logged."


class UnexpectedErrorMiddleware:
    """Logs the error once and answers 500 as a problem, inside the other middleware.

    Starlette's own handler for `Exception` sits outside every middleware: its 500 would
    miss the request id, security and CORS headers, and it re-raises, so the server logs
    the same traceback a second time. Nothing is re-raised from here.

    A request still running when the shutdown grace period ends is cancelled by the
    server. What it was doing has unwound by the time the cancellation gets here (a keyed
    create has freed its key); the client gets a 503 problem rather than the server's
    plain-text 500, and the log one line rather than a traceback.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        response_started = False

        async def tracking_send(message: Message) -> None:
            nonlocal response_started
            response_started |= message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception as exc:
            # The route's template, not the concrete path: logs carry no user ids.
            route = getattr(scope.get("route"), "path_format", None) or UNMATCHED_ROUTE
            logger.error("Unhandled error on %s %s", scope["method"], route, exc_info=exc)
            if not response_started:
                await problem_response(500, UNEXPECTED_ERROR_DETAIL)(scope, receive, send)
        except asyncio.CancelledError:
            route = getattr(scope.get("route"), "path_format", None) or UNMATCHED_ROUTE
            # Uvicorn cancels a request when its shutdown grace period ends.
            logger.warning("Request cancelled before it finished: %s %s", scope["method"], route)
            if not response_started:
                cut_off = RequestCutOffError()
                answer = problem_response(
                    cut_off.status,
                    cut_off.detail,
                    type_=cut_off.type,
                    headers={**(cut_off.headers or {}), "Connection": "close"},
                )
                await answer(scope, receive, send)
            # Still cancelled: whoever cancelled the task expects it to end so. The server
            # then only closes the connection (todo_api.log_config keeps its traceback out).
            raise
