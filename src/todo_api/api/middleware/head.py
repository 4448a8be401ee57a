"""HEAD wherever GET is served (RFC 9110 §9.3.2): GET's status and headers, without the body."""

from starlette.types import ASGIApp, Message, Receive, Scope, Send

_BODY_MESSAGES = ("http.response.body", "http.response.pathsend")


class HeadAsGetMiddleware:
    """Routes HEAD as GET and drops the body bytes.

    Routes stay GET-only, so OpenAPI publishes no HEAD operations. Only a copy of the scope,
    passed inward, says GET: the middleware outside (the request log, CORS) and the server
    still see HEAD.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "HEAD":
            await self.app(scope, receive, send)
            return

        async def send_without_body(message: Message) -> None:
            if message["type"] in _BODY_MESSAGES:
                # A file sent by path would reach the client too: it becomes an empty body.
                more_body = message.get("more_body", False)
                message = {"type": "http.response.body", "body": b"", "more_body": more_body}
            await send(message)

        as_get = {**scope, "method": "GET"}
        try:
            await self.app(as_get, receive, send_without_body)
        finally:
            # What routing put in the scope (the route, for the request log) shows outside as
            # it does for a GET; only the method stays HEAD.
            scope.update({key: value for key, value in as_get.items() if key != "method"})
