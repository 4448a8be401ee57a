"""Refuse oversized request heads (URL and header fields) before anything parses them."""

from starlette.types import ASGIApp, Receive, Scope, Send

from todo_api.api.problems import problem_response


class RequestHeadLimitMiddleware:
    """414 for a request target over `max_url_bytes`, 431 for headers over `max_header_bytes`.

    The server in front (uvicorn with httptools) accepts heads of any size, and every
    header and query parser after this point runs on the event loop: a bound here keeps
    the cost of any one request small, whatever it sends.
    """

    def __init__(self, app: ASGIApp, max_url_bytes: int, max_header_bytes: int) -> None:
        self.app = app
        self.max_url_bytes = max_url_bytes
        self.max_header_bytes = max_header_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope.get("raw_path") or scope["path"].encode()
        if len(path) + len(scope["query_string"]) > self.max_url_bytes:
            detail = f"The URL is longer than the limit of {self.max_url_bytes} bytes."
            await problem_response(414, detail)(scope, receive, send)
            return
        header_bytes = sum(len(name) + len(value) for name, value in scope["headers"])
        if header_bytes > self.max_header_bytes:
            detail = (
                f"The request's header fields are larger than the limit of "
                f"{self.max_header_bytes} bytes in total."
            )
            await problem_response(431, detail)(scope, receive, send)
            return
        await self.app(scope, receive, send)
