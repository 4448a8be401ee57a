#!/bin/sh
# Migrate, then serve. The migrations wait up to DB_STARTUP_WAIT_SECONDS (60) for a database
# that is still starting, and stop with one line (status 2) on one that refuses the
# configuration; `exec` makes the server the process that receives SIGTERM and drains.
set -e
here="$(dirname "$0")"
alembic -c "$here/../alembic.ini" upgrade head
# One worker per core unless WORKERS says otherwise, as `make serve` does.
WORKERS="${WORKERS:-$(nproc)}" exec python -m todo_api
