"""A small asyncio connection pool: a bounded number of connections, reused newest first.

Connections are opened on demand by the request that needs one, so a database that
refuses connections answers that request at once (a background-filling pool would leave
it waiting out the pool timeout instead). At most `size + overflow` are open; at most
`size` are kept idle. Idle connections older than `recycle` seconds, or that `usable`
rejects, are closed instead of handed out.
"""

import asyncio
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

C = TypeVar("C")


class PoolTimeoutError(Exception):
    """No connection became free within the pool timeout."""


class Pooled(Generic[C]):
    """A pool's connection and when it was opened."""

    __slots__ = ("connection", "opened")

    def __init__(self, connection: C) -> None:
        self.connection = connection
        self.opened = time.monotonic()


class ConnectionPool(Generic[C]):
    def __init__(
        self,
        *,
        connect: Callable[[], Awaitable[C]],
        close: Callable[[C], Awaitable[None]],
        usable: Callable[[C], bool],
        size: int,
        overflow: int,
        timeout: float,
        recycle: float | None,
    ) -> None:
        self._connect = connect
        self._close = close
        self._usable = usable
        self._size = size
        self._timeout = timeout
        self._recycle = recycle
        self._slots = asyncio.Semaphore(size + overflow)
        # The right end is the most recently returned: the one most likely still warm.
        self._idle: deque[Pooled[C]] = deque()
        self._closing: set[asyncio.Task[None]] = set()
        self._closed = False

    async def acquire(self) -> Pooled[C]:
        """A connection for the caller alone until it gives it back with `release`."""
        if self._slots.locked():
            try:
                async with asyncio.timeout(self._timeout):
                    await self._slots.acquire()
            except TimeoutError:
                raise PoolTimeoutError(f"no connection free within {self._timeout:g} s") from None
        else:
            await self._slots.acquire()
        try:
            return await self._idle_or_new()
        except BaseException:
            self._slots.release()
            raise

    async def _idle_or_new(self) -> Pooled[C]:
        while self._idle:
            pooled = self._idle.pop()
            fresh = self._recycle is None or time.monotonic() - pooled.opened < self._recycle
            if fresh and self._usable(pooled.connection):
                return pooled
            await self._close(pooled.connection)
        return Pooled(await self._connect())

    def release(self, pooled: Pooled[C], *, reusable: bool) -> None:
        """Give a connection back; one that is not `reusable` (or one too many, or one
        given back after the pool closed) is closed."""
        if reusable and not self._closed and len(self._idle) < self._size:
            self._idle.append(pooled)
        else:
            self.close_later(pooled.connection)
        self._slots.release()

    def detach(self) -> None:
        """Free a slot whose connection its holder will close itself, when it is done."""
        self._slots.release()

    def close_later(self, connection: C) -> None:
        closing = asyncio.ensure_future(self._close(connection))
        self._closing.add(closing)
        closing.add_done_callback(self._closing.discard)

    async def close(self) -> None:
        self._closed = True
        while self._idle:
            await self._close(self._idle.pop().connection)
        if self._closing:
            await asyncio.gather(*self._closing, return_exceptions=True)
