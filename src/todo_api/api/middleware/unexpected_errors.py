"""The answer to a request whose handling raised something nobody expected."""

import logging

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from todo_api.api.middleware.request_log import UNMATCHED_ROUTE
from todo_api.api.problems import problem_response

logger = logging.getLogger("todo_api.errors")

UNEXPECTED_ERROR_DETAIL = "An unexpected error occurred; it has been logged."


class UnexpectedErrorMiddleware:
    """Logs the error once and answers 500 as a problem, inside the other middleware.

    Starlette's own handler for `Exception` sits outside every middleware: its 500 would
    miss the request id, security and CORS headers, and it re-raises, so the server logs
    the same traceback a second time. Nothing is re-raised from here.
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
