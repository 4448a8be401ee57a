"""Headers every response carries."""

from starlette.types import ASGIApp, Message, Receive, Scope, Send

API_PREFIX = "/api/"
_PUBLIC = ((b"x-content-type-options", b"nosniff"),)
_PRIVATE = (*_PUBLIC, (b"cache-control", b"no-store"))


class SecurityHeadersMiddleware:
    """`nosniff` everywhere; `no-store` on task data so no shared cache keeps a user's tasks."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        # Appended as raw pairs: nothing else in the app sets these two headers.
        extra = _PRIVATE if scope["path"].startswith(API_PREFIX) else _PUBLIC

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), *extra]
            await send(message)

        await self.app(scope, receive, send_with_headers)
