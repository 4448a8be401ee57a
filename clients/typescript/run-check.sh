#!/usr/bin/env bash
# The TypeScript client against the real server:
#   1. install the pinned npm packages (npm ci);
#   2. regenerate openapi.json and src/schema.d.ts from the current app; if they differ from
#      the committed ones, leave the new ones in place and fail, so that they stay in sync;
#   3. check that the example in README.md is src/example.ts verbatim;
#   4. tsc --noEmit, so an API change that breaks the client breaks the build; then build;
#   5. npm pack the package, install the tarball in a scratch project and compile the README
#      example and src/check-exports.ts there, importing "todo-api-client" as a user would;
#   6. serve the app (`python -m todo_api`) on a fresh, migrated SQLite file on a free port and
#      run src/check.ts against it (the raw API, the package's client, then the example
#      compiled in step 5); the server is always stopped afterwards.
# Without node or npm this skips, unless CI=true, where it fails.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
venv_bin="${VENV_BIN:-$root/.venv/bin}"
startup_timeout_seconds=30

say() { printf 'test-typescript: %s\n' "$*" >&2; }

is_ci() {
    case "${CI:-}" in
        1 | true | TRUE | True | yes) return 0 ;;
        *) return 1 ;;
    esac
}

for tool in node npm; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        if is_ci; then
            say "FAILED: '$tool' is not installed (CI=true: failing instead of skipping)."
            exit 1
        fi
        say "SKIPPED: '$tool' is not installed; install Node.js 20 or newer to run this check."
        exit 0
    fi
done
if ! node -e 'process.exit(Number(process.versions.node.split(".")[0]) >= 20 ? 0 : 1)'; then
    say "FAILED: Node.js 20 or newer is required, found $(node --version)."
    exit 1
fi

cd "$here"
say "installing the pinned npm packages (npm ci)"
npm ci --no-audit --no-fund --loglevel=error

say "regenerating openapi.json and src/schema.d.ts from the app"
scratch="$(mktemp -d)"
server_pid=""
stop_server() {
    if [[ -n "$server_pid" ]] && kill -0 "$server_pid" 2>/dev/null; then
        kill -TERM "$server_pid" 2>/dev/null || true
        for _ in $(seq 1 100); do
            kill -0 "$server_pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
    fi
    server_pid=""
}
cleanup() {
    stop_server
    rm -rf "$scratch"
}
trap cleanup EXIT

cp openapi.json "$scratch/openapi.committed.json"
cp src/schema.d.ts "$scratch/schema.committed.d.ts"
"$venv_bin/python" export_openapi.py openapi.json
npm run --silent generate >/dev/null
stale=()
cmp -s openapi.json "$scratch/openapi.committed.json" || stale+=(clients/typescript/openapi.json)
cmp -s src/schema.d.ts "$scratch/schema.committed.d.ts" || stale+=(clients/typescript/src/schema.d.ts)
if ((${#stale[@]})); then
    diff -u "$scratch/schema.committed.d.ts" src/schema.d.ts | head -60 >&2 || true
    say "FAILED: ${stale[*]} did not match the app's OpenAPI document."
    say "They have been regenerated in place: review the change above and commit them."
    exit 1
fi

say "checking that README.md's example is src/example.ts"
# The example is the ```ts block after the marker line. The file is what tsc compiles and the
# check runs, so the README cannot show code that does not build or does not work.
readme_example="$(awk '
    /^<!-- example: src\/example.ts / { marked = 1; next }
    marked && !inside && /^```ts$/ { inside = 1; next }
    inside && /^```$/ { exit }
    inside { print }
' README.md)"
if [[ -z "$readme_example" || "$readme_example" != "$(cat src/example.ts)" ]]; then
    diff -u src/example.ts <(printf '%s\n' "$readme_example") >&2 || true
    say "FAILED: the example in clients/typescript/README.md is not src/example.ts."
    exit 1
fi

say "type-checking (tsc --noEmit)"
node_modules/.bin/tsc --noEmit
npm run --silent build -- --noCheck # emit build/ only: the line above did the checking

say "packing the client and compiling the README example in a project that installs the tarball"
npm pack --silent --ignore-scripts --pack-destination "$scratch" >/dev/null
consumer="$scratch/consumer"
mkdir -p "$consumer/src"
printf '{ "name": "todo-api-client-consumer", "private": true, "type": "module" }\n' \
    >"$consumer/package.json"
# Plain `strict`, without this package's exactOptionalPropertyTypes: what most importers have.
cat >"$consumer/tsconfig.json" <<JSON
{
  "compilerOptions": {
    "target": "ES2022",
    "lib": ["ES2022"],
    "module": "NodeNext",
    "moduleResolution": "NodeNext",
    "strict": true,
    "skipLibCheck": true,
    "typeRoots": ["$here/node_modules/@types"],
    "types": ["node"],
    "rootDir": "src",
    "outDir": "build"
  },
  "include": ["src"]
}
JSON
(cd "$consumer" && npm install --no-audit --no-fund --loglevel=error --prefer-offline \
    "$scratch"/todo-api-client-*.tgz)
cp src/example.ts src/check-exports.ts "$consumer/src/"
node_modules/.bin/tsc -p "$consumer"

# Runs the check against a fresh server: once with the path as the caller, once with tokens.
check_against_server() {
    local mode="$1" port base_url log
    port="$("$venv_bin/python" -c 'import socket
with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    print(s.getsockname()[1])')"
    base_url="http://127.0.0.1:$port"
    log="$scratch/server-$mode.log"
    rm -f "$scratch/todo.sqlite3"

    export DATABASE_URL="sqlite:///$scratch/todo.sqlite3"
    export MIGRATION_DATABASE_URL="$DATABASE_URL"
    export HOST=127.0.0.1 PORT="$port" WORKERS=1 LOG_LEVEL=warning LOG_FORMAT=text CORS_ORIGINS=
    local jwt_secret=""
    if [[ "$mode" == jwt ]]; then
        jwt_secret="$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')"
        export AUTH_MODE=jwt AUTH_JWT_SECRET="$jwt_secret"
    else
        export AUTH_MODE=none
        unset AUTH_JWT_SECRET
    fi

    say "migrating a fresh SQLite database and serving it on $base_url (AUTH_MODE=$mode)"
    (cd "$scratch" && "$venv_bin/alembic" -c "$root/alembic.ini" upgrade head) >"$log" 2>&1 || {
        cat "$log" >&2
        say "FAILED: alembic upgrade head"
        exit 1
    }
    (cd "$scratch" && exec "$venv_bin/python" -m todo_api) >>"$log" 2>&1 &
    server_pid=$!

    local deadline=$((SECONDS + startup_timeout_seconds))
    until "$venv_bin/python" -c 'import sys, urllib.request
with urllib.request.urlopen(sys.argv[1] + "/health", timeout=1) as response:
    sys.exit(0 if response.status == 200 else 1)' "$base_url" 2>/dev/null; do
        if ! kill -0 "$server_pid" 2>/dev/null; then
            cat "$log" >&2
            say "FAILED: the server exited before it became healthy."
            exit 1
        fi
        if ((SECONDS >= deadline)); then
            cat "$log" >&2
            say "FAILED: the server was not healthy within ${startup_timeout_seconds} s."
            exit 1
        fi
        sleep 0.1
    done

    say "running the client check (AUTH_MODE=$mode)"
    if ! TODO_API_BASE_URL="$base_url" TODO_API_JWT_SECRET="$jwt_secret" \
        TODO_API_EXAMPLE="$consumer/build/example.js" node build/check.js; then
        say "server log:"
        cat "$log" >&2
        exit 1
    fi
    stop_server
}

check_against_server none
check_against_server jwt
