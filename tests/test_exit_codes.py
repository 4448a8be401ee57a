"""Each way start-up can fail says so in one line on stderr and exits with its own status."""

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import PROJECT_ROOT
from tests.ports import free_port
from todo_api import exit_codes

STOPPED_WITHIN_SECONDS = 15.0


def _environment(**settings: str) -> dict[str, str]:
    # Only what the test sets: CI exports DATABASE_URL and friends for the whole suite.
    kept = {name: value for name, value in os.environ.items() if name in ("PATH", "HOME")}
    return kept | {"LOG_LEVEL": "warning", **settings}


def _run(command: list[str], cwd: Path, **settings: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command,
        env=_environment(**settings),
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
    )


SERVER = [sys.executable, "-m", "todo_api"]
MIGRATIONS = [sys.executable, "-m", "alembic", "-c", str(PROJECT_ROOT / "alembic.ini")]


def test_each_invalid_setting_is_one_line_and_status_2(tmp_path: Path) -> None:
    finished = _run(
        SERVER,
        tmp_path,
        DATABASE_URL="mysql://app:hunter2-secret@db.example/app",
        CORS_ORIGINS="http://localhost:3000/,localhost:5173",
        AUTH_MODE="jwt",
        AUTH_JWKS_URL="localhost:3000/api/auth/jwks",
    )
    assert finished.returncode == exit_codes.MISCONFIGURED, finished.stderr
    lines = finished.stderr.strip().splitlines()
    assert len(lines) == 3, finished.stderr
    assert lines[0].startswith("todo_api: invalid DATABASE_URL: DATABASE_URL must be a PostgreSQL")
    assert lines[0].endswith("not mysql")
    # The trailing slash is normalised away; the entry without a scheme is named.
    assert lines[1].startswith("todo_api: invalid CORS_ORIGINS: ")
    assert "'localhost:5173'" in lines[1]
    assert "localhost:3000" not in lines[1].split("; not ")[1]
    assert lines[2].startswith("todo_api: invalid AUTH_JWKS_URL: ")
    assert "hunter2" not in finished.stderr


def test_the_migrations_refuse_an_invalid_setting_in_one_line(tmp_path: Path) -> None:
    finished = _run([*MIGRATIONS, "upgrade", "head"], tmp_path, DATABASE_URL="mysql://u:pw@h/db")
    assert finished.returncode == exit_codes.MISCONFIGURED, finished.stderr
    [line] = finished.stderr.strip().splitlines()
    assert line.startswith("todo_api: invalid DATABASE_URL: "), line


@pytest.mark.parametrize("host", ["127.0.0.1", "192.0.2.1"])
def test_a_port_that_cannot_be_listened_on_is_status_5(
    migrated_url: str, tmp_path: Path, host: str
) -> None:
    """In use by another process, or an address this host does not have (TEST-NET-1)."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        finished = _run(SERVER, tmp_path, DATABASE_URL=migrated_url, HOST=host, PORT=str(port))
    assert finished.returncode == exit_codes.CANNOT_LISTEN, finished.stderr
    [line] = finished.stderr.strip().splitlines()
    assert line.startswith(f"todo_api: cannot listen on {host}:{port}: "), line


def test_sigterm_to_make_serve_stops_the_server(migrated_url: str, tmp_path: Path) -> None:
    """A supervisor that runs `make serve` and stops it with SIGTERM leaves nothing running."""
    port = free_port()
    log = tmp_path / "make.log"
    env = os.environ | {
        "DATABASE_URL": migrated_url,
        "MIGRATION_DATABASE_URL": "",
        "HOST": "127.0.0.1",
        "PORT": str(port),
        "WORKERS": "1",
        "LOG_LEVEL": "warning",
    }
    with log.open("wb") as output:
        make = subprocess.Popen(
            ["make", "--no-print-directory", "serve"],
            env=env,
            cwd=PROJECT_ROOT,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=5.0) as client:
            deadline = time.monotonic() + 30.0
            while True:
                assert make.poll() is None, log.read_text()
                assert time.monotonic() < deadline, log.read_text()
                try:
                    if client.get("/health").status_code == 200:
                        break
                except httpx.TransportError:
                    time.sleep(0.1)
            make.send_signal(signal.SIGTERM)  # to make alone, not its process group
            deadline = time.monotonic() + STOPPED_WITHIN_SECONDS
            while True:
                try:
                    client.get("/health")
                except httpx.TransportError:
                    break  # nothing listens any more
                assert time.monotonic() < deadline, "the server outlived make"
                time.sleep(0.1)
        make.wait(timeout=STOPPED_WITHIN_SECONDS)
    finally:
        if make.poll() is None or _group_alive(make.pid):
            os.killpg(make.pid, signal.SIGKILL)
            make.wait(timeout=10)
    assert not _group_alive(make.pid), "a process of `make serve` is still running"


def _group_alive(group: int) -> bool:
    try:
        os.killpg(group, 0)
    except ProcessLookupError:
        return False
    return True
