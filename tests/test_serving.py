"""The production command: several workers, JSON logs, proxy headers, graceful SIGTERM."""

import json
import os
import re
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import ValidationError

from tests.helpers import task_url, tasks_url
from tests.live_server import running_server
from todo_api.settings import Settings

SHUTDOWN_TIMEOUT_SECONDS = 15.0
SECRET = "Secret-title-5e1f"


def stop_with_sigterm(process: subprocess.Popen[bytes], log_path: Path) -> float:
    """Sends SIGTERM; asserts a clean exit within the bound and returns how long it took."""
    started = time.monotonic()
    process.send_signal(signal.SIGTERM)
    try:
        returncode = process.wait(timeout=SHUTDOWN_TIMEOUT_SECONDS)
    except subprocess.TimeoutExpired:
        pytest.fail(
            f"no exit within {SHUTDOWN_TIMEOUT_SECONDS} s of SIGTERM:\n{log_path.read_text()}"
        )
    assert returncode == 0, log_path.read_text()
    return time.monotonic() - started


def is_listening(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_workers_serve_log_json_and_stop_gracefully_on_sigterm(
    migrated_url: str, tmp_path: Path
) -> None:
    log_path = tmp_path / "server.log"
    with running_server(
        migrated_url, log_path, WORKERS="2", LOG_FORMAT="json", LOG_LEVEL="debug"
    ) as (process, client):
        port = client.base_url.port
        assert port is not None
        # The proxy at 127.0.0.1 (the default FORWARDED_ALLOW_IPS) terminated TLS.
        created = client.post(
            tasks_url("alice"),
            json={"title": SECRET, "description": SECRET},
            headers={"X-Request-ID": "serve-create", "X-Forwarded-Proto": "https"},
        )
        assert created.status_code == 201, created.text
        task_id = created.json()["id"]
        assert (
            created.headers["location"] == f"https://127.0.0.1:{port}{task_url('alice', task_id)}"
        )
        assert created.headers["x-request-id"] == "serve-create"
        # Several requests over fresh connections, so both workers are likely to answer some.
        read_ids = [f"serve-read-{n}" for n in range(6)]
        for request_id in read_ids:
            with httpx.Client(base_url=str(client.base_url)) as fresh:
                response = fresh.get(
                    task_url("alice", task_id), headers={"X-Request-ID": request_id}
                )
            assert response.status_code == 200, response.text
            assert response.json()["title"] == SECRET

        elapsed = stop_with_sigterm(process, log_path)

    assert elapsed < SHUTDOWN_TIMEOUT_SECONDS
    assert not is_listening(port)

    output = log_path.read_text()
    entries: list[dict[str, Any]] = []
    for line in output.splitlines():
        if line.strip():
            entries.append(json.loads(line))  # every line is one JSON object
    workers = {
        entry["message"].rsplit("[", 1)[1].rstrip("]")
        for entry in entries
        if entry["message"].startswith("Started server process")
    }
    assert len(workers) == 2, output
    for pid in workers:
        assert not process_exists(int(pid)), f"worker {pid} outlived the server"

    # One line per request (uvicorn's own access log is off), under the route template.
    request_lines = [entry for entry in entries if entry["logger"] == "todo_api.requests"]
    by_id = {entry["request_id"]: entry for entry in request_lines}
    for request_id in ["serve-create", *read_ids]:
        assert [e["request_id"] for e in request_lines].count(request_id) == 1, output
    assert by_id["serve-create"]["route"] == "/api/{user_id}/tasks"
    assert by_id["serve-create"]["status"] == 201
    assert {by_id[request_id]["route"] for request_id in read_ids} == {
        "/api/{user_id}/tasks/{task_id}"
    }
    # Not even at LOG_LEVEL=debug does task content reach the logs.
    assert SECRET not in output


def test_forwarded_headers_are_ignored_from_untrusted_addresses(
    migrated_url: str, tmp_path: Path
) -> None:
    log_path = tmp_path / "server.log"
    with running_server(
        migrated_url, log_path, FORWARDED_ALLOW_IPS="192.0.2.1", LOG_FORMAT="text", LOG_LEVEL="info"
    ) as (process, client):
        port = client.base_url.port
        created = client.post(
            tasks_url("bob"),
            json={"title": "Plain"},
            headers={"X-Forwarded-Proto": "https", "X-Forwarded-For": "203.0.113.9"},
        )
        assert created.status_code == 201, created.text
        location = created.headers["location"]
        assert location == f"http://127.0.0.1:{port}{task_url('bob', created.json()['id'])}"
        stop_with_sigterm(process, log_path)

    output = log_path.read_text()
    request_id = re.escape(created.headers["x-request-id"])
    post_line = re.compile(
        r"^\S+ \S+ INFO todo_api\.requests: POST /api/\{user_id\}/tasks 201 \d+\.\dms "
        rf"request_id={request_id}$"
    )
    assert len([line for line in output.splitlines() if post_line.match(line)]) == 1, output
    assert len([line for line in output.splitlines() if " POST " in line]) == 1, output


def test_serving_settings_are_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WORKERS", "4")
    monkeypatch.setenv("LOG_FORMAT", "JSON")
    monkeypatch.setenv("FORWARDED_ALLOW_IPS", "10.0.0.5,10.0.0.6")
    settings = Settings(_env_file=None)
    assert settings.workers == 4
    assert settings.log_format == "json"
    assert settings.forwarded_allow_ips == "10.0.0.5,10.0.0.6"


def test_serving_settings_defaults_and_rejections(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("WORKERS", "LOG_FORMAT", "FORWARDED_ALLOW_IPS"):
        monkeypatch.delenv(name, raising=False)
    defaults = Settings(_env_file=None)
    assert (defaults.workers, defaults.log_format, defaults.forwarded_allow_ips) == (
        1,
        "text",
        "127.0.0.1",
    )
    with pytest.raises(ValidationError):
        Settings(_env_file=None, workers=0)
    with pytest.raises(ValidationError):
        Settings(_env_file=None, log_format="xml")
