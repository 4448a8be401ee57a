"""A body over the limit: the 413 reaches clients that send everything before reading.

Python's http.client (and requests on top of it) reads the answer only once the whole body is
sent. If the server closed while the body was still arriving, those clients got a reset
instead of the 413; so the server reads and discards the rest, within bounds, before closing.
"""

import http.client
import json
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tests.helpers import tasks_url
from tests.live_server import running_server
from tests.ports import free_port
from todo_api.api.middleware.body_limit import (
    DRAIN_MAX_BYTES,
    DRAIN_MAX_SECONDS,
    BodySizeLimitMiddleware,
)

LIMIT = 64 * 1024  # MAX_BODY_BYTES's default, which the server runs with
OVERSIZED = 8 * 1024 * 1024
PIECE = 64 * 1024
JSON = {"Content-Type": "application/json"}
# What the kernels' socket buffers and the server's own buffer may hold beyond what the
# server has read when it closes; loopback buffers grow to a few MiB.
BUFFERED = 32 * 1024 * 1024


@pytest.fixture(scope="module")
def server_port(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    """One real server for the module; a refused body never reaches the database."""
    log_path = tmp_path_factory.mktemp("body-drain") / "server.log"
    with running_server(database_url, log_path) as (_process, client):
        port = client.base_url.port
        assert port is not None
        yield port


def _pieces(body: bytes) -> Iterator[bytes]:
    for start in range(0, len(body), PIECE):
        yield body[start : start + PIECE]


@pytest.mark.parametrize("framing", ["content-length", "chunked"])
def test_http_client_sending_8_mib_reads_the_413(server_port: int, framing: str) -> None:
    body = b'{"title": "' + b"x" * OVERSIZED + b'"}'
    connection = http.client.HTTPConnection("127.0.0.1", server_port, timeout=10.0)
    try:
        if framing == "chunked":
            connection.request(
                "POST", tasks_url("alice"), body=_pieces(body), headers=JSON, encode_chunked=True
            )
        else:
            connection.request("POST", tasks_url("alice"), body=body, headers=JSON)
        response = connection.getresponse()
        content = response.read()
    finally:
        connection.close()

    assert response.status == 413, content
    assert response.getheader("Content-Type") == "application/problem+json"
    assert response.getheader("Connection") == "close"
    problem = json.loads(content)
    assert problem["status"] == 413
    assert str(LIMIT) in problem["detail"]
    with httpx.Client(base_url=f"http://127.0.0.1:{server_port}") as client:
        assert client.get("/health").status_code == 200


def _sent_before_cut_off(port: int, head: bytes, piece: bytes, total: int) -> int:
    """Sends `head`, then `piece` until `total` bytes of it; how many went out before a reset."""
    sent = 0
    with socket.create_connection(("127.0.0.1", port), timeout=DRAIN_MAX_SECONDS + 5.0) as sock:
        try:
            sock.sendall(head)
            while sent < total:
                sock.sendall(piece)
                sent += len(piece)
        except (BrokenPipeError, ConnectionResetError):
            pass
    return sent


@pytest.mark.parametrize("framing", ["content-length", "chunked"])
def test_a_body_far_beyond_the_drain_bound_is_cut_off(server_port: int, framing: str) -> None:
    total = 4 * DRAIN_MAX_BYTES
    data = b"x" * (1024 * 1024)
    head = f"POST {tasks_url('alice')} HTTP/1.1\r\nHost: 127.0.0.1\r\n".encode()
    head += b"Content-Type: application/json\r\n"
    if framing == "chunked":
        head += b"Transfer-Encoding: chunked\r\n\r\n"
        piece = b"%x\r\n" % len(data) + data + b"\r\n"
    else:
        head += b"Content-Length: %d\r\n\r\n" % total
        piece = data

    started = time.monotonic()
    sent = _sent_before_cut_off(server_port, head, piece, total)
    elapsed = time.monotonic() - started

    assert sent < total, "the server read all of it"
    assert sent <= LIMIT + DRAIN_MAX_BYTES + BUFFERED
    assert elapsed < DRAIN_MAX_SECONDS
    with httpx.Client(base_url=f"http://127.0.0.1:{server_port}") as client:
        assert client.get("/health").status_code == 200


async def _read_body(request: Request) -> Response:
    await request.body()
    return Response(status_code=204)


@contextmanager
def _serving(drain_seconds: float, http: str) -> Iterator[int]:
    """Uvicorn in a thread, with a drain time bound short enough to wait for."""
    app = BodySizeLimitMiddleware(
        Starlette(routes=[Route("/", _read_body, methods=["POST"])]),
        max_bytes=1024,
        drain_seconds=drain_seconds,
    )
    port = free_port()
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, http=http, lifespan="off", log_level="warning"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 10.0
        while not server.started:
            assert thread.is_alive(), "uvicorn stopped"
            assert time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.01)
        yield port
    finally:
        server.should_exit = True
        thread.join(timeout=10.0)


@pytest.mark.parametrize("http", ["httptools", "h11"])
def test_a_trickled_body_is_cut_off_after_the_drain_time_bound(http: str) -> None:
    drain_seconds = 1.0
    with (
        _serving(drain_seconds, http) as port,
        socket.create_connection(("127.0.0.1", port)) as sock,
    ):
        sock.sendall(
            b"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"800\r\n" + b"x" * 2048 + b"\r\n"
        )
        started = time.monotonic()
        sock.settimeout(0.02)
        answer = b""
        answered_after = closed_after = None
        while closed_after is None and time.monotonic() - started < drain_seconds + 5.0:
            try:
                sock.sendall(b"400\r\n" + b"y" * 1024 + b"\r\n")
                received = sock.recv(65536)
            except TimeoutError:
                continue
            except (BrokenPipeError, ConnectionResetError):
                received = b""
            if not received:
                closed_after = time.monotonic() - started
            elif not answer:
                answered_after = time.monotonic() - started
            answer += received

    assert answer.startswith(b"HTTP/1.1 413 "), answer
    assert b"connection: close" in answer.lower()
    # The answer goes out at once, so a client that reads while it sends can stop early.
    assert answered_after is not None
    assert answered_after < drain_seconds / 2
    assert closed_after is not None, "still open"
    assert drain_seconds * 0.9 <= closed_after < drain_seconds + 1.0
