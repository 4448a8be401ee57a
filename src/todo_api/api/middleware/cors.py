"""CORS, with a refused preflight answered as a problem like every other error."""

from starlette.datastructures import Headers
from starlette.middleware.cors import CORSMiddleware
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from todo_api.api.problems import problem_response

_REFUSED_PREFIX = "Disallowed CORS "


class ProblemCORSMiddleware(CORSMiddleware):
    """Starlette's CORS, except that a refused preflight is `400` problem+json, not text.

    A browser shows neither to the page (it only reports a CORS failure), but a developer
    reading the network panel, or a client that is not a browser, gets the reason in the
    same shape as every other error.
    """

    def preflight_response(self, request_headers: Headers) -> Response:
        response = super().preflight_response(request_headers)
        if response.status_code != 400:
            return response
        refused = bytes(response.body).decode().removeprefix(_REFUSED_PREFIX)
        detail = (
            f"This cross-origin request is not allowed (refused: {refused}); the origins, "
            "methods and headers it may use are set by CORS_ORIGINS."
        )
        problem = problem_response(400, detail, type_="urn:todo-api:cors-refused")
        for name in ("vary", "access-control-allow-methods", "access-control-max-age"):
            if name in response.headers:
                problem.headers[name] = response.headers[name]
        return problem


class CorsOffMiddleware:
    """With CORS_ORIGINS unset, a preflight is told that CORS is off and what turns it on,
    instead of the `405` its OPTIONS would get from the routes."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "OPTIONS":
            headers = Headers(scope=scope)
            if "origin" in headers and "access-control-request-method" in headers:
                detail = (
                    "CORS is off on this server: no browser page on another origin may call "
                    "it. To allow a frontend, list its origin in CORS_ORIGINS "
                    "(for example CORS_ORIGINS=http://localhost:3000)."
                )
                response = problem_response(400, detail, type_="urn:todo-api:cors-refused")
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)
