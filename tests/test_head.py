"""HEAD wherever GET works (RFC 9110 §9.1, §9.3.2): GET's status and headers, no body."""

import asyncio
import http.client
import logging
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.types import Message

from tests.helpers import app_client, assert_problem, create, task_url, tasks_url
from tests.live_server import running_server

# Every kind of GET route: health, the task routes, the OpenAPI document, the docs pages and
# their static assets. `{task}` is the id of a task of alice's.
GET_PATHS = [
    "/health",
    "/health/ready",
    "/api/alice/tasks?limit=1&offset=1",  # X-Total-Count and a Link both ways
    "/api/alice/tasks/{task}",
    "/api/alice/tasks/stats",
    "/api/alice/tasks/99999",  # a 404 problem
    "/api/alice/tasks/not-a-number",  # a 422 problem
    "/openapi.json",
    "/docs",
    "/docs/oauth2-redirect",
    "/redoc",
    "/docs/assets/swagger-ui.css",
]


def without_request_id(response: httpx.Response) -> list[tuple[str, str]]:
    return [
        (name, value) for name, value in response.headers.multi_items() if name != "x-request-id"
    ]


@pytest.mark.parametrize(
    "path", ["/health", "/api/alice/tasks", "/openapi.json", "/docs/assets/swagger-ui.css"]
)
async def test_no_body_bytes_leave_the_app(app: FastAPI, engine: AsyncEngine, path: str) -> None:
    """Raw ASGI: httpx and uvicorn drop a HEAD response's body themselves, other servers not."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "HEAD",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [(b"host", b"testserver")],
        "client": ("127.0.0.1", 1234),
        "server": ("testserver", 80),
    }
    sent: list[Message] = []
    requests = [{"type": "http.request", "body": b"", "more_body": False}]

    async def receive() -> Message:
        if requests:
            return requests.pop()
        await asyncio.Event().wait()  # the connection stays open
        raise AssertionError("unreachable")

    async def send(message: Message) -> None:
        sent.append(message)

    await app(scope, receive, send)
    start, *body = sent
    assert start["status"] == 200
    assert int(dict(start["headers"])[b"content-length"]) > 0
    assert body
    assert all(message["type"] == "http.response.body" for message in body)
    assert b"".join(message.get("body", b"") for message in body) == b""


@pytest.mark.parametrize("path", GET_PATHS)
async def test_head_answers_what_get_answers_without_the_body(
    client: httpx.AsyncClient, path: str
) -> None:
    tasks = [await create(client, "alice", title=f"Task {n}") for n in range(3)]
    url = path.format(task=tasks[0]["id"])
    got = await client.get(url)
    head = await client.head(url)
    assert head.status_code == got.status_code
    assert without_request_id(head) == without_request_id(got)
    assert int(head.headers["content-length"]) == len(got.content) > 0


async def test_list_head_carries_the_page_headers(client: httpx.AsyncClient) -> None:
    for n in range(3):
        await create(client, "alice", title=f"Task {n}")
    head = await client.head(tasks_url("alice"), params={"limit": 1, "offset": 1})
    assert head.status_code == 200
    assert head.headers["x-total-count"] == "3"
    assert set(head.links) == {"next", "prev"}
    assert head.headers["etag"]


@pytest.mark.parametrize("kind", ["list", "task"])
async def test_head_with_a_matching_if_none_match_is_304(
    client: httpx.AsyncClient, kind: str
) -> None:
    task = await create(client, "alice")
    url = tasks_url("alice") if kind == "list" else task_url("alice", task["id"])
    etag = (await client.get(url)).headers["etag"]
    head = await client.head(url, headers={"If-None-Match": etag})
    assert head.status_code == 304
    assert head.headers["etag"] == etag


async def test_head_where_get_is_not_allowed_is_405(client: httpx.AsyncClient) -> None:
    task = await create(client, "alice")
    head = await client.head(f"{task_url('alice', task['id'])}/complete")
    assert head.status_code == 405
    assert head.headers["allow"] == "PATCH"
    assert (await client.head("/no/such/page")).status_code == 404


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("DELETE", "/api/alice/tasks", "GET, HEAD, POST"),
        ("POST", "/api/alice/tasks/1", "GET, HEAD, PUT, PATCH, DELETE"),
        ("PUT", "/api/alice/tasks/stats", "GET, HEAD"),
        ("POST", "/health", "GET, HEAD"),
        ("POST", "/openapi.json", "GET, HEAD"),
        ("GET", "/api/alice/tasks/1/complete", "PATCH"),
    ],
)
async def test_allow_lists_head_wherever_get_is_allowed(
    client: httpx.AsyncClient, method: str, path: str, allowed: str
) -> None:
    response = await client.request(method, path)
    assert_problem(response, 405)
    assert response.headers["allow"] == allowed


async def test_openapi_publishes_no_head_operations(client: httpx.AsyncClient) -> None:
    paths = (await client.get("/openapi.json")).json()["paths"]
    assert all("head" not in operations for operations in paths.values())
    assert "get" in paths["/health"]


async def test_request_log_names_head_and_the_route(
    client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    task = await create(client, "alice")
    with caplog.at_level(logging.INFO, logger="todo_api.requests"):
        await client.head(task_url("alice", task["id"]))
        await client.head("/docs")
    logged = [
        (record.__dict__["log_fields"]["method"], record.__dict__["log_fields"]["route"])
        for record in caplog.records
        if record.name == "todo_api.requests"
    ]
    assert logged == [("HEAD", "/api/{user_id}/tasks/{task_id}"), ("HEAD", "/docs")]


async def test_cors_allows_head_from_configured_origins(database_url: str) -> None:
    origin = "http://localhost:3000"
    async with app_client(database_url, cors_origins=[origin]) as client:
        # If-None-Match is not CORS-safelisted, so a browser asks first.
        preflight = await client.options(
            tasks_url("alice"),
            headers={
                "Origin": origin,
                "Access-Control-Request-Method": "HEAD",
                "Access-Control-Request-Headers": "if-none-match",
            },
        )
        assert preflight.status_code == 200, preflight.text
        head = await client.head(tasks_url("alice"), headers={"Origin": origin})
        assert head.status_code == 200
        assert head.headers["access-control-allow-origin"] == origin


def test_head_on_the_real_server_sends_headers_only(migrated_url: str, tmp_path: Path) -> None:
    with running_server(migrated_url, tmp_path / "server.log") as (_process, client):
        created = client.post(tasks_url("alice"), json={"title": "Over the wire"})
        assert created.status_code == 201, created.text
        read = task_url("alice", created.json()["id"])
        got = client.get(read)
        port = client.base_url.port
        assert port is not None
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        try:
            for path, length in [("/health", None), (read, len(got.content))]:
                connection.request("HEAD", path)
                head = connection.getresponse()
                assert head.status == 200
                assert head.read() == b""
                if length is not None:
                    assert int(head.headers["content-length"]) == length
                    assert head.headers["etag"] == got.headers["etag"]
            # Any body bytes after the HEAD would be read as the start of this response.
            connection.request("GET", read)
            after = connection.getresponse()
            assert after.status == 200
            assert after.read() == got.content
        finally:
            connection.close()
