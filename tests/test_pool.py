"""The connection pool replaces connections before they are too old, without a request
waiting for the new one (issue 23: one round trip per request in steady state)."""

import asyncio
from collections.abc import Callable

import httpx
import pytest

from tests.helpers import close_databases, create, task_url
from todo_api.app import create_app
from todo_api.db.pool import RENEW_SHARE, ConnectionPool
from todo_api.settings import Settings

RECYCLE = 0.4
#: How long a connection takes to open here.
OPENING = 0.01


class Connections:
    """Numbered stand-ins for connections: which task opened each, and which were closed."""

    def __init__(self) -> None:
        self.opened_by: list[asyncio.Task[object] | None] = []
        self.closed: list[int] = []
        self.refuse = False

    async def connect(self) -> int:
        if self.refuse:
            raise ConnectionRefusedError("refused")
        self.opened_by.append(asyncio.current_task())
        await asyncio.sleep(OPENING)
        return len(self.opened_by) - 1

    async def close(self, connection: int) -> None:
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
    for _ in range(200):
        if condition():
            return
        await asyncio.sleep(OPENING)
    raise AssertionError("the condition never held")


async def test_a_connection_used_near_its_recycle_age_is_replaced_in_the_background() -> None:
    connections = Connections()
    pool = pool_of(connections)
    request = asyncio.current_task()
    assert await use(pool) == 0  # the first one is opened by the request that needs it
    await asyncio.sleep(RENEW_SHARE * RECYCLE)
    # Old enough to be replaced, not too old to serve: this request does not wait.
    assert await use(pool) == 0
    await until(lambda: connections.closed == [0])
    assert await use(pool) == 1
    await asyncio.sleep(RECYCLE * (1 - RENEW_SHARE))
    # Past the first connection's recycle age, no request has opened another.
    assert await use(pool) == 1
    assert connections.opened_in(request) == [0]
    assert len(connections.opened_by) == 2
    await pool.close()
    assert connections.closed == [0, 1]


async def test_a_replaced_connection_still_in_use_is_closed_when_given_back() -> None:
    connections = Connections()
    pool = pool_of(connections)
    await use(pool)
    await asyncio.sleep(RENEW_SHARE * RECYCLE)
    held = await pool.acquire()
    await until(lambda: len(connections.opened_by) == 2)
    await asyncio.sleep(2 * OPENING)  # the replacement is open and idle
    assert connections.closed == []
    pool.release(held, reusable=True)
    await until(lambda: connections.closed == [0])
    assert await use(pool) == 1
    await pool.close()


async def test_a_refused_replacement_leaves_the_old_connection_until_its_recycle_age() -> None:
    connections = Connections()
    pool = pool_of(connections)
    await use(pool)
    await asyncio.sleep(RENEW_SHARE * RECYCLE)
    connections.refuse = True
    assert await use(pool) == 0
    await asyncio.sleep(2 * OPENING)  # the replacement failed meanwhile
    assert await use(pool) == 0
    await asyncio.sleep(RECYCLE * (1 - RENEW_SHARE))
    # Too old now: the request opens one itself, and learns why it cannot.
    with pytest.raises(ConnectionRefusedError):
        await pool.acquire()
    assert connections.closed == [0]
    await pool.close()


async def test_closing_the_pool_while_a_replacement_opens_leaves_nothing_open() -> None:
    connections = Connections()
    pool = pool_of(connections)
    await use(pool)
    await asyncio.sleep(RENEW_SHARE * RECYCLE)
    assert await use(pool) == 0
    await until(lambda: len(connections.opened_by) == 2)  # the replacement is opening
    await pool.close()
    await asyncio.sleep(2 * OPENING)
    assert connections.closed == [0]


async def test_requests_never_open_a_connection_while_the_pool_renews_them(
    backend: str, database_url: str
) -> None:
    if backend == "sqlite":
        pytest.skip("SQLite's connections are not recycled")
    recycle = 2
    app = create_app(Settings(_env_file=None, database_url=database_url, db_pool_recycle=recycle))
    pool = app.state.database._pool
    opened_by: list[asyncio.Task[object] | None] = []
    connect = pool._connect

    async def recording_connect() -> object:
        opened_by.append(asyncio.current_task())
        return await connect()

    pool._connect = recording_connect
    transport = httpx.ASGITransport(app=app)
    requests: list[asyncio.Task[httpx.Response]] = []
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            task = await create(client, "alice", title="renewed")
            # A request every 0.1 s for one and a half times the recycle age.
            for _ in range(round(15 * recycle)):
                requests.append(asyncio.create_task(client.get(task_url("alice", task["id"]))))
                assert (await requests[-1]).status_code == 200
                await asyncio.sleep(0.1)
    finally:
        await close_databases(app)
    assert len(opened_by) >= 2, "the connection was never replaced"
    # The create opened the first; no request after it waited for one.
    assert not [opener for opener in opened_by if opener in requests]
