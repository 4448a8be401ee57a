"""The compiled statements are SQLAlchemy's own, for each dialect, and filter by owner."""

import re
from datetime import UTC, datetime
from itertools import combinations

import pytest
from sqlalchemy import Dialect, Update, bindparam, select
from sqlalchemy.sql import ClauseElement
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.expression import ReturnsRows

from tests.test_ownership import _unfiltered_reads_and_writes, inserts_new_rows
from todo_api.db import idempotency, tags, tasks
from todo_api.db.database import Statement, StatementShape
from todo_api.db.models import TAGS_MAX_COUNT, tasks_table
from todo_api.db.postgres import PostgresDatabase
from todo_api.db.sqlite import SqliteDatabase
from todo_api.db.statements import compile_statement

DIALECTS = {"postgresql": PostgresDatabase.dialect, "sqlite": SqliteDatabase.dialect}
# How each driver writes the owner's placeholder.
OWNER = {"postgresql": "%(owner)s", "sqlite": ":owner"}


def _built(statement: Statement) -> ClauseElement:
    if isinstance(statement, StatementShape):
        return statement.build(*statement.args)
    return statement


def _shapes(dialect_name: str) -> list[ClauseElement]:
    return [
        _built(statement)
        for statement in (
            *tasks.statement_shapes(),
            *tags.statement_shapes(),
            *idempotency.statement_shapes(dialect_name),
        )
    ]


@pytest.mark.parametrize("dialect_name", DIALECTS)
def test_each_statement_is_compiled_exactly_as_sqlalchemy_generates_it(dialect_name: str) -> None:
    dialect: Dialect = DIALECTS[dialect_name]
    shapes = _shapes(dialect_name)
    assert len(shapes) > 60
    for statement in shapes:
        compiled = compile_statement(statement, dialect)
        assert compiled.sql == str(statement.compile(dialect=dialect))


@pytest.mark.parametrize("dialect_name", DIALECTS)
def test_each_statement_on_tasks_still_filters_by_owner(dialect_name: str) -> None:
    dialect = DIALECTS[dialect_name]
    for statement in map(_built, tasks.statement_shapes()):
        sql = compile_statement(statement, dialect).sql
        assert _unfiltered_reads_and_writes(statement) == [], sql
        if inserts_new_rows(" ".join(sql.split())):
            assert "new_user_id" in sql  # the owner is what the insert writes
        else:
            assert f"tasks.user_id = {OWNER[dialect_name]}" in sql, sql


def test_statements_that_return_tasks_return_the_record_fields_in_order() -> None:
    # A TaskRecord is made from a row by position: a column out of place would put one
    # field's value under another's name.
    fields = tasks.TaskRecord._fields
    returning_tasks = 0
    for statement in map(_built, tasks.statement_shapes()):
        assert isinstance(statement, ReturnsRows)
        names = tuple(column.name for column in statement.exported_columns)
        if "version" in names:
            assert names[: len(fields)] == fields, statement
            returning_tasks += 1
    assert returning_tasks > 100
    assert tuple(column.name for column in tasks_table.columns) == fields


def test_a_write_that_may_leave_a_task_alone_never_writes_what_decides_it() -> None:
    # Whether such a statement left the task as it was is read from the row it returns,
    # which is the row after the write: right only if the write leaves those columns be.
    shapes = [(tasks._toggle_query(conditional), {"completed"}) for conditional in (False, True)]
    for count in range(1, len(tasks._STATEMENT_FIELDS) + 1):
        for written in combinations(sorted(tasks._STATEMENT_FIELDS), count):
            shapes += [(tasks._update_query(frozenset(written), False), set(written))]
    deciding = 0
    for statement, fields in shapes:
        known_by = tasks._known_by(fields)
        assert set(known_by).isdisjoint(str(name) for name in statement._values or ()), fields
        deciding += bool(known_by)
    assert deciding > 100  # the toggle, and every update of `completed` or a due


@pytest.mark.parametrize("dialect_name", DIALECTS)
def test_every_change_to_a_task_moves_its_version(dialect_name: str) -> None:
    # A write planned from a kept record of a task acts only while the task is at the
    # record's version and `updated_at` (tasks._write_knowing): a change that left them as
    # they were would be undone by such a write, planned from the task as it was before.
    dialect = DIALECTS[dialect_name]
    changes = 0
    for statement in _shapes(dialect_name):
        sql = compile_statement(statement, dialect).sql
        assert "ON CONFLICT" not in sql or "INTO tasks " not in sql, sql
        if not sql.startswith("UPDATE tasks "):
            continue
        assert isinstance(statement, Update)
        values = {str(name): value for name, value in (statement._values or {}).items()}
        version = str(values["version"].compile(dialect=dialect))
        if set(values) == {"version"}:
            assert version == "tasks.version", sql  # tasks._LOCK, which changes nothing
            continue
        assert "tasks.version +" in version, sql
        assert "updated_at" in values, sql
        changes += 1
    assert changes > 100


@pytest.mark.parametrize("dialect_name", DIALECTS)
def test_each_statement_on_tag_rows_filters_by_or_writes_the_owner(dialect_name: str) -> None:
    dialect = DIALECTS[dialect_name]
    owner = OWNER[dialect_name]
    inserts = 0
    for statement in (*tags.statement_shapes(), *idempotency.statement_shapes(dialect_name)):
        sql = compile_statement(statement, dialect).sql
        assert _unfiltered_reads_and_writes(statement) == [], sql
        if sql.startswith("INSERT INTO task_tags"):
            # Each row is selected from the task's own row, which the owner filter finds.
            inserts += 1
            selected = sql.split(" SELECT ", 1)[1].replace('"', "")
            assert selected.startswith("tasks.id, tasks.user_id, tag.key, tag.name"), sql
            assert f"WHERE tasks.user_id = {owner}" in sql, sql
        elif "task_tags" in sql:
            assert f"task_tags.user_id = {owner}" in sql, sql
    assert inserts == 3 * TAGS_MAX_COUNT  # for a new, a changed and a keyed task


def test_conditional_writes_of_any_number_of_versions_are_one_statement() -> None:
    for count in range(40):
        params, conditional = tasks._condition({}, set(range(1, count + 1)))
        assert conditional
        assert params == {"expected_versions": list(range(1, count + 1))}
    assert tasks._condition({"a": 1}, None) == ({"a": 1}, False)


def test_types_are_processed_for_each_driver() -> None:
    moment = datetime(2026, 12, 2, 9, 30, tzinfo=UTC)
    statement = select(tasks_table.c.created_at).where(
        tasks_table.c.created_at > bindparam("since", type_=tasks_table.c.created_at.type)
    )
    on_postgres = compile_statement(statement, DIALECTS["postgresql"])
    on_sqlite = compile_statement(statement, DIALECTS["sqlite"])
    # psycopg takes and gives aware datetimes; SQLite stores UTC text and gets its zone back.
    assert on_postgres.parameters({"since": moment})["since"] == moment
    assert on_sqlite.parameters({"since": moment})["since"] == "2026-12-02 09:30:00.000000"
    assert on_sqlite.row(("2026-12-02 09:30:00.000000",)) == (moment,)


def test_values_sqlalchemy_binds_itself_are_carried_along() -> None:
    toggle = compile_statement(tasks._toggle_query(False), DIALECTS["postgresql"])
    # `version + 1`: SQLAlchemy made the 1 a parameter of its own.
    assert 1 in toggle.fixed_parameters.values()
    assert toggle.parameters({"owner": "alice"})["owner"] == "alice"


def test_a_list_bound_later_is_refused() -> None:
    statement = select(tasks_table.c.id).where(
        tasks_table.c.id.in_(bindparam("ids", expanding=True))
    )
    with pytest.raises(ValueError, match="expanding"):
        compile_statement(statement, DIALECTS["postgresql"])


def test_a_value_used_twice_is_processed_once() -> None:
    # A new task's created_at and updated_at are one parameter.
    insert = compile_statement(tasks._INSERT, DIALECTS["sqlite"])
    moment = datetime(2026, 12, 2, 9, 30, tzinfo=UTC)
    assert insert.parameters({"new_created_at": moment})["new_created_at"] == (
        "2026-12-02 09:30:00.000000"
    )


def test_psycopg_runs_its_c_implementation() -> None:
    # psycopg[binary] is pinned: the pure-Python protocol code would cost every statement.
    import psycopg

    assert psycopg.pq.__impl__ in {"binary", "c"}
    assert psycopg.pq.version() >= 170000  # cancel_safe() cancels without blocking the loop


@pytest.mark.parametrize("dialect_name", DIALECTS)
def test_listings_with_a_tag_filter_are_never_prepared(dialect_name: str) -> None:
    """Their generic plan cannot know how many tasks the tags match (it took 0.85 s where
    planning for the values took 18 ms): they are planned for their values every time."""
    dialect = DIALECTS[dialect_name]
    for shape in (tags.NO_TAGS, tags.ONE_TAG, tags.SEVERAL_TAGS):
        filters = tasks.ListFilter(tags=shape)
        page = compile_statement(_built(tasks._page_query(filters, tasks.TaskSort.TITLE)), dialect)
        assert page.prepare is (False if shape else None)
        count = compile_statement(_built(tasks._count_query(filters)), dialect)
        assert count.prepare is (False if shape else None)
    # A read by id is prepared, from its first run on a connection.
    assert compile_statement(tasks._READ, dialect).prepare is True


@pytest.mark.parametrize("dialect_name", DIALECTS)
def test_statements_finding_one_task_through_an_owner_index_are_never_prepared(
    dialect_name: str,
) -> None:
    """A generic plan of these walked a 50,000-task owner's index range (1-3 ms) where the
    plan for the values takes the primary key (0.04 ms): they are planned for their values."""
    dialect = DIALECTS[dialect_name]
    never_prepared = (
        tags._insert_for_new_task(2),
        tags._CLEAR_REPLACED,
        tasks._next_tag_rows(2),
        tasks._ACKNOWLEDGE,
    )
    for statement in never_prepared:
        assert compile_statement(statement, dialect).prepare is False


def test_every_parameter_but_a_boolean_has_its_type_in_the_postgresql_sql() -> None:
    """psycopg sends every int as int8 (todo_api.db.postgres._adapters): the SQL must say
    which type each parameter is, so that an int8 is only ever cast to it."""
    dialect = DIALECTS["postgresql"]
    untyped = set()
    # Listings with due-date or tag filters beside others are compiled when first used: each
    # sort with every filter at once.
    every_filter = tasks.ListFilter(
        status=tasks.TaskStatus.PENDING,
        searching=True,
        priorities=True,
        due=tasks.DueFilter(has_due=True, due_from=True, due_to=True, overdue=False),
        tags=tags.SEVERAL_TAGS,
        recurring=True,
    )
    listings = [tasks._page_query(every_filter, sort) for sort in tasks.TaskSort]
    listings.append(tasks._count_query(every_filter))
    for statement in [*_shapes("postgresql"), *map(_built, listings)]:
        compiled = statement.compile(dialect=dialect)
        assert isinstance(compiled, SQLCompiler)
        types = {
            name: type(parameter.type).__name__ for parameter, name in compiled.bind_names.items()
        }
        # Every place a parameter is used, not only one of them.
        for name in re.findall(r"%\((\w+)\)s(?!::)", compiled.string):
            untyped.add((name, types[name]))
    assert untyped
    assert {kind for _, kind in untyped} == {"Boolean"}, untyped
