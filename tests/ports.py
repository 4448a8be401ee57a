"""Free TCP ports for the servers tests start: `python3 tests/ports.py` prints one."""

import random
import socket
from pathlib import Path

#: Where the kernel's range for outgoing connections is not readable: Linux's default start.
EPHEMERAL_START = 32768
LOWEST = 10000


def _ephemeral_start() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return EPHEMERAL_START


def free_port() -> int:
    """A port that is free now and that no outgoing connection will take before it is bound.

    A port the kernel picks (binding port 0) comes from the range it also gives outgoing
    connections, and the parallel test passes open PostgreSQL connections all the time: one
    could take the port between this check and the server's bind. Below that range the kernel
    hands out a port only to whoever names it.
    """
    end = max(_ephemeral_start(), LOWEST + 1000)
    while True:
        port = random.randrange(LOWEST, end)
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue  # in use
            return port


if __name__ == "__main__":
    print(free_port())
