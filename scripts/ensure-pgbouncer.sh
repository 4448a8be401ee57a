#!/usr/bin/env bash
# Make sure pgbouncer is installed (from Debian's packages, as root). Exits 1 when it is
# missing and cannot be installed under CI=true; exits 2 (and says so) outside CI.
set -euo pipefail

if ! command -v pgbouncer >/dev/null && [ ! -x /usr/sbin/pgbouncer ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        echo "Installing pgbouncer from Debian's packages..."
        apt-get update -qq >/dev/null
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq pgbouncer >/dev/null
    elif [ "${CI:-}" = true ]; then
        echo "pgbouncer is not installed and cannot be installed here (CI=true: failing)." >&2
        exit 1
    else
        echo "SKIPPED: pgbouncer is not installed (apt-get install pgbouncer)" >&2
        exit 2
    fi
fi
