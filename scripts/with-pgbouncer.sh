#!/usr/bin/env bash
# Run a command with TEST_DATABASE_URL pointing at PgBouncer in transaction pooling mode
# (what Neon's -pooler endpoint is), in front of the PostgreSQL at TEST_DATABASE_URL.
# Usage: scripts/with-pgbouncer.sh COMMAND [ARGS...]
set -euo pipefail

upstream=${TEST_DATABASE_URL:-postgresql://postgres@127.0.0.1:5432/test}

status=0
bash "$(dirname "$0")/ensure-pgbouncer.sh" || status=$?
if [ "$status" = 2 ]; then
    echo "SKIPPED: not running: $*" >&2
    exit 0
elif [ "$status" != 0 ]; then
    exit "$status"
fi
pgbouncer_bin=$(command -v pgbouncer || echo /usr/sbin/pgbouncer)

# Host, port, user and database of the upstream server, parsed once by Python.
read -r host port user database < <(python3 - "$upstream" <<'PY'
import sys
from urllib.parse import urlsplit
url = urlsplit(sys.argv[1])
print(url.hostname or "127.0.0.1", url.port or 5432, url.username or "postgres",
      url.path.lstrip("/") or "postgres")
PY
)
listen_port=$(python3 "$(dirname "$0")/../tests/ports.py")

workdir=$(mktemp -d /tmp/todo-pgbouncer-XXXXXX)
chmod 755 "$workdir"
cat >"$workdir/pgbouncer.ini" <<INI
[databases]
* = host=$host port=$port

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $listen_port
unix_socket_dir =
auth_type = trust
auth_file = $workdir/users.txt
pool_mode = transaction
max_client_conn = 1000
default_pool_size = 20
ignore_startup_parameters = extra_float_digits
# Each test's database gets server connections of its own; closed once idle (600 s by
# default), they do not add up towards the server's max_connections over a run.
server_idle_timeout = 10
logfile = $workdir/pgbouncer.log
pidfile = $workdir/pgbouncer.pid
INI
printf '"%s" ""\n' "$user" >"$workdir/users.txt"

run_as=()
if [ "$(id -u)" = 0 ]; then
    # PgBouncer refuses to run as root.
    chown -R postgres "$workdir"
    run_as=(-u postgres)
fi
"$pgbouncer_bin" "${run_as[@]}" -d "$workdir/pgbouncer.ini"

cleanup() {
    if [ -f "$workdir/pgbouncer.pid" ]; then
        kill "$(cat "$workdir/pgbouncer.pid")" 2>/dev/null || true
    fi
    rm -rf "$workdir"
}
trap cleanup EXIT

listening=no
for _ in $(seq 1 50); do
    if python3 -c "import socket; socket.create_connection(('127.0.0.1', $listen_port), 0.2)" \
        2>/dev/null; then
        listening=yes
        break
    fi
    sleep 0.1
done
if [ "$listening" != yes ] || ! kill -0 "$(cat "$workdir/pgbouncer.pid" 2>/dev/null)" 2>/dev/null; then
    echo "PgBouncer is not listening on 127.0.0.1:$listen_port:" >&2
    cat "$workdir/pgbouncer.log" >&2 || true
    exit 1
fi

echo "PgBouncer (transaction mode) on 127.0.0.1:$listen_port -> $host:$port"
export TEST_DATABASE_URL="postgresql://$user@127.0.0.1:$listen_port/$database"
# Tests that run a PostgreSQL of their own skip this pass (they ran in the previous one).
export TEST_THROUGH_PGBOUNCER=1
# Deliberately without DB_TRANSACTION_POOLER: the app must find out on its own that a
# pooler on a plain host name cannot keep prepared statements or startup options.
"$@"
