"""Configuration: Neon URLs work unchanged, SQLite is the zero-setup default, CORS is opt-in."""

import logging
from pathlib import Path

import httpx
import pytest
from psycopg.conninfo import conninfo_to_dict
from pydantic import ValidationError

from tests.helpers import assert_problem, close_databases
from todo_api.app import create_app
from todo_api.db.database import DatabaseAvailability
from todo_api.db.setup import (
    UnsupportedDatabaseError,
    async_database_url,
    create_database,
    libpq_conninfo,
    postgres_connect_args,
    statement_deadline,
    uses_prepared_statements,
)
from todo_api.db.sqlite import SqliteDatabase
from todo_api.settings import Settings

NEON_DIRECT = (
    "postgresql://alex:AbC123dEf@ep-cool-darkness-123456.us-east-2.aws.neon.tech/dbname"
    "?sslmode=require&channel_binding=require"
)
NEON_POOLED = NEON_DIRECT.replace("-123456.", "-123456-pooler.")


@pytest.fixture(autouse=True)
def no_ambient_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    """These tests see only the environment they set (CI exports some of these names)."""
    for name in Settings.model_fields:
        monkeypatch.delenv(name.upper(), raising=False)


@pytest.mark.parametrize(
    "url", [NEON_DIRECT, NEON_POOLED, NEON_DIRECT.replace("postgresql", "postgres", 1)]
)
def test_neon_console_strings_map_to_psycopg_unchanged(url: str) -> None:
    mapped = async_database_url(url)
    assert mapped.drivername == "postgresql+psycopg"
    assert mapped.query == {"sslmode": "require", "channel_binding": "require"}
    assert mapped.username == "alex"
    assert mapped.password == "AbC123dEf"
    assert mapped.database == "dbname"


def test_explicit_drivers_are_mapped_to_ours() -> None:
    assert async_database_url("postgresql+asyncpg://u@h/db").drivername == "postgresql+psycopg"
    assert async_database_url("sqlite:///x.db").drivername == "sqlite+aiosqlite"


def test_other_databases_are_refused() -> None:
    with pytest.raises(UnsupportedDatabaseError):
        async_database_url("mysql://u@h/db")


def test_neon_endpoints_get_what_each_keeps() -> None:
    settings = Settings(_env_file=None)
    pooled = async_database_url(NEON_POOLED)
    direct = async_database_url(NEON_DIRECT)
    # Neon's proxy gives each connection to the direct host a server connection of its own.
    assert uses_prepared_statements(direct, settings) is True
    assert uses_prepared_statements(pooled, settings) is False
    # PgBouncer refuses the `options` startup parameter; the direct endpoint gets it.
    assert "options" not in postgres_connect_args(pooled, settings)
    assert postgres_connect_args(direct, settings)["options"] == (
        "-c statement_timeout=5000 -c TimeZone=UTC"
    )
    assert postgres_connect_args(pooled, settings)["connect_timeout"] == 4


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "db.example.com", "[::1]"])
def test_elsewhere_each_connection_finds_out(host: str) -> None:
    url = async_database_url(f"postgresql://u@{host}:5432/db")
    assert uses_prepared_statements(url, Settings(_env_file=None)) is None


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://u@ep-x-pooler.us-east-2.aws.neon.tech/db",
        "postgresql://u@ep-x.us-east-2.aws.neon.tech,127.0.0.1/db",
        "postgresql://u@ep-x.us-east-2.aws.neon.tech.example.com/db",
        # The check needs the startup options this app sends; the URL has its own.
        "postgresql://u@127.0.0.1/db?options=-c%20search_path%3Dtodo",
    ],
)
def test_prepared_statements_are_off_where_no_connection_can_tell(url: str) -> None:
    mapped = async_database_url(url)
    assert uses_prepared_statements(mapped, Settings(_env_file=None)) in (False, None)
    if "-pooler" in url or "options" in url:
        assert uses_prepared_statements(mapped, Settings(_env_file=None)) is False
    pooler = Settings(_env_file=None, db_transaction_pooler=True)
    assert uses_prepared_statements(mapped, pooler) is False


def test_prepared_statements_are_on_only_where_declared() -> None:
    url = async_database_url("postgresql://u@127.0.0.1:6432/db")
    declared = Settings(_env_file=None, db_prepared_statements=True)
    assert uses_prepared_statements(url, declared) is True
    direct = Settings(_env_file=None, db_transaction_pooler=False)
    assert uses_prepared_statements(url, direct) is True
    refused = Settings(_env_file=None, db_prepared_statements=False)
    assert uses_prepared_statements(async_database_url(NEON_DIRECT), refused) is False
    # A pooler that tracks them (Neon's, PgBouncer >= 1.21 with max_prepared_statements).
    tracked = Settings(_env_file=None, db_prepared_statements=True, db_transaction_pooler=True)
    assert uses_prepared_statements(async_database_url(NEON_POOLED), tracked) is True


def test_transaction_pooler_can_be_declared_for_any_host() -> None:
    url = async_database_url("postgresql://u@127.0.0.1:6432/db")
    assert "options" in postgres_connect_args(url, Settings(_env_file=None))
    declared = Settings(_env_file=None, db_transaction_pooler=True)
    assert "options" not in postgres_connect_args(url, declared)
    not_pooled = Settings(_env_file=None, db_transaction_pooler=False)
    assert "options" in postgres_connect_args(async_database_url(NEON_POOLED), not_pooled)


def test_timeouts_are_configurable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DB_CONNECT_TIMEOUT", "7")
    monkeypatch.setenv("DB_STATEMENT_TIMEOUT_MS", "250")
    monkeypatch.setenv("DB_POOL_TIMEOUT", "0.5")
    settings = Settings(_env_file=None)
    args = postgres_connect_args(async_database_url(NEON_DIRECT), settings)
    assert args["connect_timeout"] == 7
    assert args["options"] == "-c statement_timeout=250 -c TimeZone=UTC"
    # Counted by the client too, with a margin for the server's own error to arrive.
    assert statement_deadline(settings) == 0.75
    assert statement_deadline(settings.model_copy(update={"db_statement_timeout_ms": 0})) is None


def test_libpq_receives_sslmode_and_channel_binding() -> None:
    conninfo = conninfo_to_dict(libpq_conninfo(async_database_url(NEON_POOLED)))
    assert conninfo["sslmode"] == "require"
    assert conninfo["channel_binding"] == "require"
    assert conninfo["host"] == "ep-cool-darkness-123456-pooler.us-east-2.aws.neon.tech"
    assert conninfo["password"] == "AbC123dEf"


async def test_unset_database_url_uses_a_local_sqlite_file(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DATABASE_URL", raising=False)
    with caplog.at_level(logging.INFO, logger="todo_api"):
        database = create_database(Settings(_env_file=None), DatabaseAvailability())
    await database.close()
    assert isinstance(database, SqliteDatabase)
    assert database.path == str(tmp_path / "todo.sqlite3")
    assert any("SQLite" in record.getMessage() for record in caplog.records)


def test_environment_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", NEON_POOLED)
    monkeypatch.setenv("HOST", "0.0.0.0")
    monkeypatch.setenv("PORT", "9000")
    monkeypatch.setenv("LOG_LEVEL", "DEBUG")
    monkeypatch.setenv("CORS_ORIGINS", "http://localhost:3000, https://app.example.com")
    settings = Settings(_env_file=None)
    assert settings.database_url == NEON_POOLED
    assert (settings.host, settings.port, settings.log_level) == ("0.0.0.0", 9000, "debug")
    assert settings.cors_origins == ["http://localhost:3000", "https://app.example.com"]


def test_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("DATABASE_URL", "HOST", "PORT", "LOG_LEVEL", "CORS_ORIGINS"):
        monkeypatch.delenv(name, raising=False)
    settings = Settings(_env_file=None)
    assert settings.database_url is None
    assert (settings.host, settings.port, settings.log_level) == ("127.0.0.1", 8000, "info")
    assert settings.cors_origins == []


def test_dotenv_file_is_read(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("PORT", raising=False)
    env_file = tmp_path / ".env"
    env_file.write_text("PORT=8123\n")
    assert Settings(_env_file=env_file).port == 8123


async def test_cors_answers_only_configured_origins(database_url: str) -> None:
    app = create_app(Settings(database_url=database_url, cors_origins=["http://localhost:3000"]))
    transport = httpx.ASGITransport(app=app)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            preflight = {"access-control-request-method": "PATCH"}
            allowed = await client.options(
                "/api/alice/tasks/1", headers={"origin": "http://localhost:3000", **preflight}
            )
            assert allowed.headers["access-control-allow-origin"] == "http://localhost:3000"
            listed = await client.get(
                "/api/alice/tasks", headers={"origin": "http://localhost:3000"}
            )
            exposed = listed.headers["access-control-expose-headers"]
            assert {"Location", "Link", "X-Total-Count"} <= {h.strip() for h in exposed.split(",")}

            other = await client.get("/api/alice/tasks", headers={"origin": "https://evil.test"})
            assert "access-control-allow-origin" not in other.headers
    finally:
        await close_databases(app)


async def test_no_cors_headers_by_default(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/alice/tasks", headers={"origin": "http://localhost:3000"})
    assert "access-control-allow-origin" not in response.headers


@pytest.mark.parametrize(
    ("value", "origins"),
    [
        ("http://localhost:3000/", ["http://localhost:3000"]),  # as copied from the address bar
        (
            "HTTPS://App.Example.com:443, http://[::1]:3000",
            ["https://app.example.com", "http://[::1]:3000"],
        ),
        ("capacitor://localhost", ["capacitor://localhost"]),
        ("*", ["*"]),
        ("", []),
    ],
)
def test_cors_origins_are_written_as_browsers_send_them(value: str, origins: list[str]) -> None:
    assert Settings(_env_file=None, cors_origins=value).cors_origins == origins


@pytest.mark.parametrize(
    "value",
    [
        "localhost:3000",
        "http://localhost:3000/app",
        "https://user@app.example.com",
        "https://app.example.com?x=1",
        "https://app.example.com:99999",
        "null",
        "https://",
    ],
)
def test_entries_that_are_not_origins_are_refused(value: str) -> None:
    with pytest.raises(ValidationError, match="CORS_ORIGINS takes origins such as"):
        Settings(_env_file=None, cors_origins=value)


@pytest.mark.parametrize("url", ["mysql://u@h/db", "postgresql:/no-host", "no url at all"])
def test_a_database_url_of_another_kind_is_refused(url: str) -> None:
    with pytest.raises(ValidationError, match="DATABASE_URL must be a PostgreSQL URL"):
        Settings(_env_file=None, database_url=url)


@pytest.mark.parametrize(
    "url", ["localhost:3000/api/auth/jwks", "/api/auth/jwks", "ftp://keys.example/jwks"]
)
def test_a_jwks_url_must_be_an_http_url(url: str) -> None:
    with pytest.raises(ValidationError, match="AUTH_JWKS_URL must be the http or https URL"):
        Settings(_env_file=None, auth_jwks_url=url)


async def test_with_cors_off_a_preflight_is_told_to_set_cors_origins(
    client: httpx.AsyncClient,
) -> None:
    preflight = await client.options(
        "/api/alice/tasks",
        headers={"Origin": "http://localhost:3000", "Access-Control-Request-Method": "POST"},
    )
    body = assert_problem(preflight, 400)
    assert body["type"] == "urn:todo-api:cors-refused"
    assert "CORS is off" in body["detail"]
    assert "CORS_ORIGINS" in body["detail"]
    assert "access-control-allow-origin" not in preflight.headers
    # An OPTIONS that is no preflight is still a method this URL does not have.
    assert (await client.options("/api/alice/tasks")).status_code == 405


@pytest.mark.parametrize("seconds", [0, -1, 3601])
def test_the_clean_up_interval_stays_within_its_bounds(seconds: float) -> None:
    # At 0 a worker would delete keys in a loop; past an hour a backlog could outgrow it.
    with pytest.raises(ValidationError, match="idempotency_cleanup_seconds"):
        Settings(_env_file=None, idempotency_cleanup_seconds=seconds)
