"""Why a token was refused, in the server's log: the client only ever gets a generic 401."""

import logging
import time

logger = logging.getLogger("todo_api.auth")

#: Refusals logged one by one per minute at most, so a flood of bad tokens cannot flood the
#: log; the rest are counted in the next line that is logged.
LOGGED_PER_MINUTE = 20
_MINUTE = 60.0


def quoted(value: object) -> str:
    """A value taken from a token, fit for one log line: quoted, escaped, not too long."""
    text = value if isinstance(value, str) else repr(value)
    return repr(text[:100] + ("..." if len(text) > 100 else ""))


class RefusalLog:
    """One info line per refused token, naming the reason (never the token itself)."""

    def __init__(self) -> None:
        self._window_started = -_MINUTE
        self._logged = 0
        self._unlogged = 0

    def refused(self, reason: str) -> None:
        now = time.monotonic()
        if now - self._window_started >= _MINUTE:
            self._window_started, self._logged = now, 0
        if self._logged >= LOGGED_PER_MINUTE:
            self._unlogged += 1
            return
        self._logged += 1
        also = ""
        if self._unlogged:
            also = f" ({self._unlogged} more refused before this one were not logged)"
            self._unlogged = 0
        logger.info("Access token refused: %s%s", reason, also)
