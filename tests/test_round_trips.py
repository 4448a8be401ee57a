"""Round trips to the database per request, counted by a proxy between the API and PostgreSQL
(tests/roundtrip_proxy.py): what a request waits for when the database is far away.

Counts are deterministic once the connection is open and its statements are known, so this
is not a timed test. Issue 23 asks for one round trip for every operation; these are the
operations that already take one.
"""

import statistics
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from alembic import command

from tests.conftest import alembic_config
from tests.helpers import task_url, tasks_url
from tests.live_server import running_server
from tests.roundtrip_proxy import RoundTrips, roundtrip_proxy

WARM_UP = 2
MEASURED = 5
OWNER = "alice"

Operation = Callable[[httpx.Client, int], httpx.Response]

OPERATIONS: dict[str, Operation] = {
    "list": lambda client, _task: client.get(tasks_url(OWNER)),
    "read": lambda client, task: client.get(task_url(OWNER, task)),
    "create": lambda client, _task: client.post(tasks_url(OWNER), json={"title": "new"}),
    "patch": lambda client, task: client.patch(task_url(OWNER, task), json={"title": "patched"}),
    "put": lambda client, task: client.put(
        task_url(OWNER, task), json={"title": "replaced", "completed": False}
    ),
    "toggle": lambda client, task: client.patch(f"{task_url(OWNER, task)}/complete"),
    "delete": lambda client, task: client.delete(task_url(OWNER, task)),
    "stats": lambda client, _task: client.get(f"{tasks_url(OWNER)}/stats"),
    "tags": lambda client, _task: client.get(f"/api/{OWNER}/tags"),
}


@pytest.fixture(scope="module")
def proxied_server(
    backend: str,
    new_database: Callable[[], str],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[httpx.Client, RoundTrips]]:
    if backend != "postgres":
        pytest.skip("counts the round trips to a PostgreSQL server")
    url = new_database()
    command.upgrade(alembic_config(url), "head")
    log = Path(tmp_path_factory.mktemp("round-trips")) / "server.log"
    with (
        roundtrip_proxy(url) as (proxied_url, counter),
        running_server(proxied_url, log) as (
            _,
            client,
        ),
    ):
        yield client, counter


def _measure(client: httpx.Client, counter: RoundTrips, operation: Operation) -> int:
    task = client.post(tasks_url(OWNER), json={"title": "target", "tags": ["work"]})
    assert task.status_code == 201, task.text
    before = counter.count
    response = operation(client, task.json()["id"])
    assert response.status_code < 300, response.text
    return counter.count - before


@pytest.mark.parametrize("name", sorted(OPERATIONS))
def test_the_operation_takes_one_round_trip(
    proxied_server: tuple[httpx.Client, RoundTrips], name: str
) -> None:
    client, counter = proxied_server
    operation = OPERATIONS[name]
    for _ in range(WARM_UP):
        _measure(client, counter, operation)
    counts = [_measure(client, counter, operation) for _ in range(MEASURED)]
    assert statistics.median(counts) == 1, counts
