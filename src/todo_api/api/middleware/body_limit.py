"""Refuse request bodies over a size limit, in a way every HTTP client gets to read."""

import asyncio

from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from todo_api.api.problems import problem_response

#: After a 413, at most this many more body bytes are read and thrown away ...
DRAIN_MAX_BYTES = 64 * 1024 * 1024
#: ... for at most this long; then the connection is closed, whatever is still arriving.
DRAIN_MAX_SECONDS = 10.0


class BodySizeLimitMiddleware:
    """413 for bodies over `max_bytes`, whether declared by Content-Length or streamed.

    A declared size is refused before the app runs. A chunked body (or one whose
    Content-Length lies) is counted as it arrives, and the app stops reading at the limit.

    The 413 is sent at once, but the connection is closed only after the rest of the body
    has been read and discarded (RFC 9112 §9.6). Closing with unread data makes the kernel
    reset the connection, and clients that send the whole body before reading the answer
    (Python's http.client and requests) then see a reset instead of the 413. The discarding
    stops after `drain_bytes` or `drain_seconds`, so a client cannot hold the connection
    by sending for ever.
    """

    def __init__(
        self,
        app: ASGIApp,
        max_bytes: int,
        drain_bytes: int = DRAIN_MAX_BYTES,
        drain_seconds: float = DRAIN_MAX_SECONDS,
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.drain_bytes = drain_bytes
        self.drain_seconds = drain_seconds
        self._detail = f"The request body is larger than the limit of {max_bytes} bytes."
        response = problem_response(413, self._detail, headers={"Connection": "close"})
        self._body = bytes(response.body)
        self._headers = tuple(response.raw_headers)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        declared = headers.get("content-length")
        if (declared is None or declared == "0") and "transfer-encoding" not in headers:
            # No body (the server delivers none without a length or chunking): nothing to
            # count, so no wrappers, as for most GETs and DELETEs.
            await self.app(scope, receive, send)
            return
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            # A client waiting for 100 Continue sends no body after a final answer, and a
            # body longer than the drain bound would be cut off anyway: closing at once
            # spares both sides the wait and the bandwidth.
            drain = (
                int(declared) <= self.drain_bytes
                and headers.get("expect", "").lower() != "100-continue"
            )
            await self._refuse(receive, send, drain)
            return

        received = 0
        refused = False

        async def counting_receive() -> Message:
            nonlocal received, refused
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    refused = True
                    # Raised inside the app's body read, so FastAPI answers it like any
                    # other HTTP error, as a problem document.
                    raise HTTPException(413, self._detail, headers={"Connection": "close"})
            return message

        async def draining_send(message: Message) -> None:
            if (
                refused
                and message["type"] == "http.response.body"
                and not message.get("more_body", False)
            ):
                # The server ends the connection with the response, and stops handing
                # over the body once the response is complete: drain in between.
                await send({**message, "more_body": True})
                await self._drain(receive)
                await send({"type": "http.response.body", "body": b"", "more_body": False})
                return
            await send(message)

        await self.app(scope, counting_receive, draining_send)

    async def _refuse(self, receive: Receive, send: Send, drain: bool) -> None:
        """The 413 problem, its last (empty) part sent only once the body is drained."""
        await send({"type": "http.response.start", "status": 413, "headers": list(self._headers)})
        await send({"type": "http.response.body", "body": self._body, "more_body": True})
        if drain:
            await self._drain(receive)
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    async def _drain(self, receive: Receive) -> None:
        """Reads and drops the rest of the body, within the byte and time bounds."""
        discarded = 0
        try:
            async with asyncio.timeout(self.drain_seconds):
                while discarded < self.drain_bytes:
                    message = await receive()
                    if message["type"] != "http.request":
                        return  # the client went away
                    discarded += len(message.get("body", b""))
                    if not message.get("more_body", False):
                        return
        except TimeoutError:
            pass
