"""The real server as a subprocess, for tests that signal or kill it."""

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from tests.ports import free_port

STARTUP_TIMEOUT_SECONDS = 20.0
EXIT_TIMEOUT_SECONDS = 10.0
REQUEST_TIMEOUT_SECONDS = 10.0
POLL_INTERVAL_SECONDS = 0.05


def wait_until_healthy(
    process: subprocess.Popen[bytes], client: httpx.Client, log_path: Path
) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"server exited with {process.returncode}:\n{log_path.read_text()}")
        try:
            if client.get("/health", timeout=1.0).status_code == 200:
                return
        except httpx.TransportError:
            pass  # not listening yet
        time.sleep(POLL_INTERVAL_SECONDS)
    pytest.fail(f"server not healthy within {STARTUP_TIMEOUT_SECONDS} s:\n{log_path.read_text()}")


@contextmanager
def running_server(
    database_url: str, log_path: Path, **extra_env: str
) -> Iterator[tuple[subprocess.Popen[bytes], httpx.Client]]:
    """`python -m todo_api` on a free port, healthy; killed on exit if still running."""
    port = free_port()
    env = os.environ | {
        "DATABASE_URL": database_url,
        "HOST": "127.0.0.1",
        "PORT": str(port),
        "LOG_LEVEL": "warning",
        **extra_env,
    }
    with log_path.open("ab") as log:
        # cwd away from the project so a developer's `.env` cannot reconfigure the server.
        process = subprocess.Popen(
            [sys.executable, "-m", "todo_api"],
            env=env,
            cwd=log_path.parent,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        with httpx.Client(
            base_url=f"http://127.0.0.1:{port}", timeout=REQUEST_TIMEOUT_SECONDS
        ) as client:
            wait_until_healthy(process, client, log_path)
            yield process, client
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=EXIT_TIMEOUT_SECONDS)
