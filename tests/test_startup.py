"""Start-up waits for a database that is briefly away, and stops at once, with one line and
status 2, on a database that refuses the configuration: the server, the migrations, and
`make run` that chains them."""

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import httpx
import pytest
from alembic import command

from tests.conftest import PROJECT_ROOT, Route, alembic_config
from tests.pgbouncer import PgBouncer
from tests.ports import free_port
from tests.private_postgres import PrivatePostgres

#: How long the database stays down while start-up waits for it.
DOWN_SECONDS = 5.0
#: Time for a refused configuration to stop start-up: no waiting at all, beyond connecting.
REFUSED_WITHIN_SECONDS = 10.0
SERVING_WITHIN_SECONDS = 30.0


def _environment(database_url: str, **extra: str) -> dict[str, str]:
    settings = {name: value for name, value in os.environ.items() if not name.startswith("DB_")}
    return settings | {
        "DATABASE_URL": database_url,
        "MIGRATION_DATABASE_URL": "",
        "HOST": "127.0.0.1",
        "LOG_LEVEL": "warning",
        "DB_STARTUP_WAIT_SECONDS": "60",
        **extra,
    }


Process = subprocess.Popen[bytes]


@contextmanager
def _started(command: list[str], env: dict[str, str], cwd: Path, log: Path) -> Iterator[Process]:
    """`command` running (in a process group of its own), killed on exit if still running."""
    with log.open("wb") as output:
        process = subprocess.Popen(
            command,
            env=env,
            cwd=cwd,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        yield process
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)


def _serves(port: int, process: Process, log: Path) -> httpx.Response:
    """The answer to a listing, once the server gives one; fails if it exits first."""
    deadline = time.monotonic() + SERVING_WITHIN_SECONDS
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=5.0) as client:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                pytest.fail(f"exited with {process.returncode}:\n{log.read_text()}")
            try:
                response = client.get("/api/alice/tasks")
                if response.status_code == 200:
                    return response
            except httpx.TransportError:
                pass
            time.sleep(0.1)
    pytest.fail(f"not serving within {SERVING_WITHIN_SECONDS} s:\n{log.read_text()}")


def _start_after(server: PrivatePostgres, seconds: float) -> threading.Thread:
    starter = threading.Timer(seconds, server.start)
    starter.start()
    return starter


def _waiting_lines(log: Path) -> list[str]:
    lines = log.read_text().splitlines()
    assert not [line for line in lines if "Traceback" in line], lines
    return [line for line in lines if line.startswith("todo_api: waiting for the database")]


def test_the_server_waits_for_a_database_that_is_down(
    private_postgres: PrivatePostgres, route: Route, tmp_path: Path
) -> None:
    url = private_postgres.create_database("waited_for")
    command.upgrade(alembic_config(url), "head")
    private_postgres.stop()
    port = free_port()
    log = tmp_path / "server.log"
    env = _environment(route(url), PORT=str(port))
    with _started([sys.executable, "-m", "todo_api"], env, tmp_path, log) as process:
        starter = _start_after(private_postgres, DOWN_SECONDS)
        assert _serves(port, process, log).json() == []
        starter.join()
    waiting = _waiting_lines(log)
    # Through PgBouncer an attempt can outlast the outage: PgBouncer holds the login while
    # it tries the server again, and lets it through once the server is back.
    if route(url) == url:
        assert waiting, log.read_text()
    assert "could not be checked" not in log.read_text()  # the schema was checked


def test_make_run_migrates_and_serves_once_the_database_is_up(
    private_postgres: PrivatePostgres, tmp_path: Path
) -> None:
    url = private_postgres.create_database("made")
    private_postgres.stop()
    port = free_port()
    log = tmp_path / "make.log"
    env = _environment(url, PORT=str(port))
    with _started(["make", "--no-print-directory", "run"], env, PROJECT_ROOT, log) as process:
        starter = _start_after(private_postgres, DOWN_SECONDS)
        assert _serves(port, process, log).json() == []
        starter.join()
    # The migrations waited (the server found the database up).
    assert _waiting_lines(log), log.read_text()


def _refused_configurations(
    tmp_path: Path, server: PrivatePostgres | None, stack: ExitStack
) -> list[tuple[str, dict[str, str], str]]:
    """(DATABASE_URL, other settings, what the line must say) for each configuration a
    database refuses, directly and through PgBouncer."""
    if server is None:
        missing = tmp_path / "no-such-directory" / "todo.sqlite3"
        return [(f"sqlite:///{missing}", {}, "unable to open database file")]
    server.add_password_role("rotated", "current-password")
    base = f"postgresql://postgres@127.0.0.1:{server.port}"
    url = server.create_database("refusing")
    bouncer = stack.enter_context(PgBouncer(url))
    return [
        (f"{base}/no_such_database", {}, 'database "no_such_database" does not exist'),
        (f"postgresql://nobody@127.0.0.1:{server.port}/postgres", {}, 'role "nobody" does not'),
        (
            f"postgresql://rotated:old-password@127.0.0.1:{server.port}/postgres",
            {},
            'password authentication failed for user "rotated"',
        ),
        (f"{base}/postgres?pgbouncer=true", {}, 'invalid URI query parameter: "pgbouncer"'),
        # The private server has no TLS.
        (f"{base}/postgres?sslmode=require", {}, "SSL was required"),
        (bouncer.url(f"{base}/no_such_database"), {}, "does not exist"),
        (bouncer.url(url), {"DB_TRANSACTION_POOLER": "false"}, "DB_TRANSACTION_POOLER=false"),
    ]


@pytest.mark.parametrize("step", ["server", "migrations"])
def test_a_refused_configuration_stops_start_up_with_one_line(
    backend: str, request: pytest.FixtureRequest, tmp_path: Path, step: str
) -> None:
    server = request.getfixturevalue("private_postgres") if backend == "postgres" else None
    migrate = ["-m", "alembic", "-c", str(PROJECT_ROOT / "alembic.ini"), "upgrade", "head"]
    command_line = [sys.executable, *(["-m", "todo_api"] if step == "server" else migrate)]
    with ExitStack() as stack:
        cases = _refused_configurations(tmp_path, server, stack)
        # The migrations wait by the same code as the server: two cases tell that they do.
        for url, settings, says in cases if step == "server" else cases[:2]:
            started = time.monotonic()
            finished = subprocess.run(
                command_line,
                env=_environment(url, PORT=str(free_port()), **settings),
                cwd=tmp_path,
                capture_output=True,
                text=True,
                timeout=60,
            )
            assert time.monotonic() - started < REFUSED_WITHIN_SECONDS, url
            assert finished.returncode == 2, (url, finished.stderr)
            lines = finished.stderr.strip().splitlines()
            assert len(lines) == 1, finished.stderr
            [line] = lines
            assert line.startswith("todo_api: the database at "), line
            assert "refuses this configuration" in line, line
            assert says in line, line
            assert "old-password" not in line
