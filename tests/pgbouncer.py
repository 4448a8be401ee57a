"""A PgBouncer of a test's own, in transaction mode, in front of a PostgreSQL server."""

import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType

import psycopg
from psycopg import pq
from sqlalchemy import make_url

from tests.ports import free_port

PGBOUNCER = shutil.which("pgbouncer") or "/usr/sbin/pgbouncer"


def pgbouncer_installed() -> bool:
    return os.access(PGBOUNCER, os.X_OK)


class PgBouncer:
    """Debian's PgBouncer (1.18: no prepared-statement tracking), as a plain host would run it.

    `server_pool_size` server connections per database: fewer than the app's pool, so that
    consecutive transactions of one client land on different server connections.
    `ignore_options`: the `options` startup parameter is dropped rather than refused.
    """

    def __init__(
        self, upstream_url: str, *, server_pool_size: int = 4, ignore_options: bool = False
    ) -> None:
        upstream = make_url(upstream_url)
        self.upstream = upstream
        self.port = free_port()
        self.root = Path(tempfile.mkdtemp(prefix="todo-pgbouncer-"))
        self.root.chmod(0o755)
        user = upstream.username or "postgres"
        (self.root / "users.txt").write_text(f'"{user}" ""\n')
        (self.root / "pgbouncer.ini").write_text(
            "\n".join(
                [
                    "[databases]",
                    f"* = host={upstream.host or '127.0.0.1'} port={upstream.port or 5432}",
                    "[pgbouncer]",
                    "listen_addr = 127.0.0.1",
                    f"listen_port = {self.port}",
                    "unix_socket_dir =",
                    "auth_type = trust",
                    f"auth_file = {self.root / 'users.txt'}",
                    "pool_mode = transaction",
                    f"admin_users = {user}",
                    "max_client_conn = 500",
                    f"default_pool_size = {server_pool_size}",
                    # Dropping `options` rather than refusing it is a common setting.
                    "ignore_startup_parameters = extra_float_digits"
                    + (",options" if ignore_options else ""),
                    # After a failed server login PgBouncer waits this long before trying
                    # again (15 s by default): what bounds recovery after an outage.
                    "server_login_retry = 1",
                    f"logfile = {self.root / 'pgbouncer.log'}",
                    f"pidfile = {self.root / 'pgbouncer.pid'}",
                    "",
                ]
            )
        )
        self._process: subprocess.Popen[bytes] | None = None

    def admin(self, command: str) -> None:
        """Run `command` (PAUSE, RESUME, ...) on PgBouncer's admin console."""
        user = self.upstream.username or "postgres"
        with psycopg.connect(
            f"postgresql://{user}@127.0.0.1:{self.port}/pgbouncer", autocommit=True
        ) as console:
            # The console speaks the simple query protocol only.
            result = console.pgconn.exec_(command.encode())
            if result.status != pq.ExecStatus.COMMAND_OK:
                raise RuntimeError(f"{command}: {result.error_message.decode()}")

    def url(self, database_url: str) -> str:
        """`database_url` (a database on the upstream server) as reached through PgBouncer."""
        url = make_url(database_url).set(host="127.0.0.1", port=self.port)
        return url.render_as_string(hide_password=False)

    def __enter__(self) -> "PgBouncer":
        command = [PGBOUNCER, str(self.root / "pgbouncer.ini")]
        if os.geteuid() == 0:  # PgBouncer refuses to run as root
            shutil.chown(self.root, "postgres")
            for path in self.root.iterdir():
                shutil.chown(path, "postgres")
            command[1:1] = ["-u", "postgres"]
        self._process = subprocess.Popen(command, stdout=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return self
            except OSError:
                if self._process.poll() is not None or time.monotonic() > deadline:
                    log = self.root / "pgbouncer.log"
                    raise RuntimeError(
                        f"PgBouncer did not start: {log.read_text() if log.exists() else ''}"
                    ) from None
                time.sleep(0.05)

    def __exit__(
        self,
        _type: type[BaseException] | None,
        _value: BaseException | None,
        _traceback: TracebackType | None,
    ) -> None:
        if self._process is not None:
            self._process.terminate()
            self._process.wait(timeout=10)
        shutil.rmtree(self.root, ignore_errors=True)
