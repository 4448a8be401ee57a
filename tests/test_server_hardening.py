"""The real server under requests made to hurt it: what comes back, and what reaches the log."""

import http.client
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, text

from tests.helpers import sync_url, tasks_url
from tests.live_server import running_server

ORIGIN = "https://app.example.com"
# Well past what a single request may make the worker spend; the fixed parser takes about
# a millisecond for these, the quadratic one took seconds.
FAST_SECONDS = 0.5


def _refuse_long_titles(database_url: str) -> None:
    """Makes every insert of a title of 20 characters or more fail in the database itself."""
    engine = create_engine(sync_url(database_url))
    with engine.begin() as connection:
        if engine.dialect.name == "postgresql":
            connection.execute(
                text("ALTER TABLE tasks ADD CONSTRAINT short_titles CHECK (length(title) < 20)")
            )
        else:
            connection.execute(
                text(
                    "CREATE TRIGGER short_titles BEFORE INSERT ON tasks"
                    " WHEN length(NEW.title) >= 20"
                    " BEGIN SELECT RAISE(ABORT, 'refused by short_titles'); END"
                )
            )
    engine.dispose()


def test_a_500_has_every_header_and_is_logged_once_without_task_content(
    migrated_url: str, tmp_path: Path
) -> None:
    _refuse_long_titles(migrated_url)
    log_path = tmp_path / "server.log"
    with running_server(migrated_url, log_path, LOG_LEVEL="debug", CORS_ORIGINS=ORIGIN) as (
        _process,
        client,
    ):
        response = client.post(
            tasks_url("alice"),
            json={"title": "my secret diagnosis in full", "description": "private note c0ffee"},
            headers={"Origin": ORIGIN, "X-Request-ID": "fail-1"},
        )
        # Lets the log catch up with the response.
        assert client.get("/health").status_code == 200

    assert response.status_code == 500, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["x-request-id"] == "fail-1"
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["access-control-allow-origin"] == ORIGIN
    log = log_path.read_text()
    assert log.count("Unhandled error on POST /api/{user_id}/tasks") == 1, log
    assert "Exception in ASGI application" not in log
    for content in ("secret", "diagnosis", "private note", "c0ffee"):
        assert content not in log, log
    # What an operator needs is still there: the kind of error and which statement.
    # (the driver's own class: psycopg's CheckViolation, sqlite3's IntegrityError)
    assert "CheckViolation" in log or "sqlite3.IntegrityError" in log, log
    assert "INSERT INTO tasks" in log


def test_forged_lines_and_user_ids_do_not_reach_the_log(migrated_url: str, tmp_path: Path) -> None:
    log_path = tmp_path / "server.log"
    forged = "2026-12-01 20:00:00,000 INFO todo_api.requests: DELETE /api/{user_id}/tasks 200"
    with running_server(migrated_url, log_path, LOG_LEVEL="info") as (_process, client):
        assert client.get("/nothing%0a" + forged.replace(" ", "%20")).status_code == 404
        assert client.get("/nothing%0d%0a" + forged.replace(" ", "%20")).status_code == 404
        # A trailing slash has no route either (its 404 says to drop the slash).
        assert client.get("/api/alice-5e1f/tasks/").status_code == 404
        assert client.get("/health").status_code == 200

    log = log_path.read_text()
    assert not any(line.startswith("2026-12-01 20:00:00,000") for line in log.splitlines()), log
    assert "alice-5e1f" not in log
    assert log.count("GET (no route) 404") == 3, log


def _base36(number: int) -> str:
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    text = ""
    while True:
        number, digit = divmod(number, 36)
        text = digits[digit] + text
        if not number:
            return text


def _timed(
    port: int, method: str, path: str, headers: dict[str, str], body: bytes | None = None
) -> tuple[int, str, float]:
    """Status, content type and seconds taken, with http.client (httpx refuses long URLs)."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10.0)
    try:
        started = time.monotonic()
        connection.request(method, path, body=body, headers=headers)
        response = connection.getresponse()
        response.read()
        return response.status, response.getheader("content-type", ""), time.monotonic() - started
    finally:
        connection.close()


def test_oversized_heads_are_refused_fast_and_health_stays_fast(
    migrated_url: str, tmp_path: Path
) -> None:
    if_match = '"",' * 16_384 + "," * 16_384  # 64 KiB
    # 16,000 distinct names in 62 KB: just below what uvicorn itself refuses (64 KiB).
    names = "&".join(_base36(i) for i in range(16_000))
    with running_server(migrated_url, tmp_path / "server.log") as (_process, client):
        port = client.base_url.port
        assert port is not None
        health_times: list[float] = []
        done = threading.Event()

        def probe_health() -> None:
            with httpx.Client(base_url=str(client.base_url), timeout=5.0) as prober:
                while not done.is_set():
                    started = time.monotonic()
                    assert prober.get("/health").status_code == 200
                    health_times.append(time.monotonic() - started)

        prober = threading.Thread(target=probe_health)
        prober.start()
        deadline = time.monotonic() + 5.0
        while not health_times and time.monotonic() < deadline:
            time.sleep(0.01)
        try:
            header = _timed(
                port,
                "PATCH",
                "/api/mallory/tasks/999999",
                {"If-Match": if_match, "Content-Type": "application/json"},
                b'{"title": "x"}',
            )
            query = _timed(port, "GET", f"{tasks_url('mallory')}?{names}", {})
        finally:
            done.set()
            prober.join()

    assert header[:2] == (431, "application/problem+json")
    assert query[:2] == (414, "application/problem+json")
    assert header[2] < FAST_SECONDS
    assert query[2] < FAST_SECONDS
    assert max(health_times) < FAST_SECONDS


def test_sigterm_completes_while_a_client_trickles_a_body(
    migrated_url: str, tmp_path: Path
) -> None:
    log_path = tmp_path / "server.log"
    grace = 1
    with running_server(migrated_url, log_path, SHUTDOWN_GRACE_SECONDS=str(grace)) as (
        process,
        client,
    ):
        port = client.base_url.port
        assert port is not None
        with socket.create_connection(("127.0.0.1", port), timeout=5.0) as trickler:
            trickler.sendall(
                b"POST /api/alice/tasks HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                b"Content-Type: application/json\r\nContent-Length: 100\r\n\r\n"
                b'{"title":'
            )
            time.sleep(1.0)  # the request is in the app, waiting for the rest of its body
            started = time.monotonic()
            process.send_signal(signal.SIGTERM)
            try:
                returncode = process.wait(timeout=grace + 5.0)
            except subprocess.TimeoutExpired:
                pytest.fail(f"still running {grace + 5} s after SIGTERM:\n{log_path.read_text()}")
            stopped_after = time.monotonic() - started
    assert returncode == 0, log_path.read_text()
    assert stopped_after >= grace * 0.9  # the request did get its grace period
