"""The Alembic migrations: the schema they build, its constraints, and the way back.

Alembic's env.py calls `asyncio.run`, so every test here is sync.
"""

import json
import re
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import (
    Boolean,
    Connection,
    DateTime,
    Engine,
    bindparam,
    create_engine,
    inspect,
    text,
)
from sqlalchemy.exc import DBAPIError
from sqlalchemy.pool import NullPool

from tests.conftest import PROJECT_ROOT, alembic_config
from tests.helpers import sync_url
from todo_api.db.models import Task

INDEX_NAME = "ix_tasks_user_id_created_at_id"
CHECK_CONSTRAINTS = {
    "ck_tasks_user_id_length",
    "ck_tasks_title_length",
    "ck_tasks_description_length",
    "ck_tasks_completed_at_matches_completed",
    "ck_tasks_priority_known",
    "ck_tasks_one_due",
    "ck_tasks_recurrence_has_due",
    "ck_tasks_recurrence_has_zone",
    "ck_tasks_occurrence_positive",
    "ck_tasks_reminder_minutes_have_an_instant",
}
NOW = datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)

INSERT_TASK = text(
    "INSERT INTO tasks (user_id, title, description, completed, completed_at, created_at,"
    " updated_at) VALUES (:user_id, :title, :description, :completed, :completed_at,"
    " :created_at, :updated_at)"
).bindparams(
    bindparam("completed", type_=Boolean()),
    bindparam("completed_at", type_=DateTime(timezone=True)),
    bindparam("created_at", type_=DateTime(timezone=True)),
    bindparam("updated_at", type_=DateTime(timezone=True)),
)
VALID_TASK: dict[str, Any] = {
    "user_id": "alice",
    "title": "Buy milk",
    "description": None,
    "completed": False,
    "completed_at": None,
    "created_at": NOW,
    "updated_at": NOW,
}


def head_revision() -> str | None:
    return ScriptDirectory.from_config(Config(PROJECT_ROOT / "alembic.ini")).get_current_head()


def current_revision(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


def schema_diff(connection: Connection) -> list[Any]:
    context = MigrationContext.configure(connection, opts={"compare_type": True})
    return list(compare_metadata(context, Task.metadata))


def insert_task(connection: Connection, **overrides: Any) -> None:
    connection.execute(INSERT_TASK, VALID_TASK | overrides)


@pytest.fixture
def fresh_database(new_database: Callable[[], str]) -> Iterator[tuple[str, Engine]]:
    """An empty database: its URL for Alembic and a sync engine on it."""
    url = new_database()
    # NullPool: an idle pooled connection must not hold anything the migrations wait on.
    engine = create_engine(sync_url(url), poolclass=NullPool)
    yield url, engine
    engine.dispose()


@pytest.fixture(scope="module")
def migrated_engine(new_database: Callable[[], str]) -> Iterator[Engine]:
    """A sync engine on one database upgraded to head, shared by the read-only tests."""
    url = new_database()
    command.upgrade(alembic_config(url), "head")
    engine = create_engine(sync_url(url), poolclass=NullPool)
    yield engine
    engine.dispose()


TABLES = {"alembic_version", "tasks", "task_tags", "idempotency_keys"}


def test_upgrade_head_creates_the_tasks_table(migrated_engine: Engine) -> None:
    inspector = inspect(migrated_engine)

    assert set(inspector.get_table_names()) == TABLES
    columns = {column["name"]: column["nullable"] for column in inspector.get_columns("tasks")}
    assert columns == {
        "id": False,
        "user_id": False,
        "title": False,
        "description": True,
        "completed": False,
        "completed_at": True,
        "created_at": False,
        "updated_at": False,
        "version": False,
        "priority": False,
        "due_date": True,
        "due_at": True,
        "tags": False,
        "recurrence": True,
        "recurrence_tz": True,
        "recurrence_from_completion": False,
        "series_id": True,
        "occurrence": False,
        "next_occurrence_id": True,
        "remind_at": True,
        "reminder_minutes_before": True,
        "reminder_tz": True,
        "reminder_acknowledged_at": True,
    }
    assert inspector.get_pk_constraint("tasks")["constrained_columns"] == ["id"]
    indexes = [
        (index["name"], index["column_names"], bool(index["unique"]))
        for index in inspector.get_indexes("tasks")
    ]
    assert sorted(indexes) == [
        ("ix_tasks_series_id_occurrence", ["series_id", "occurrence"], True),
        (INDEX_NAME, ["user_id", "created_at", "id"], False),
        ("ix_tasks_user_id_due_at", ["user_id", "due_at"], False),
        ("ix_tasks_user_id_due_date", ["user_id", "due_date"], False),
        ("ix_tasks_user_id_id_repeating", ["user_id", "id"], False),
        ("ix_tasks_user_id_priority_id", ["user_id", "priority", "id"], False),
        ("ix_tasks_user_id_remind_at_id", ["user_id", "remind_at", "id"], False),
    ]
    names = {check["name"] for check in inspector.get_check_constraints("tasks")}
    assert names == CHECK_CONSTRAINTS
    with migrated_engine.connect() as connection:
        assert current_revision(connection) == head_revision()


def test_models_match_the_migrated_schema(migrated_engine: Engine) -> None:
    """Autogenerate finds nothing to do: no missing column, index or type change."""
    with migrated_engine.connect() as connection:
        assert schema_diff(connection) == []


@pytest.mark.parametrize(
    "overrides",
    [
        pytest.param({}, id="plain"),
        pytest.param({"title": "t" * 200}, id="title-200-chars"),
        pytest.param({"description": "d" * 1000}, id="description-1000-chars"),
        pytest.param({"description": ""}, id="empty-description"),
        pytest.param({"user_id": "u" * 128}, id="user-id-128-chars"),
        pytest.param({"completed": True, "completed_at": NOW}, id="completed-with-completed-at"),
    ],
)
def test_check_constraints_accept_valid_rows(
    migrated_engine: Engine, overrides: dict[str, Any]
) -> None:
    with migrated_engine.connect() as connection:
        insert_task(connection, **overrides)
        stored = connection.execute(text("SELECT count(*) FROM tasks")).scalar_one()
        connection.rollback()
    assert stored == 1


@pytest.mark.parametrize(
    ("overrides", "constraint", "exceeds_varchar"),
    [
        pytest.param({"title": "t" * 201}, "ck_tasks_title_length", True, id="title-201-chars"),
        pytest.param({"title": ""}, "ck_tasks_title_length", False, id="empty-title"),
        pytest.param(
            {"description": "d" * 1001},
            "ck_tasks_description_length",
            True,
            id="description-1001-chars",
        ),
        pytest.param(
            {"user_id": "u" * 129}, "ck_tasks_user_id_length", True, id="user-id-129-chars"
        ),
        pytest.param({"user_id": ""}, "ck_tasks_user_id_length", False, id="empty-user-id"),
        pytest.param(
            {"completed": True, "completed_at": None},
            "ck_tasks_completed_at_matches_completed",
            False,
            id="completed-without-completed-at",
        ),
        pytest.param(
            {"completed": False, "completed_at": NOW},
            "ck_tasks_completed_at_matches_completed",
            False,
            id="completed-at-without-completed",
        ),
    ],
)
def test_check_constraints_reject_bad_rows(
    migrated_engine: Engine,
    backend: str,
    overrides: dict[str, Any],
    constraint: str,
    exceeds_varchar: bool,
) -> None:
    # PostgreSQL enforces varchar(n) before any CHECK runs; SQLite ignores the declared
    # length, so there the CHECK is the only thing that stops an over-long value.
    if backend == "postgres" and exceeds_varchar:
        reason = r"value too long for type character varying\(\d+\)"
    else:
        reason = constraint
    with migrated_engine.connect() as connection:
        with pytest.raises(DBAPIError, match=reason):
            insert_task(connection, **overrides)
        connection.rollback()
        assert connection.execute(text("SELECT count(*) FROM tasks")).scalar_one() == 0


def test_downgrade_base_then_upgrade_head_round_trips(
    fresh_database: tuple[str, Engine],
) -> None:
    url, engine = fresh_database
    config = alembic_config(url)
    command.upgrade(config, "head")

    command.downgrade(config, "base")

    assert set(inspect(engine).get_table_names()) == {"alembic_version"}
    with engine.connect() as connection:
        assert current_revision(connection) is None

    command.upgrade(config, "head")

    inspector = inspect(engine)
    assert set(inspector.get_table_names()) == TABLES
    assert sorted(str(index["name"]) for index in inspector.get_indexes("tasks")) == sorted(
        [
            INDEX_NAME,
            "ix_tasks_user_id_priority_id",
            "ix_tasks_user_id_due_date",
            "ix_tasks_user_id_due_at",
            "ix_tasks_series_id_occurrence",
            "ix_tasks_user_id_remind_at_id",
            "ix_tasks_user_id_id_repeating",
        ]
    )
    with engine.begin() as connection:
        assert current_revision(connection) == head_revision()
        assert schema_diff(connection) == []
        insert_task(connection)
        with (
            pytest.raises(DBAPIError, match="ck_tasks_title_length"),
            connection.begin_nested(),
        ):
            insert_task(connection, title="")


def test_upgrade_to_versions_keeps_existing_tasks_at_version_one(
    fresh_database: tuple[str, Engine],
) -> None:
    url, engine = fresh_database
    config = alembic_config(url)
    command.upgrade(config, "0001")
    with engine.begin() as connection:
        insert_task(connection, title="Made before ETags")

    command.upgrade(config, "head")

    with engine.connect() as connection:
        rows = connection.execute(text("SELECT title, version FROM tasks")).all()
    assert [tuple(row) for row in rows] == [("Made before ETags", 1)]

    command.downgrade(config, "0001")

    assert "idempotency_keys" not in inspect(engine).get_table_names()
    assert "version" not in {column["name"] for column in inspect(engine).get_columns("tasks")}
    with engine.connect() as connection:
        titles = connection.execute(text("SELECT title FROM tasks")).scalars().all()
    assert titles == ["Made before ETags"]


def test_upgrade_to_priorities_makes_existing_tasks_medium(
    fresh_database: tuple[str, Engine],
) -> None:
    url, engine = fresh_database
    config = alembic_config(url)
    command.upgrade(config, "0002")
    with engine.begin() as connection:
        insert_task(connection, title="Made before priorities")

    command.upgrade(config, "head")

    with engine.connect() as connection:
        rows = connection.execute(text("SELECT title, priority, version FROM tasks")).all()
    # Rank 2 is "medium"; the version (and so the ETag) is untouched.
    assert [tuple(row) for row in rows] == [("Made before priorities", 2, 1)]
    with engine.begin() as connection, pytest.raises(DBAPIError, match="priority_known"):
        connection.execute(text("UPDATE tasks SET priority = 4"))
    # The table kept AUTOINCREMENT on SQLite: a deleted task's id is never handed out again.
    with engine.begin() as connection:
        insert_task(connection, title="Deleted")
        deleted = connection.execute(text("SELECT max(id) FROM tasks")).scalar_one()
        connection.execute(text("DELETE FROM tasks WHERE id = :id"), {"id": deleted})
        insert_task(connection, title="After")
        assert connection.execute(text("SELECT max(id) FROM tasks")).scalar_one() > deleted
        connection.execute(text("DELETE FROM tasks WHERE title = 'After'"))

    command.downgrade(config, "0002")

    assert "priority" not in {column["name"] for column in inspect(engine).get_columns("tasks")}
    with engine.connect() as connection:
        titles = connection.execute(text("SELECT title FROM tasks")).scalars().all()
    assert titles == ["Made before priorities"]


def test_upgrade_to_due_dates_leaves_existing_tasks_without_one(
    fresh_database: tuple[str, Engine],
) -> None:
    url, engine = fresh_database
    config = alembic_config(url)
    command.upgrade(config, "0003")
    with engine.begin() as connection:
        insert_task(connection, title="Made before due dates")

    command.upgrade(config, "head")

    with engine.connect() as connection:
        rows = connection.execute(text("SELECT title, due_date, due_at FROM tasks")).all()
    assert [tuple(row) for row in rows] == [("Made before due dates", None, None)]
    both = "UPDATE tasks SET due_date = '2026-12-03', due_at = '2026-12-03 09:00:00'"
    with engine.begin() as connection, pytest.raises(DBAPIError, match="one_due"):
        connection.execute(text(both))

    command.downgrade(config, "0003")

    columns = {column["name"] for column in inspect(engine).get_columns("tasks")}
    assert {"due_date", "due_at"}.isdisjoint(columns)
    with engine.connect() as connection:
        titles = connection.execute(text("SELECT title FROM tasks")).scalars().all()
    assert titles == ["Made before due dates"]


_INSERT_KEY = text(
    "INSERT INTO idempotency_keys (user_id, key, fingerprint, claim, created_at, task_id,"
    " response) VALUES ('alice', :key, 'f', 'c', :created_at, :task_id, :response)"
).bindparams(bindparam("created_at", type_=DateTime(timezone=True)))


def test_an_idempotency_key_names_its_task_without_a_response(migrated_engine: Engine) -> None:
    with migrated_engine.connect() as connection:
        connection.execute(
            _INSERT_KEY, {"key": "k", "created_at": NOW, "task_id": 1, "response": None}
        )
        with pytest.raises(DBAPIError, match=r"pk_idempotency_keys|UNIQUE"):
            connection.execute(
                _INSERT_KEY, {"key": "k", "created_at": NOW, "task_id": 2, "response": None}
            )
        connection.rollback()


def test_downgrade_from_keys_naming_their_task_forgets_the_keys_without_a_response(
    fresh_database: tuple[str, Engine],
) -> None:
    """0006 replays only stored responses and refuses a key with a task and no response:
    such keys are forgotten (their tasks stay), the others kept."""
    url, engine = fresh_database
    config = alembic_config(url)
    command.upgrade(config, "0007")
    with engine.begin() as connection:
        rows = [("new", 1, None), ("old", 2, "{}"), ("claim", None, None)]
        for key, task_id, response in rows:
            values = {"key": key, "created_at": NOW, "task_id": task_id, "response": response}
            connection.execute(_INSERT_KEY, values)
    command.downgrade(config, "0006")
    with engine.connect() as connection:
        keys = connection.execute(text("SELECT key FROM idempotency_keys ORDER BY key"))
        assert keys.scalars().all() == ["claim", "old"]
        half_done = {"key": "k", "created_at": NOW, "task_id": 1, "response": None}
        with pytest.raises(DBAPIError, match="ck_idempotency_keys_response_names_its_task"):
            connection.execute(_INSERT_KEY, half_done)
        connection.rollback()
    command.upgrade(config, "head")


def test_migrations_use_the_migration_url_when_set(
    new_database: Callable[[], str], monkeypatch: pytest.MonkeyPatch
) -> None:
    url = new_database()
    monkeypatch.setenv("DATABASE_URL", "postgresql://nobody@127.0.0.1:1/unreachable")
    monkeypatch.setenv("MIGRATION_DATABASE_URL", url)
    config = alembic_config(url)
    del config.attributes["database_url"]

    command.upgrade(config, "head")

    engine = create_engine(sync_url(url))
    try:
        assert "tasks" in inspect(engine).get_table_names()
    finally:
        engine.dispose()


def test_upgrade_to_tags_gives_existing_tasks_none_and_deletes_tags_with_their_task(
    fresh_database: tuple[str, Engine],
) -> None:
    url, engine = fresh_database
    config = alembic_config(url)
    command.upgrade(config, "0004")
    with engine.begin() as connection:
        insert_task(connection, title="Made before tags")

    command.upgrade(config, "head")

    inspector = inspect(engine)
    assert inspector.get_pk_constraint("task_tags")["constrained_columns"] == ["task_id", "key"]
    assert [
        (index["name"], index["column_names"]) for index in inspector.get_indexes("task_tags")
    ] == [("ix_task_tags_user_id_key_task_id", ["user_id", "key", "task_id"])]
    with engine.begin() as connection:
        if connection.dialect.name == "sqlite":
            connection.exec_driver_sql("PRAGMA foreign_keys=ON")
        rows = connection.execute(text("SELECT id, title, tags, version FROM tasks")).all()
        [(task_id, *rest)] = rows
        assert rest == ["Made before tags", "[]", 1]
        add_tag = text(
            "INSERT INTO task_tags (task_id, key, user_id, name) VALUES (:id, :key, 'alice', :name)"
        )
        connection.execute(add_tag, {"id": task_id, "key": "work", "name": "Work"})
        with pytest.raises(DBAPIError, match="name_length"), connection.begin_nested():
            connection.execute(add_tag, {"id": task_id, "key": "x" * 41, "name": "x" * 41})
        with pytest.raises(DBAPIError), connection.begin_nested():  # no such task
            connection.execute(add_tag, {"id": task_id + 1, "key": "home", "name": "home"})
        connection.execute(text("DELETE FROM tasks"))
        assert connection.execute(text("SELECT count(*) FROM task_tags")).scalar_one() == 0
        insert_task(connection, title="Kept on the way down")

    command.downgrade(config, "0004")

    assert "task_tags" not in inspect(engine).get_table_names()
    assert "tags" not in {column["name"] for column in inspect(engine).get_columns("tasks")}
    with engine.connect() as connection:
        titles = connection.execute(text("SELECT title FROM tasks")).scalars().all()
    assert titles == ["Kept on the way down"]


def test_upgrade_to_nfc_tags_respells_rekeys_and_merges(
    fresh_database: tuple[str, Engine],
) -> None:
    """Tags written before 0006 in another composition are brought to NFC; a task that had
    both spellings of one tag keeps the first; only tasks whose tags change get a new version."""
    url, engine = fresh_database
    config = alembic_config(url)
    command.upgrade(config, "0005")
    tags_as_sent = ["Cafe\u0301", "work", "caf\u00e9", "\u01f0"]  # ǰ folds to j + U+030C
    with engine.begin() as connection:
        insert_task(connection, title="Mixed")
        insert_task(connection, title="Plain")
        insert_task(connection, title="Only its keys change")
        set_tags = text("UPDATE tasks SET tags = :tags WHERE title = :title")
        add_tag = text(
            "INSERT INTO task_tags (task_id, key, user_id, name)"
            " SELECT id, :key, 'alice', :name FROM tasks WHERE title = :title"
        )
        for title, names in [
            ("Mixed", tags_as_sent),
            ("Plain", ["work", "home"]),
            ("Only its keys change", ["\u01f0"]),
        ]:
            connection.execute(set_tags, {"title": title, "tags": json.dumps(names)})
            for name in names:
                connection.execute(add_tag, {"title": title, "key": name.casefold(), "name": name})

    command.upgrade(config, "0006")

    def stored() -> dict[str, tuple[list[str], int, list[tuple[str, str]]]]:
        with engine.connect() as connection:
            tasks = connection.execute(text("SELECT id, title, tags, version FROM tasks")).all()
            return {
                title: (
                    json.loads(tags),
                    version,
                    sorted(
                        (key, name)
                        for key, name in connection.execute(
                            text("SELECT key, name FROM task_tags WHERE task_id = :id"),
                            {"id": task_id},
                        )
                    ),
                )
                for task_id, title, tags, version in tasks
            }

    after = stored()
    assert after["Mixed"] == (
        ["Caf\u00e9", "work", "\u01f0"],
        2,
        [("caf\u00e9", "Caf\u00e9"), ("work", "work"), ("\u01f0", "\u01f0")],
    )
    assert after["Plain"] == (["work", "home"], 1, [("home", "home"), ("work", "work")])
    assert after["Only its keys change"] == (["\u01f0"], 1, [("\u01f0", "\u01f0")])

    command.downgrade(config, "0005")

    assert stored()["Only its keys change"] == (["\u01f0"], 1, [("j\u030c", "\u01f0")])


def test_the_docs_name_the_head_revision() -> None:
    """Examples that show a revision show the one `make migrate` brings a database to."""
    head = head_revision()
    configuration = (PROJECT_ROOT / "docs" / "configuration.md").read_text()
    neon = (PROJECT_ROOT / "docs" / "neon.md").read_text()
    for text_, pattern in [
        (configuration, r"this code needs revision (\d{4})"),
        (configuration, r"behind the (\d{4})"),
        (neon, r'"(\d{4}) \(head\)"'),
    ]:
        assert set(re.findall(pattern, text_)) == {head}, pattern
