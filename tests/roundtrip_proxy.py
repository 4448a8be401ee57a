"""A TCP proxy that counts round trips between the API and PostgreSQL, and can add a delay.

A round trip is a burst of client bytes that the server has not answered yet: the client
speaks, then waits for the server. However many messages one burst holds (Parse, Bind,
Execute, Sync), the client waits once. `delay` is added once per round trip, before the
burst goes on, as the distance to a database in another region would add it. The event loop
wakes up late by up to a millisecond or so (epoll's timeout is in whole milliseconds), so the
delay actually added is counted too.
"""

import asyncio
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from sqlalchemy import make_url

_CHUNK = 64 * 1024


@dataclass
class RoundTrips:
    """The count, the seconds of delay added in all, and the connections opened through the
    proxy, shared by every connection."""

    count: int = 0
    delayed: float = 0.0
    connections: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self) -> None:
        with self._lock:
            self.count += 1

    def add_delay(self, seconds: float) -> None:
        with self._lock:
            self.delayed += seconds

    def add_connection(self) -> None:
        with self._lock:
            self.connections += 1


class _Connection:
    def __init__(self, counter: RoundTrips, delay: float) -> None:
        self.counter = counter
        self.delay = delay
        self.answered = True  # nothing asked yet

    async def client_to_server(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        while data := await reader.read(_CHUNK):
            if self.answered:
                self.answered = False
                self.counter.add()
                if self.delay:
                    started = time.perf_counter()
                    await asyncio.sleep(self.delay)
                    self.counter.add_delay(time.perf_counter() - started)
            writer.write(data)
            await writer.drain()
        writer.close()

    async def server_to_client(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        while data := await reader.read(_CHUNK):
            self.answered = True
            writer.write(data)
            await writer.drain()
        writer.close()


@contextmanager
def roundtrip_proxy(database_url: str, delay: float = 0.0) -> Iterator[tuple[str, RoundTrips]]:
    """The URL to reach `database_url` through a counting proxy, and its counter."""
    target = make_url(database_url)
    host, port = target.host or "127.0.0.1", target.port or 5432
    counter = RoundTrips()
    loop = asyncio.new_event_loop()
    started = threading.Event()
    state: dict[str, asyncio.base_events.Server] = {}

    async def handle(client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter):
        try:
            server_reader, server_writer = await asyncio.open_connection(host, port)
        except OSError:
            client_writer.close()
            return
        counter.add_connection()
        connection = _Connection(counter, delay)
        await asyncio.gather(
            connection.client_to_server(client_reader, server_writer),
            connection.server_to_client(server_reader, client_writer),
            return_exceptions=True,
        )

    async def serve() -> None:
        state["server"] = await asyncio.start_server(handle, "127.0.0.1", 0)
        started.set()

    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    asyncio.run_coroutine_threadsafe(serve(), loop)
    started.wait(timeout=10)
    proxy_port = state["server"].sockets[0].getsockname()[1]
    try:
        url = target.set(host="127.0.0.1", port=proxy_port)
        yield url.render_as_string(hide_password=False), counter
    finally:

        async def shut_down() -> None:
            # The connections still open end with the proxy, quietly.
            state["server"].close()
            handlers = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
            for task in handlers:
                task.cancel()
            await asyncio.gather(*handlers, return_exceptions=True)

        asyncio.run_coroutine_threadsafe(shut_down(), loop).result(timeout=10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
