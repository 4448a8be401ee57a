"""The connection pool replaces connections before they are too old, without a request
waiting for the new one (issue 23: one round trip per request in steady state).

The pool's clock is the test's: connections age when the test says, not while it sleeps.
"""

import asyncio
import logging
import time
from collections.abc import Callable
from contextvars import ContextVar

import httpx
import pytest

from tests.helpers import close_databases, create, task_url
from todo_api.app import create_app
from todo_api.db import pool as pool_module
from todo_api.db.pool import RENEW_RETRY_SHARE, RENEW_SHARE, ConnectionPool
from todo_api.settings import Settings

RECYCLE = 60.0
#: Set by a "request": what a connection's opener had in its context.
REQUEST_ID: ContextVar[str] = ContextVar("REQUEST_ID")


class Clock:
    """Monotonic time, moved forward by `offset` on top of the real one."""

    def __init__(self) -> None:
        self.offset = 0.0

    def monotonic(self) -> float:
        return time.monotonic() + self.offset


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    clock = Clock()
    monkeypatch.setattr(pool_module, "time", clock)
    return clock


class Connections:
    """Numbered stand-ins for connections: who opened each, which are open, which closed."""

    def __init__(self) -> None:
        self.attempts = 0
        self.opened_by: list[asyncio.Task[object] | None] = []
        self.request_ids: list[str | None] = []
        self.open: set[int] = set()
        self.closed: list[int] = []
        self.refuse = False
        #: Cleared: a connection being opened waits until it is set again.
        self.answering = asyncio.Event()
        self.answering.set()

    async def connect(self) -> int:
        self.attempts += 1
        if self.refuse:
            raise ConnectionRefusedError("too many clients already")
        self.opened_by.append(asyncio.current_task())
        self.request_ids.append(REQUEST_ID.get(None))
        number = len(self.opened_by) - 1
        await self.answering.wait()
        self.open.add(number)
        return number

    async def close(self, connection: int) -> None:
        self.open.discard(connection)
        self.closed.append(connection)

    def opened_in(self, task: asyncio.Task[object] | None) -> list[int]:
        return [number for number, opener in enumerate(self.opened_by) if opener is task]


def pool_of(connections: Connections) -> ConnectionPool[int]:
    return ConnectionPool(
        connect=connections.connect,
        close=connections.close,
        usable=lambda _connection: True,
        size=2,
        overflow=0,
        timeout=1.0,
        recycle=RECYCLE,
    )


async def use(pool: ConnectionPool[int]) -> int:
    """Take a connection and give it back, as a request does; which connection it was."""
    pooled = await pool.acquire()
    pool.release(pooled, reusable=True)
    return pooled.connection


async def until(condition: Callable[[], bool]) -> None:
    deadline = asyncio.get_running_loop().time() + 5
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "the condition never held"
        await asyncio.sleep(0.001)


async def aged_pool(clock: Clock) -> tuple[Connections, ConnectionPool[int]]:
    """A pool whose one connection, opened by a request, is now old enough to be replaced."""
    connections = Connections()
    pool = pool_of(connections)
    assert await use(pool) == 0  # the first one is opened by the request that needs it
    clock.offset += RENEW_SHARE * RECYCLE
    return connections, pool


async def test_a_connection_used_near_its_recycle_age_is_replaced_in_the_background(
    clock: Clock,
) -> None:
    request = asyncio.current_task()
    REQUEST_ID.set("r1")
    connections, pool = await aged_pool(clock)
    # Old enough to be replaced, not too old to serve: this request does not wait.
    assert await use(pool) == 0
    await until(lambda: connections.closed == [0])
    assert await use(pool) == 1
    clock.offset += RECYCLE * (1 - RENEW_SHARE)
    # Past the first connection's recycle age, no request has opened another.
    assert await use(pool) == 1
    assert connections.opened_in(request) == [0]
    assert len(connections.opened_by) == 2
    # The replacement is no part of the request that happened to trigger it.
    assert connections.request_ids == ["r1", None]
    await pool.close()
    assert connections.open == set()


async def test_a_replaced_connection_still_in_use_is_closed_when_given_back(
    clock: Clock,
) -> None:
    connections, pool = await aged_pool(clock)
    held = await pool.acquire()
    await until(lambda: held.replaced)
    assert connections.closed == []  # never under the one who holds it
    pool.release(held, reusable=True)
    await until(lambda: connections.closed == [0])
    assert await use(pool) == 1
    await pool.close()
    assert connections.open == set()


async def test_a_refused_replacement_is_tried_again_later_and_reported_once(
    clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    connections, pool = await aged_pool(clock)
    connections.refuse = True
    with caplog.at_level(logging.WARNING, logger=pool_module.__name__):
        assert await use(pool) == 0
        await until(lambda: len(caplog.records) == 1)
        assert "too many clients already" in caplog.records[0].getMessage()
        # Not once per request: the next attempt waits a while.
        for _ in range(3):
            assert await use(pool) == 0
            await asyncio.sleep(0.01)
        assert connections.attempts == 2
        clock.offset += RENEW_RETRY_SHARE * RECYCLE
        assert await use(pool) == 0
        await until(lambda: connections.attempts == 3)
        clock.offset += RECYCLE * (1 - RENEW_SHARE)
        # Too old now: the request opens one itself, and learns why it cannot.
        with pytest.raises(ConnectionRefusedError):
            await pool.acquire()
    assert connections.closed == [0]
    assert len(caplog.records) == 1  # the failures in a row are one warning
    await pool.close()


async def test_closing_the_pool_while_a_replacement_opens_leaves_nothing_open(
    clock: Clock,
) -> None:
    connections, pool = await aged_pool(clock)
    connections.answering.clear()
    assert await use(pool) == 0
    await until(lambda: len(connections.opened_by) == 2)  # the replacement is opening
    await pool.close()
    connections.answering.set()
    await asyncio.sleep(0.01)
    assert connections.open == set()
    assert connections.closed == [0]


async def test_requests_never_open_a_connection_while_the_pool_renews_them(
    backend: str, database_url: str, clock: Clock
) -> None:
    if backend == "sqlite":
        pytest.skip("SQLite's connections are not recycled")
    app = create_app(Settings(_env_file=None, database_url=database_url))
    recycle = app.state.settings.db_pool_recycle
    pool = app.state.database._pool
    opened_by: list[asyncio.Task[object] | None] = []
    connect = pool._connect

    async def recording_connect() -> object:
        connection = await connect()
        opened_by.append(asyncio.current_task())
        return connection

    pool._connect = recording_connect
    transport = httpx.ASGITransport(app=app)
    requests: list[asyncio.Task[httpx.Response]] = []

    async def read(task_id: int) -> None:
        requests.append(asyncio.create_task(client.get(task_url("alice", task_id))))
        assert (await requests[-1]).status_code == 200

    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            task = await create(client, "alice", title="renewed")
            assert len(opened_by) == 1
            await read(task["id"])
            clock.offset += RENEW_SHARE * recycle
            await read(task["id"])
            await until(lambda: len(opened_by) == 2)  # the replacement is open
            clock.offset += recycle * (1 - RENEW_SHARE)
            for _ in range(5):
                await read(task["id"])
    finally:
        await close_databases(app)
    # The create opened the first connection; no request after it waited for one.
    assert len(opened_by) == 2
    assert not [opener for opener in opened_by if opener in requests]
