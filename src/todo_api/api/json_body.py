"""Request bodies are JSON, and JSON between systems is UTF-8 (RFC 8259)."""

import json
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import HTTPException, Request, Response, status
from fastapi.routing import APIRoute
from starlette.datastructures import Headers

from todo_api.api.problems import ProblemError


class _Utf8JsonRequest(Request):
    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            body = await self.body()
            # json.loads would guess UTF-16 or UTF-32 from the bytes instead. JSON must escape
            # U+0000, so UTF-8 JSON never holds a zero byte, while UTF-16 and UTF-32 put one
            # beside every ASCII character, and every JSON text has some.
            if b"\x00" in body:
                raise HTTPException(status.HTTP_400_BAD_REQUEST)  # the handler says why
            try:
                # A leading UTF-8 byte order mark is skipped, as RFC 8259 lets parsers do.
                text = body.decode("utf-8-sig")
            except UnicodeDecodeError:
                raise HTTPException(status.HTTP_400_BAD_REQUEST) from None
            self._json = json.loads(text)
        return self._json


def _is_json(media_type: str) -> bool:
    kind, _, subtype = media_type.partition("/")
    return kind == "application" and (subtype == "json" or subtype.endswith("+json"))


def require_json_body(headers: Headers) -> None:
    """415 for a body not declared as JSON (FastAPI would not parse it, so say why)."""
    has_body = headers.get("content-length", "0") != "0" or "transfer-encoding" in headers
    media_type = headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if has_body and not _is_json(media_type):
        raise ProblemError(
            415,
            "The request body must be JSON, sent with Content-Type: application/json.",
            type_="urn:todo-api:unsupported-media-type",
        )


class JsonBodyRoute(APIRoute):
    """A route whose body, if it takes one, must be declared as JSON (else 415) and be
    UTF-8 (else 400).

    FastAPI parses the body before any dependency runs, so the checks live in the route.
    """

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handle = super().get_route_handler()
        if self.body_field is None:
            return handle

        async def handle_json_body(request: Request) -> Response:
            require_json_body(request.headers)
            return await handle(_Utf8JsonRequest(request.scope, request.receive))

        return handle_json_body
