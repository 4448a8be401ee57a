"""Free TCP ports for the servers tests start: `python3 tests/ports.py` prints one."""

import errno
import random
import socket
from pathlib import Path

#: Where the kernel's range for outgoing connections is not readable: Linux's default.
EPHEMERAL = (32768, 60999)
LOWEST, HIGHEST = 10000, 65535
#: A side of the ephemeral range with fewer free ports than this is not used.
ENOUGH = 1000
ATTEMPTS = 100


def _ephemeral_range() -> tuple[int, int]:
    try:
        first, last = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(first), int(last)
    except (OSError, ValueError):
        return EPHEMERAL


def free_port() -> int:
    """A port that is free now and that no outgoing connection will take before it is bound.

    A port the kernel picks (binding port 0) comes from the range it also gives outgoing
    connections, and the parallel test passes open PostgreSQL connections all the time: one
    could take the port between this check and the server's bind. Outside that range the
    kernel hands out a port only to whoever names it.
    """
    first, last = _ephemeral_range()
    sides = [
        side for side in ((LOWEST, first), (last + 1, HIGHEST + 1)) if side[1] - side[0] >= ENOUGH
    ]
    if not sides:
        raise RuntimeError(f"no room outside the ephemeral port range {first}-{last}")
    for _ in range(ATTEMPTS):
        port = random.randrange(*random.choice(sides))
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError as error:
                if error.errno != errno.EADDRINUSE:
                    raise
                continue
            return port
    raise RuntimeError(f"no free port found in {ATTEMPTS} attempts")


if __name__ == "__main__":
    print(free_port())
