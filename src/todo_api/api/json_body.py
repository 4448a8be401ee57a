"""JSON request bodies are read as UTF-8 only, as RFC 8259 requires between systems."""

import json
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import HTTPException, Request, Response, status
from fastapi.routing import APIRoute


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


class Utf8JsonRoute(APIRoute):
    """A route whose body, when JSON, must be UTF-8: any other encoding answers 400.

    FastAPI parses the body before any dependency runs, so the check lives in the request.
    """

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handle = super().get_route_handler()

        async def handle_utf8_json(request: Request) -> Response:
            return await handle(_Utf8JsonRequest(request.scope, request.receive))

        return handle_utf8_json
