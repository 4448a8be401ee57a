"""A small asyncio connection pool: a bounded number of connections, reused newest first.

Connections are opened on demand by the request that needs one, so a database that
refuses connections answers that request at once (a background-filling pool would leave
it waiting out the pool timeout instead). At most `size + overflow` are open; at most
`size` are kept idle. Idle connections older than `recycle` seconds, or that `usable`
rejects, are closed instead of handed out. A connection handed out past `RENEW_SHARE` of
`recycle` gets its replacement opened in the background, so a connection in steady use is
replaced before it is too old, without a request waiting for the new one.
"""

import asyncio
import contextvars
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

C = TypeVar("C")

logger = logging.getLogger(__name__)

#: From this share of `recycle` on, a connection handed out is replaced in the background.
RENEW_SHARE = 0.75
#: After a replacement could not be opened, the share of `recycle` before the next attempt:
#: a database refusing connections (too many clients) gets a few attempts per window, not one
#: per request.
RENEW_RETRY_SHARE = 0.05


class PoolTimeoutError(Exception):
    """No connection became free within the pool timeout."""


class Pooled(Generic[C]):
    """A pool's connection, when it was opened, and whether a newer one has replaced it."""

    __slots__ = ("connection", "opened", "replaced")

    def __init__(self, connection: C) -> None:
        self.connection = connection
        self.opened = time.monotonic()
        self.replaced = False


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
        # One replacement opens at a time: the connections open stay within one more than
        # `size + overflow`, and a database that refuses them gets one attempt at a time.
        self._renewal: asyncio.Task[None] | None = None
        self._renew_from = 0.0  # monotonic time; later after a failed attempt
        self._renewal_failed = False
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
            age = time.monotonic() - pooled.opened
            fresh = self._recycle is None or age < self._recycle
            if fresh and self._usable(pooled.connection):
                if self._recycle is not None and age >= RENEW_SHARE * self._recycle:
                    self._renew(pooled)
                return pooled
            await self._close(pooled.connection)
        return Pooled(await self._connect())

    def _renew(self, old: Pooled[C]) -> None:
        if self._renewal is not None or self._closed or time.monotonic() < self._renew_from:
            return
        # A context of its own: the replacement is no part of the request that triggered it
        # (its request id must not label what the replacement logs).
        self._renewal = asyncio.get_running_loop().create_task(
            self._replace(old), context=contextvars.Context()
        )
        self._renewal.add_done_callback(self._renewal_ended)

    def _renewal_ended(self, _task: "asyncio.Task[None]") -> None:
        self._renewal = None

    async def _replace(self, old: Pooled[C]) -> None:
        """Open a connection to take `old`'s place: `old` is closed once it is idle."""
        try:
            new = Pooled(await self._connect())
        except Exception as exc:
            # `old` serves until `recycle`; then the request that finds it too old opens
            # one itself, and answers with the reason if it cannot.
            assert self._recycle is not None
            self._renew_from = time.monotonic() + RENEW_RETRY_SHARE * self._recycle
            if not self._renewal_failed:
                self._renewal_failed = True
                reason = (str(exc).strip().splitlines() or [""])[0]
                logger.warning(
                    "Could not open a connection to replace an old one (%s: %s); "
                    "trying again in %g s",
                    type(exc).__name__,
                    reason,
                    RENEW_RETRY_SHARE * self._recycle,
                )
            return
        self._renewal_failed = False
        if self._closed or (old not in self._idle and len(self._idle) >= self._size):
            self.close_later(new.connection)
            return
        old.replaced = True
        if old in self._idle:
            self._idle.remove(old)
            self.close_later(old.connection)
        self._idle.append(new)

    async def stop_renewing(self) -> None:
        """The pool is closing: start no more replacements, and stop the one opening."""
        self._closed = True
        renewal = self._renewal
        if renewal is not None:
            renewal.cancel()
            await asyncio.gather(renewal, return_exceptions=True)

    def release(self, pooled: Pooled[C], *, reusable: bool) -> None:
        """Give a connection back; one that is not `reusable` (or replaced, or one too
        many, or given back after the pool closed) is closed."""
        if reusable and not pooled.replaced and not self._closed and len(self._idle) < self._size:
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
        await self.stop_renewing()
        while self._idle:
            await self._close(self._idle.pop().connection)
        if self._closing:
            await asyncio.gather(*self._closing, return_exceptions=True)
