"""The server process under SIGKILL (nothing acknowledged is lost) and SIGTERM (drains)."""

import signal
import socket
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from tests.helpers import libpq_url, task_url, tasks_url
from tests.live_server import EXIT_TIMEOUT_SECONDS, running_server
from tests.locks import row_locked, wait_for_a_write_held, wait_for_an_insert_held_on_tasks

WRITERS = 8
KILL_AFTER_ACKNOWLEDGED = 80
WRITE_PHASE_LIMIT_SECONDS = 10.0
EDIT_SUFFIX = " (edited)"

Task = dict[str, Any]


def _all_tasks(client: httpx.Client, user: str) -> list[Task]:
    response = client.get(tasks_url(user), params={"limit": 200})
    assert response.status_code == 200, response.text
    assert int(response.headers["x-total-count"]) <= 200
    tasks: list[Task] = response.json()
    return tasks


class Writers:
    """Threads that create and then edit tasks until told to stop or the server dies."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.acknowledged: dict[int, Task] = {}
        self.edit_acknowledged: set[int] = set()
        self.attempted_titles: set[str] = set()
        self.stop = threading.Event()
        self._lock = threading.Lock()
        self.threads = [
            threading.Thread(target=self._write, args=(f"writer{n}",)) for n in range(WRITERS)
        ]

    def _remember(self, task: Task, *, edit: bool) -> None:
        with self._lock:
            self.acknowledged[task["id"]] = task
            if edit:
                self.edit_acknowledged.add(task["id"])

    def _write(self, user: str) -> None:
        with httpx.Client(base_url=self.base_url, timeout=5.0) as client:
            for i in range(10_000):
                if self.stop.is_set():
                    return
                title = f"{user} task {i}"
                with self._lock:
                    self.attempted_titles.update({title, title + EDIT_SUFFIX})
                try:
                    created = client.post(tasks_url(user), json={"title": title})
                    if created.status_code != 201:
                        continue
                    self._remember(created.json(), edit=False)
                    task_id = created.json()["id"]
                    edited = client.patch(
                        task_url(user, task_id), json={"title": title + EDIT_SUFFIX}
                    )
                    if edited.status_code == 200:
                        self._remember(edited.json(), edit=True)
                except httpx.TransportError:
                    return  # the server is gone

    def __len__(self) -> int:
        with self._lock:
            return len(self.acknowledged)


def test_sigkill_during_concurrent_writes_loses_nothing_acknowledged(
    migrated_url: str, tmp_path: Path
) -> None:
    log_path = tmp_path / "server.log"
    with running_server(migrated_url, log_path) as (process, client):
        bystanders = [
            client.post(tasks_url("bystander"), json={"title": f"keep {i}"}).json()
            for i in range(5)
        ]
        writers = Writers(str(client.base_url))
        for thread in writers.threads:
            thread.start()
        deadline = time.monotonic() + WRITE_PHASE_LIMIT_SECONDS
        while len(writers) < KILL_AFTER_ACKNOWLEDGED and time.monotonic() < deadline:
            time.sleep(0.01)
        process.kill()  # mid-stream: every writer has a request in flight
        process.wait(timeout=EXIT_TIMEOUT_SECONDS)
        writers.stop.set()
        for thread in writers.threads:
            thread.join(timeout=EXIT_TIMEOUT_SECONDS)
    assert len(writers) >= KILL_AFTER_ACKNOWLEDGED

    with running_server(migrated_url, log_path) as (_, client):
        assert _all_tasks(client, "bystander") == list(reversed(bystanders))
        stored = {
            task["id"]: task for n in range(WRITERS) for task in _all_tasks(client, f"writer{n}")
        }

    for task_id, acknowledged in writers.acknowledged.items():
        assert task_id in stored, f"acknowledged task {task_id} was lost"
        if stored[task_id] != acknowledged:
            # Only an edit that was in flight at the kill may have landed unacknowledged.
            assert task_id not in writers.edit_acknowledged
            assert stored[task_id]["title"] == acknowledged["title"] + EDIT_SUFFIX
    unacknowledged = set(stored) - set(writers.acknowledged)
    assert len(unacknowledged) <= WRITERS  # at most one create in flight per writer
    for task_id in unacknowledged:
        assert stored[task_id]["title"] in writers.attempted_titles


def test_sigterm_finishes_in_flight_requests_then_exits_zero(
    migrated_url: str, tmp_path: Path
) -> None:
    with running_server(migrated_url, tmp_path / "server.log") as (process, client):
        task = client.post(tasks_url("alice"), json={"title": "before"}).json()
        outcome: dict[str, httpx.Response] = {}

        def slow_write() -> None:
            with httpx.Client(base_url=str(client.base_url), timeout=15.0) as writer:
                outcome["response"] = writer.patch(
                    task_url("alice", task["id"]), json={"title": "finished during shutdown"}
                )

        with row_locked(migrated_url, task["id"]):
            in_flight = threading.Thread(target=slow_write)
            in_flight.start()
            wait_for_a_write_held(migrated_url)
            process.send_signal(signal.SIGTERM)
            time.sleep(0.5)
            assert process.poll() is None, "exited while a request was still in flight"
        in_flight.join(timeout=15.0)

        assert outcome["response"].status_code == 200
        assert outcome["response"].json()["title"] == "finished during shutdown"
        assert process.wait(timeout=EXIT_TIMEOUT_SECONDS) == 0


def _count(database_url: str, table: str) -> int:
    with psycopg.connect(libpq_url(database_url)) as connection:
        row = connection.execute(f"SELECT count(*) FROM {table}").fetchone()
    assert row is not None
    return int(row[0])


def test_sigterm_during_a_keyed_create_frees_its_key(
    migrated_url: str, tmp_path: Path, backend: str
) -> None:
    """Cut off by the end of the shutdown grace period, a keyed create answers 503 and leaves
    no key, so the client's retry after the restart creates the task (it used to get a
    plain-text 500 and then 409 for 60 s)."""
    if backend != "postgres":
        pytest.skip("holds a table lock from another connection while the app inserts")
    log_path = tmp_path / "server.log"
    body = {"title": "cut off"}
    headers = {"Idempotency-Key": "cut-off-1"}
    outcome: dict[str, httpx.Response] = {}
    with (
        running_server(migrated_url, log_path, SHUTDOWN_GRACE_SECONDS="1", LOG_LEVEL="info") as (
            process,
            client,
        ),
        psycopg.connect(libpq_url(migrated_url)) as locker,
    ):
        # SHARE conflicts with the lock an INSERT takes: the create waits, holding its claim.
        locker.execute("LOCK TABLE tasks IN SHARE MODE")

        def keyed_create() -> None:
            with httpx.Client(base_url=str(client.base_url), timeout=15.0) as creator:
                outcome["response"] = creator.post(tasks_url("alice"), json=body, headers=headers)

        creating = threading.Thread(target=keyed_create)
        creating.start()
        wait_for_an_insert_held_on_tasks(migrated_url)
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=EXIT_TIMEOUT_SECONDS) == 0
        creating.join(timeout=5.0)
        locker.rollback()

    response = outcome["response"]
    assert response.status_code == 503, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["type"] == "urn:todo-api:request-cut-off"
    assert int(response.headers["retry-after"]) > 0
    assert _count(migrated_url, "idempotency_keys") == 0
    assert _count(migrated_url, "tasks") == 0
    log = log_path.read_text()
    assert "Exception in ASGI application" not in log
    assert "Traceback" not in log
    assert "Request cancelled before it finished: POST /api/{user_id}/tasks" in log

    with running_server(migrated_url, tmp_path / "restarted.log") as (_, client):
        retried = client.post(tasks_url("alice"), json=body, headers=headers)
    assert retried.status_code == 201, retried.text
    assert _count(migrated_url, "tasks") == 1


def test_a_keyed_create_whose_client_went_away_keeps_no_key_in_flight(
    migrated_url: str, tmp_path: Path, backend: str
) -> None:
    """A client that gives up (closes its connection) while its keyed create waits: the
    server does not cancel the request, so the create finishes, and the client's retry gets
    its answer."""
    if backend != "postgres":
        pytest.skip("holds a table lock from another connection while the app inserts")
    body = b'{"title":"given up on"}'
    with (
        running_server(migrated_url, tmp_path / "server.log") as (_, client),
        psycopg.connect(libpq_url(migrated_url)) as locker,
    ):
        port = client.base_url.port
        assert port is not None
        locker.execute("LOCK TABLE tasks IN SHARE MODE")
        with socket.create_connection(("127.0.0.1", port), timeout=5.0) as impatient:
            impatient.sendall(
                b"POST /api/alice/tasks HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                b"Content-Type: application/json\r\nIdempotency-Key: gone-1\r\n"
                b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body
            )
            wait_for_an_insert_held_on_tasks(migrated_url)
        locker.rollback()  # the client is gone; the insert goes on
        headers = {"Idempotency-Key": "gone-1", "Content-Type": "application/json"}
        # If the first is still finishing, the retry waits for it.
        retried = client.post(tasks_url("alice"), content=body, headers=headers)
    assert retried.status_code == 201, retried.text
    assert retried.headers["idempotent-replayed"] == "true"
    assert _count(migrated_url, "tasks") == 1
