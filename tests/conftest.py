"""Fixtures: one fresh, migrated database per test run, SQLite or PostgreSQL (`--db`)."""

import os
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import httpx
import hypothesis
import psycopg
import pytest
from alembic import command
from alembic.config import Config
from fastapi import FastAPI
from sqlalchemy import make_url, text
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.helpers import close_databases, inspection_engine, libpq_url
from tests.pgbouncer import PgBouncer, pgbouncer_installed
from tests.private_postgres import PrivatePostgres
from todo_api.app import create_app
from todo_api.settings import Settings

#: CI=true: fail where a developer's run would skip, and generate the same examples every run.
IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}

# No deadline per example: a machine running the test passes side by side can stall one past
# hypothesis's 200 ms. In CI the examples are the same every run, so that a red CI is a
# change's doing; a developer's runs still explore new ones.
hypothesis.settings.register_profile("project", deadline=None, database=None)
hypothesis.settings.register_profile(
    "ci", hypothesis.settings.get_profile("project"), derandomize=True
)
hypothesis.settings.load_profile("ci" if IN_CI else "project")

PROJECT_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_TEST_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/test"
# Nothing listens on port 1, so connecting fails at once.
UNREACHABLE_POSTGRES = "postgresql://postgres@127.0.0.1:1/none?connect_timeout=2"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--db",
        choices=("sqlite", "postgres"),
        default="sqlite",
        help="Database to run the suite on; postgres uses TEST_DATABASE_URL.",
    )


def pytest_report_header(config: pytest.Config) -> str:
    return f"database: {config.getoption('--db')}"


def alembic_config(database_url: str) -> Config:
    config = Config(str(PROJECT_ROOT / "alembic.ini"))
    config.attributes["database_url"] = database_url
    config.attributes["configure_logger"] = False
    return config


class PostgresServer:
    """Creates and drops throwaway databases on the server at TEST_DATABASE_URL."""

    def __init__(self, admin_url: str) -> None:
        self.admin_url = make_url(admin_url)

    def check_reachable(self) -> None:
        with psycopg.connect(libpq_url(self.admin_url), connect_timeout=5) as connection:
            connection.execute("SELECT 1")

    def create_database(self) -> str:
        name = f"todo_test_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(libpq_url(self.admin_url), autocommit=True) as connection:
            connection.execute(f'CREATE DATABASE "{name}"')
        return libpq_url(self.admin_url.set(database=name))

    def drop_database(self, database_url: str) -> None:
        name = make_url(database_url).database
        with psycopg.connect(libpq_url(self.admin_url), autocommit=True) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.config.getoption("--db"))


@pytest.fixture(scope="session")
def postgres_server(backend: str) -> PostgresServer:
    server = PostgresServer(os.environ.get("TEST_DATABASE_URL", DEFAULT_TEST_DATABASE_URL))
    try:
        server.check_reachable()
    except psycopg.OperationalError as exc:
        message = f"PostgreSQL at {server.admin_url!r} is unreachable: {exc}"
        if IN_CI:
            pytest.exit(f"{message} (CI=true: failing instead of skipping)", returncode=1)
        pytest.skip(message)
    return server


Route = Callable[[str], str]


@pytest.fixture(params=["direct", "pgbouncer"])
def route(request: pytest.FixtureRequest, backend: str) -> Iterator[Route]:
    """How the app reaches PostgreSQL: directly, or through a PgBouncer in transaction mode
    on a plain host name and without DB_TRANSACTION_POOLER, so the app must cope unaided."""
    if request.param == "direct":
        yield lambda url: url
        return
    if backend != "postgres":
        pytest.skip("PgBouncer runs in front of PostgreSQL")
    if not pgbouncer_installed():
        if IN_CI:
            pytest.fail("pgbouncer is not installed (CI=true: failing instead of skipping)")
        pytest.skip("pgbouncer is not installed (apt-get install pgbouncer)")
    bouncers: dict[tuple[str | None, int | None], PgBouncer] = {}

    def through_pgbouncer(url: str) -> str:
        server = (make_url(url).host, make_url(url).port)
        if server not in bouncers:
            bouncers[server] = PgBouncer(url).__enter__()
        return bouncers[server].url(url)

    try:
        yield through_pgbouncer
    finally:
        for bouncer in bouncers.values():
            bouncer.__exit__(None, None, None)


def through_pgbouncer() -> bool:
    """Whether this is the pass through PgBouncer (scripts/with-pgbouncer.sh)."""
    return os.environ.get("TEST_THROUGH_PGBOUNCER") == "1"


@pytest.fixture
def private_postgres(backend: str) -> Iterator[PrivatePostgres]:
    if backend != "postgres":
        pytest.skip("stops and starts a PostgreSQL server; runs in the PostgreSQL pass")
    if through_pgbouncer():
        # Its tests never use TEST_DATABASE_URL; they route through a PgBouncer of their
        # own where they need one, so the PostgreSQL pass has run them exactly as here.
        pytest.skip("a PostgreSQL (and PgBouncer) of its own: run in the PostgreSQL pass")
    server = PrivatePostgres()
    try:
        server.init()
        server.start()
        yield server
    finally:
        server.remove()


@pytest.fixture(scope="session")
def new_database(
    backend: str, tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[Callable[[], str]]:
    """Makes empty databases of the backend under test; all are dropped at the end."""
    if backend == "sqlite":
        yield lambda: f"sqlite:///{tmp_path_factory.mktemp('db') / 'todo.sqlite3'}"
        return

    server: PostgresServer = request.getfixturevalue("postgres_server")
    created: list[str] = []

    def create_postgres() -> str:
        created.append(server.create_database())
        return created[-1]

    yield create_postgres
    for url in created:
        server.drop_database(url)


@pytest.fixture(scope="session")
def database_url(new_database: Callable[[], str]) -> str:
    url = new_database()
    command.upgrade(alembic_config(url), "head")
    return url


@pytest.fixture
def migrated_url(new_database: Callable[[], str]) -> str:
    """A fresh database of its own, migrated, for tests that run the server process."""
    url = new_database()
    command.upgrade(alembic_config(url), "head")
    return url


@pytest.fixture(scope="session")
async def app(database_url: str) -> AsyncIterator[FastAPI]:
    application = create_app(Settings(database_url=database_url))
    yield application
    await close_databases(application)


@pytest.fixture(scope="session")
async def _inspection_engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = inspection_engine(database_url)
    yield engine
    await engine.dispose()


@pytest.fixture
async def engine(app: FastAPI, _inspection_engine: AsyncEngine) -> AsyncEngine:
    """An engine on the app's database (to set up and inspect rows beside the API), with
    the tasks and idempotency keys emptied for this test."""
    engine = _inspection_engine
    async with engine.begin() as connection:
        # Tag rows first: SQLAlchemy's SQLite connections do not enforce the cascade.
        await connection.execute(text("DELETE FROM task_tags"))
        await connection.execute(text("DELETE FROM tasks"))
        await connection.execute(text("DELETE FROM idempotency_keys"))
    return engine


@pytest.fixture
async def client(app: FastAPI, engine: AsyncEngine) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield client


@pytest.fixture
async def offline_client() -> AsyncIterator[httpx.AsyncClient]:
    """A client of an app whose database cannot be reached."""
    app: FastAPI = create_app(Settings(database_url=UNREACHABLE_POSTGRES))
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield client
    await close_databases(app)
