"""`python -m todo_api`: serve on HOST:PORT with the configured database."""

import signal
import sys

import uvicorn

from todo_api.log_config import log_config
from todo_api.settings import get_settings


def main() -> None:
    settings = get_settings()
    # Uvicorn drains in-flight requests on SIGTERM, then raises the signal again with the
    # previous handler in place; with the default one the process would die as -SIGTERM
    # although the shutdown was clean. This handler makes that clean shutdown exit 0.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    # Uvicorn applies the logging config in every process, workers included; no reload, and
    # X-Forwarded-For/-Proto are trusted only from FORWARDED_ALLOW_IPS. SIGTERM stops the
    # workers gracefully: in-flight requests finish, then the process exits 0.
    uvicorn.run(
        "todo_api.app:create_app",
        factory=True,
        host=settings.host,
        port=settings.port,
        log_level=settings.log_level,
        log_config=log_config(settings.log_format, settings.log_level),
        access_log=False,  # todo_api.api.request_log writes one line per request instead
        workers=settings.workers,
        proxy_headers=True,
        forwarded_allow_ips=settings.forwarded_allow_ips,
    )


if __name__ == "__main__":
    main()
