"""Whether the database's schema is the one this code was written for (Alembic's head)."""

from dataclasses import dataclass
from functools import cache
from pathlib import Path

from alembic.script import ScriptDirectory
from sqlalchemy import Select, column, select, table

from todo_api.db.database import Database, DatabaseSchemaError

MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"
_CURRENT_REVISION: Select[tuple[str]] = select(column("version_num")).select_from(
    table("alembic_version")
)


@cache
def _scripts() -> ScriptDirectory:
    return ScriptDirectory(str(MIGRATIONS))


@cache
def code_revision() -> str:
    """The newest migration in this code: what the database must be at."""
    head = _scripts().get_current_head()
    if head is None:
        raise RuntimeError(f"no Alembic migrations in {MIGRATIONS}")
    return head


@cache
def _known_revisions() -> frozenset[str]:
    return frozenset(script.revision for script in _scripts().walk_revisions())


@dataclass(frozen=True, slots=True)
class SchemaMismatch:
    """The database is not at this code's revision; `message` says what to do."""

    database_revision: str | None
    message: str


async def schema_mismatch(database: Database) -> SchemaMismatch | None:
    """None when the database is at this code's revision; otherwise what is wrong.

    Raises the database's own errors (unavailable, busy) when it cannot be asked.
    """
    try:
        rows = await database.fetch_all(_CURRENT_REVISION, {})
    except DatabaseSchemaError:
        rows = []  # no alembic_version table: nothing was ever migrated
    revisions = [row[0] for row in rows]
    wanted = code_revision()
    if revisions == [wanted]:
        return None
    if not revisions:
        return SchemaMismatch(
            None,
            f"The database has no schema yet (this code needs revision {wanted}): "
            "run `make migrate` (or `alembic upgrade head`) first.",
        )
    current = ", ".join(revisions)
    if len(revisions) == 1 and revisions[0] in _known_revisions():
        return SchemaMismatch(
            current,
            f"The database schema is at revision {current}, behind the {wanted} this code "
            "needs: run `make migrate` (or `alembic upgrade head`) first.",
        )
    return SchemaMismatch(
        current,
        f"The database schema is at revision {current}, which this code does not know (it "
        f"needs {wanted}): the database was migrated by a newer version, or by another "
        "project. Deploy the code that matches it, or point DATABASE_URL elsewhere.",
    )
