"""Task routes check who is calling before anything else about the request."""

from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request, Response

from todo_api.api.caller import authorize
from todo_api.api.json_body import JsonBodyRoute


class AuthorizedRoute(JsonBodyRoute):
    """A route that answers 401/403 before FastAPI parses its body or parameters.

    Dependencies run only after the body is parsed, so a check there would let a caller
    without a token learn that their JSON was malformed.
    """

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handle = super().get_route_handler()

        async def authorize_first(request: Request) -> Response:
            await authorize(request)
            return await handle(request)

        return authorize_first
