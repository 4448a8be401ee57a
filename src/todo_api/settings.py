"""Runtime configuration, read from environment variables and an optional `.env` file."""

import re
import sys
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit, urlunsplit

from pydantic import (
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict
from sqlalchemy import make_url
from sqlalchemy.exc import ArgumentError

from todo_api import exit_codes

DEFAULT_SQLITE_FILE = Path("todo.sqlite3")

LogLevel = Literal["critical", "error", "warning", "info", "debug"]
LogFormat = Literal["text", "json"]
AuthMode = Literal["none", "jwt"]
#: Algorithms a token signed with a key of the JWKS may use; HS256 is only ever checked
#: against AUTH_JWT_SECRET, never against a published key.
ASYMMETRIC_ALGORITHMS = frozenset(
    {"EdDSA", "ES256", "ES384", "ES512", "RS256", "RS384", "RS512", "PS256", "PS384", "PS512"}
)
#: Shortest AUTH_JWT_SECRET accepted: RFC 7518 §3.2 asks for a key as long as the hash.
MIN_SECRET_BYTES = 32
# The characters RFC 3986 allows anywhere in a URI.
_URI_CHARACTERS = re.compile(r"[A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;=%]+")
_SCHEME = re.compile(r"[a-z][a-z0-9+.\-]*")
#: URL schemes (before any `+driver`) DATABASE_URL may name.
DATABASE_BACKENDS = frozenset({"postgres", "postgresql", "sqlite"})
_DEFAULT_PORTS = {"http": 80, "https": 443}


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore")

    database_url: str | None = Field(
        default=None,
        description="PostgreSQL or SQLite URL; unset means an embedded SQLite file.",
    )
    migration_database_url: str | None = Field(
        default=None,
        description="URL Alembic migrates through (Neon: the direct, non-pooled one); "
        "defaults to DATABASE_URL.",
    )
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    log_level: LogLevel = "info"
    log_format: LogFormat = Field(default="text", description="`json`: one JSON object per line.")
    workers: int = Field(default=1, ge=1, description="Server processes; production: one per core.")
    forwarded_allow_ips: str = Field(
        default="127.0.0.1",
        description="Comma-separated proxy addresses (or `*`) whose X-Forwarded-* are trusted.",
    )
    public_base_url: str | None = Field(
        default=None,
        description="Scheme, host and path prefix that Location and Link are built from; "
        "unset means the request's own (Host, or a trusted proxy's X-Forwarded-Host).",
    )
    cors_origins: Annotated[list[str], NoDecode] = Field(default_factory=list)
    max_body_bytes: int = Field(default=64 * 1024, ge=1, description="Largest request body.")
    max_url_bytes: int = Field(
        default=8 * 1024, ge=256, description="Longest path and query string, else 414."
    )
    max_header_bytes: int = Field(
        default=16 * 1024, ge=1024, description="Largest sum of header names and values, else 431."
    )
    shutdown_grace_seconds: int = Field(
        default=10,
        ge=1,
        description="On SIGTERM, how long in-flight requests may still run before they are cut.",
    )

    auth_mode: AuthMode = Field(
        default="none",
        description="`none`: the path's user id is the caller (development only). `jwt`: "
        "every /api request needs a verified bearer token whose `sub` is that user id.",
    )
    auth_jwks_url: str | None = Field(default=None, description="Where the public keys are.")
    auth_jwt_secret: SecretStr | None = Field(
        default=None, description="Shared secret for HS256 tokens, at least 32 bytes."
    )
    auth_issuer: str | None = Field(default=None, description="When set, `iss` must equal it.")
    auth_audience: str | None = Field(default=None, description="When set, `aud` must hold it.")
    auth_jwt_algorithms: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["EdDSA", "ES256", "RS256"],
        description="Asymmetric algorithms accepted for keys of the JWKS.",
    )
    auth_leeway_seconds: int = Field(
        default=30, ge=0, le=300, description="Clock skew allowed on `exp`, `nbf` and `iat`."
    )

    db_pool_size: int = Field(default=20, ge=1, description="Connections per worker process.")
    db_max_overflow: int = Field(
        default=0, ge=0, description="Extra connections under bursts, closed again after use."
    )
    # As long as one statement may hold a connection: a request waiting for a connection
    # is then only ever behind statements that are still allowed to run.
    db_pool_timeout: float = Field(
        default=5.0, gt=0, description="Seconds to wait for a pooled connection before 503."
    )
    db_connect_timeout: int = Field(
        default=4, ge=2, description="Seconds to establish a connection (libpq minimum: 2)."
    )
    db_statement_timeout_ms: int = Field(
        default=5000, ge=0, description="Server-side limit per statement; 0 disables it."
    )
    db_pool_recycle: int = Field(
        default=240, ge=1, description="Seconds after which a pooled connection is replaced."
    )
    db_transaction_pooler: bool | None = Field(
        default=None,
        description="Whether DATABASE_URL goes through a transaction-mode pooler (PgBouncer, "
        "Neon's -pooler host), which refuses startup options; unset means: detect from the "
        "host name, or from the pooler's refusal. `false` also means prepared statements.",
    )
    db_prepared_statements: bool | None = Field(
        default=None,
        description="`true` when every connection keeps its server-side prepared statements: "
        "direct, or a pooler that tracks them (PgBouncer >= 1.21 with max_prepared_statements, "
        "Neon's pooler). Unset: on only where that is certain (DB_TRANSACTION_POOLER=false, "
        "a Neon direct host, a connection that shows it has a server session of its own).",
    )
    db_startup_wait_seconds: float = Field(
        default=60,
        ge=0,
        description="At start-up (migrations and server), how long to wait for a database "
        "that cannot be reached yet.",
    )
    idempotency_cleanup_seconds: float = Field(
        default=5.0,
        gt=0,
        le=3600,
        description="How often each worker deletes expired idempotency keys, when requests "
        "have used the database since its last run.",
    )

    @field_validator("log_level", "log_format", mode="before")
    @classmethod
    def _lowercase_level(cls, value: object) -> object:
        return value.lower() if isinstance(value, str) else value

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _split_origins(cls, value: object) -> object:
        if isinstance(value, str):
            return [origin.strip() for origin in value.split(",") if origin.strip()]
        return value

    @field_validator("cors_origins")
    @classmethod
    def _origins(cls, value: list[str]) -> list[str]:
        """Each entry as a browser sends it in `Origin`, or `*`: every preflight of an origin
        written otherwise would fail, with nothing said at start-up."""
        return [entry if entry == "*" else _origin(entry) for entry in value]

    @field_validator("auth_jwt_algorithms", mode="before")
    @classmethod
    def _split_algorithms(cls, value: object) -> object:
        if isinstance(value, str):
            return [name.strip() for name in value.split(",") if name.strip()]
        return value

    @field_validator("auth_jwt_algorithms")
    @classmethod
    def _asymmetric_only(cls, value: list[str]) -> list[str]:
        unknown = [name for name in value if name not in ASYMMETRIC_ALGORITHMS]
        if unknown or not value:
            raise ValueError(
                f"AUTH_JWT_ALGORITHMS takes asymmetric algorithms among "
                f"{', '.join(sorted(ASYMMETRIC_ALGORITHMS))}; not {', '.join(unknown) or 'none'}"
            )
        return value

    @field_validator("auth_jwt_secret")
    @classmethod
    def _long_enough(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value().encode()) < MIN_SECRET_BYTES:
            raise ValueError(f"AUTH_JWT_SECRET must be at least {MIN_SECRET_BYTES} bytes long")
        return value

    @model_validator(mode="after")
    def _jwt_needs_keys(self) -> "Settings":
        if self.auth_mode == "jwt" and not (self.auth_jwks_url or self.auth_jwt_secret):
            raise ValueError("AUTH_MODE=jwt needs AUTH_JWKS_URL or AUTH_JWT_SECRET (or both)")
        return self

    @field_validator(
        "database_url",
        "migration_database_url",
        "public_base_url",
        "auth_jwks_url",
        "auth_jwt_secret",
        "auth_issuer",
        "auth_audience",
        mode="before",
    )
    @classmethod
    def _blank_is_unset(cls, value: object) -> object:
        if isinstance(value, str) and not value.strip():
            return None
        return value

    @field_validator("database_url", "migration_database_url")
    @classmethod
    def _database_url(cls, value: str | None, info: ValidationInfo) -> str | None:
        """A URL of a database we run on; its text is not quoted, as it may hold a password."""
        if value is None:
            return None
        try:
            backend = make_url(value).drivername.split("+", 1)[0]
        except ArgumentError:
            backend = None
        if backend not in DATABASE_BACKENDS:
            raise ValueError(
                f"{str(info.field_name).upper()} must be a PostgreSQL URL "
                "(postgresql://user:password@host/database) or a SQLite one "
                "(sqlite:///path/to/file.sqlite3)" + (f", not {backend}" if backend else "")
            )
        return value

    @field_validator("auth_jwks_url")
    @classmethod
    def _jwks_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            parts = urlsplit(value)
            _ = parts.port
        except ValueError:
            parts = None
        if (
            parts is None
            or not _URI_CHARACTERS.fullmatch(value)
            or parts.scheme not in ("http", "https")
            or not parts.hostname
            or "@" in parts.netloc
            or "#" in value
        ):
            raise ValueError(
                "AUTH_JWKS_URL must be the http or https URL of the key set, such as "
                "http://localhost:3000/api/auth/jwks"
            )
        return value

    @field_validator("public_base_url")
    @classmethod
    def _public_base_url(cls, value: str | None) -> str | None:
        """An http(s) URL with a host and no query, fragment or credentials; no trailing `/`."""
        if value is None:
            return None
        problem = (
            "PUBLIC_BASE_URL must be an http or https URL with a host and no query or "
            "fragment, such as https://api.example.com or https://example.com/todo"
        )
        try:
            parts = urlsplit(value)
            _ = parts.port  # raises for a port that is not a number from 0 to 65535
        except ValueError:
            raise ValueError(problem) from None
        valid = (
            _URI_CHARACTERS.fullmatch(value)
            and parts.scheme in ("http", "https")
            and parts.hostname
            and "@" not in parts.netloc
            and "?" not in value
            and "#" not in value
        )
        if not valid:
            raise ValueError(problem)
        # Route paths start with `/`.
        return urlunsplit(parts._replace(path=parts.path.rstrip("/")))


def _origin(entry: str) -> str:
    """`scheme://host[:port]` in lower case, without a trailing `/` or the scheme's default
    port (browsers send neither); ValueError for anything else."""
    problem = (
        f"CORS_ORIGINS takes origins such as http://localhost:3000 or https://app.example.com "
        f"(scheme, host and port, nothing after), or *; not {entry!r}"
    )
    try:
        parts = urlsplit(entry)
        port = parts.port
    except ValueError:
        raise ValueError(problem) from None
    scheme = parts.scheme.lower()
    valid = (
        _URI_CHARACTERS.fullmatch(entry)
        and _SCHEME.fullmatch(scheme)
        and entry.lower().startswith(f"{scheme}://")
        and parts.hostname
        and "@" not in parts.netloc
        and parts.path in ("", "/")
        and not parts.query
        and not parts.fragment
        and "?" not in entry
        and "#" not in entry
    )
    if not valid:
        raise ValueError(problem)
    host = parts.netloc.lower().rstrip(":")
    if port is not None:
        host = host.rsplit(":", 1)[0]
    if port is None or port == _DEFAULT_PORTS.get(scheme):
        return f"{scheme}://{host}"
    return f"{scheme}://{host}:{port}"


@lru_cache
def get_settings() -> Settings:
    return Settings()


def settings_or_exit() -> Settings:
    """The settings, or one line per invalid one on stderr and exit status 2.

    Pydantic's own message quotes the values it was given, and a secret must not reach a
    terminal or a log that way.
    """
    try:
        return Settings()
    except ValidationError as invalid:
        for error in invalid.errors(include_input=False, include_url=False):
            names = ".".join(str(part) for part in error["loc"]).upper() or "settings"
            message = error["msg"].removeprefix("Value error, ")
            print(f"todo_api: invalid {names}: {message}", file=sys.stderr)
        sys.exit(exit_codes.MISCONFIGURED)
