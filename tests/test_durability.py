"""Acknowledged writes survive the server process being killed with SIGKILL."""

import signal
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.helpers import assert_problem, task_url, tasks_url
from tests.live_server import EXIT_TIMEOUT_SECONDS, running_server

PAGE_SIZE = 2
MAX_PAGES = 50

ALICE = "alice"
BOB = "bob@example.com"

Task = dict[str, Any]


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
