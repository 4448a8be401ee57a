"""Acknowledged writes survive the server process being killed with SIGKILL."""

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from alembic import command

from tests.conftest import alembic_config
from tests.helpers import assert_problem, task_url, tasks_url

STARTUP_TIMEOUT_SECONDS = 20.0
EXIT_TIMEOUT_SECONDS = 10.0
REQUEST_TIMEOUT_SECONDS = 10.0
POLL_INTERVAL_SECONDS = 0.05
PAGE_SIZE = 2
MAX_PAGES = 50

ALICE = "alice"
BOB = "bob@example.com"

Task = dict[str, Any]


@pytest.fixture
def migrated_url(new_database: Callable[[], str]) -> str:
    url = new_database()
    command.upgrade(alembic_config(url), "head")
    return url


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


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
    database_url: str, log_path: Path
) -> Iterator[tuple[subprocess.Popen[bytes], httpx.Client]]:
    """`python -m todo_api` on a free port, healthy; killed on exit if still running."""
    port = free_port()
    env = os.environ | {
        "DATABASE_URL": database_url,
        "HOST": "127.0.0.1",
        "PORT": str(port),
        "LOG_LEVEL": "warning",
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


def write_tasks(client: httpx.Client) -> tuple[dict[int, Task], Task]:
    """Creates, edits, toggles and deletes tasks of two users.

    Returns every surviving task as the API last returned it, by id, and the deleted task.
    """
    tasks: dict[int, Task] = {}

    def record(response: httpx.Response, status: int = 200) -> Task:
        assert response.status_code == status, response.text
        task: Task = response.json()
        tasks[task["id"]] = task
        return task

    def create(user: str, **body: Any) -> Task:
        return record(client.post(tasks_url(user), json=body), 201)

    milk = create(ALICE, title="Buy milk", description="2 litres")
    report = create(ALICE, title="Write report", completed=True)
    cafe = create(ALICE, title="Café ☕ with Zoë", description="line 1\nline 2")
    create(ALICE, title="Water plants")
    gym = create(BOB, title="Gym")
    taxes = create(BOB, title="Taxes", description="due Friday")
    create(BOB, title="Call mum", completed=True)
    doomed = create(BOB, title="Delete me")

    record(client.patch(task_url(ALICE, milk["id"]), json={"title": "Buy oat milk"}))
    record(client.put(task_url(ALICE, cafe["id"]), json={"title": "Café", "completed": True}))
    record(client.patch(f"{task_url(ALICE, report['id'])}/complete"))
    record(client.patch(f"{task_url(BOB, gym['id'])}/complete"))
    record(client.patch(f"{task_url(BOB, taxes['id'])}/complete", json={"completed": True}))
    record(client.patch(task_url(BOB, taxes["id"]), json={"description": None}))

    response = client.delete(task_url(BOB, doomed["id"]))
    assert response.status_code == 204, response.text
    del tasks[doomed["id"]]

    # The writes above really changed things, so comparing after the restart means something.
    assert tasks[milk["id"]]["title"] == "Buy oat milk"
    assert tasks[cafe["id"]]["completed"] is True
    assert tasks[cafe["id"]]["description"] is None
    assert tasks[report["id"]]["completed"] is False
    assert tasks[report["id"]]["completed_at"] is None
    assert tasks[gym["id"]]["completed_at"] is not None
    assert tasks[taxes["id"]]["updated_at"] != taxes["updated_at"]
    return tasks, doomed


def list_all(client: httpx.Client, user: str) -> list[Task]:
    """Every task of `user`, following the `next` links page by page."""
    listed: list[Task] = []
    url = f"{tasks_url(user)}?limit={PAGE_SIZE}"
    for _ in range(MAX_PAGES):
        response = client.get(url)
        assert response.status_code == 200, response.text
        listed.extend(response.json())
        next_page = response.links.get("next")
        if next_page is None:
            assert int(response.headers["x-total-count"]) == len(listed)
            return listed
        url = next_page["url"]
    pytest.fail(f"more than {MAX_PAGES} pages of tasks for {user}")


def by_id(task: Task) -> int:
    task_id: int = task["id"]
    return task_id


def test_acknowledged_writes_survive_sigkill(migrated_url: str, tmp_path: Path) -> None:
    log_path = tmp_path / "server.log"
    with running_server(migrated_url, log_path) as (process, client):
        expected, deleted = write_tasks(client)

        process.kill()
        process.wait(timeout=EXIT_TIMEOUT_SECONDS)
        assert process.returncode == -signal.SIGKILL

    with running_server(migrated_url, log_path) as (_, client):
        for user in (ALICE, BOB):
            owned = [task for task in expected.values() if task["user_id"] == user]
            assert len(owned) >= PAGE_SIZE + 1, "the listing should span several pages"
            assert sorted(list_all(client, user), key=by_id) == sorted(owned, key=by_id)

        for task in expected.values():
            response = client.get(task_url(task["user_id"], task["id"]))
            assert response.status_code == 200, response.text
            assert response.json() == task

        assert_problem(client.get(task_url(BOB, deleted["id"])), 404)

        # The deleted task had the highest id; a new task must not inherit its URL.
        response = client.post(tasks_url(BOB), json={"title": "After the crash"})
        assert response.status_code == 201, response.text
        assert response.json()["id"] > deleted["id"]
