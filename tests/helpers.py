"""Small helpers shared by the tests."""

import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, TypeVar

import httpx
import jwt
from fastapi import FastAPI
from sqlalchemy import URL, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from todo_api.app import create_app
from todo_api.db.setup import async_database_url
from todo_api.settings import Settings

#: Every field of a task as the API returns it; the contract frontends rely on.
TASK_FIELDS = frozenset(
    {
        "id",
        "user_id",
        "title",
        "description",
        "completed",
        "completed_at",
        "created_at",
        "updated_at",
        "due_date",
        "due_at",
        "priority",
        "tags",
        "recurrence",
        "series_id",
        "next_occurrence_id",
        "reminder",
        "etag",
    }
)


def libpq_url(database_url: str | URL) -> str:
    """A PostgreSQL URL as libpq (psycopg.connect) takes it: no SQLAlchemy driver suffix."""
    url = make_url(database_url)
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


def sync_url(database_url: str) -> str:
    """The same database for SQLAlchemy's synchronous drivers (psycopg or sqlite3)."""
    url = make_url(database_url)
    driver = "postgresql+psycopg" if url.get_backend_name() == "postgresql" else "sqlite"
    return url.set(drivername=driver).render_as_string(hide_password=False)


def tasks_url(user: str) -> str:
    return f"/api/{user}/tasks"


def task_url(user: str, task_id: int | str) -> str:
    return f"/api/{user}/tasks/{task_id}"


async def create(client: httpx.AsyncClient, user: str, **body: Any) -> dict[str, Any]:
    body.setdefault("title", "A task")
    response = await client.post(tasks_url(user), json=body)
    assert response.status_code == 201, response.text
    task: dict[str, Any] = response.json()
    return task


def assert_problem(response: httpx.Response, status: int) -> dict[str, Any]:
    """The response is an RFC 9457 problem with the given status; returns its body."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    for field in ("type", "title", "detail"):
        assert isinstance(body[field], str)
        assert body[field].strip()
    return body


def error_locations(response: httpx.Response) -> list[list[Any]]:
    body = assert_problem(response, 422)
    return [error["loc"] for error in body["errors"]]


async def close_databases(app: FastAPI) -> None:
    """Closes the app's pools, as its lifespan does when the server stops."""
    await app.state.database.close()
    await app.state.readiness_database.close()


def inspection_engine(database_url: str) -> AsyncEngine:
    """A SQLAlchemy engine on `database_url`, for tests to set up and check rows directly.

    Unprepared statements, so that it also works through a transaction-mode pooler.
    """
    url = async_database_url(database_url)
    connect_args = {"prepare_threshold": None} if url.get_backend_name() == "postgresql" else {}
    # Pre-ping: tests that terminate backends (as a Neon suspend does) end its connections too.
    return create_async_engine(url, connect_args=connect_args, pool_pre_ping=True)


@asynccontextmanager
async def app_client(
    database_url: str, *, peer: tuple[str, int] = ("127.0.0.1", 123), **settings: Any
) -> AsyncIterator[httpx.AsyncClient]:
    """A client of an app of its own, configured with `settings`, on `database_url`.

    `peer` is the address the app sees the requests come from (httpx's default above).
    """
    app = create_app(Settings(_env_file=None, database_url=database_url, **settings))
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False, client=peer)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            yield client
    finally:
        await close_databases(app)


_Request = TypeVar("_Request", bound=Any)

#: The shared secret of apps run with AUTH_MODE=jwt in tests that are not about tokens.
TEST_JWT_SECRET = "a-test-secret-that-is-at-least-32-bytes"


def jwt_settings() -> dict[str, Any]:
    """Settings for an app that accepts only tokens (HS256, TEST_JWT_SECRET)."""
    return {"auth_mode": "jwt", "auth_jwt_secret": TEST_JWT_SECRET}


def token_for_path_user(request: _Request) -> _Request:
    """Sends a valid token for whichever user the request's path names, as that user would.

    A function rather than an `httpx.Auth`, so that both httpx and httpx2 (under
    Starlette's TestClient) take it.
    """
    parts = request.url.path.split("/")
    if len(parts) > 2 and parts[1] == "api":
        claims = {"sub": parts[2], "exp": int(time.time()) + 600}
        token = jwt.encode(claims, TEST_JWT_SECRET, algorithm="HS256")
        request.headers["Authorization"] = f"Bearer {token}"
    return request


#: What a local HTTP server answers to a GET: status, Content-Type and body.
Answer = tuple[int, str, bytes]


@contextmanager
def local_http_server(respond: Callable[[], Answer], port: int = 0) -> Iterator[str]:
    """A server on 127.0.0.1 that answers every GET with `respond()`; its base URL."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            status, content_type, body = respond()
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_: Any) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True).start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()
