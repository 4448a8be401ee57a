"""Every query on tasks. Each function takes the owner and filters by it in SQL."""

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from functools import cache
from typing import Any

from sqlalchemy import (
    BigInteger,
    BindParameter,
    Boolean,
    ColumnElement,
    Integer,
    Row,
    Select,
    String,
    Update,
    bindparam,
    case,
    delete,
    func,
    not_,
    null,
    or_,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.sql.dml import ReturningDelete

from todo_api.db.models import UTCDateTime, tasks_table

_t = tasks_table.c

#: Fields a client may change; everything else is owned by the server.
EDITABLE_FIELDS = frozenset({"title", "description", "completed"})


class TaskStatus(StrEnum):
    ALL = "all"
    PENDING = "pending"
    COMPLETED = "completed"


class TaskSort(StrEnum):
    NEWEST = "-created_at"
    OLDEST = "created_at"
    RECENTLY_UPDATED = "-updated_at"
    LEAST_RECENTLY_UPDATED = "updated_at"
    TITLE = "title"
    TITLE_DESCENDING = "-title"


# Every ordering ends with the id so that equal keys still page deterministically.
_ORDERINGS: dict[TaskSort, tuple[ColumnElement[Any], ...]] = {
    TaskSort.NEWEST: (_t.created_at.desc(), _t.id.desc()),
    TaskSort.OLDEST: (_t.created_at.asc(), _t.id.asc()),
    TaskSort.RECENTLY_UPDATED: (_t.updated_at.desc(), _t.id.desc()),
    TaskSort.LEAST_RECENTLY_UPDATED: (_t.updated_at.asc(), _t.id.asc()),
    TaskSort.TITLE: (func.lower(_t.title).asc(), _t.id.asc()),
    TaskSort.TITLE_DESCENDING: (func.lower(_t.title).desc(), _t.id.desc()),
}


#: A task as stored: column name to value, timestamps timezone-aware.
TaskRecord = dict[str, Any]


class VersionMismatchError(Exception):
    """A conditional write found the task at another version; nothing was changed."""

    def __init__(self, current: TaskRecord) -> None:
        super().__init__(f"task {current['id']} is at version {current['version']}")
        self.current = current


@dataclass(frozen=True, slots=True)
class TaskPage:
    tasks: list[TaskRecord]
    total: int


# Statements are built once per shape and take every value as a bind parameter, so
# SQLAlchemy compiles each shape once and psycopg can prepare it on the server.
_OWNER = bindparam("owner", type_=String())
_TASK_ID = bindparam("task_id", type_=BigInteger())
_NOW = bindparam("now", type_=UTCDateTime())
_ONE_TASK = (_t.user_id == _OWNER, _t.id == _TASK_ID)
# A conditional write names the versions it may overwrite; checking them in the write's
# own WHERE makes check and write one atomic step.
_AT_EXPECTED_VERSION = _t.version.in_(bindparam("versions", expanding=True))


def _one_task(conditional: bool) -> tuple[ColumnElement[bool], ...]:
    return (*_ONE_TASK, _AT_EXPECTED_VERSION) if conditional else _ONE_TASK


def _status_filter(status: TaskStatus) -> list[ColumnElement[bool]]:
    if status is TaskStatus.PENDING:
        return [_t.completed.is_(False)]
    if status is TaskStatus.COMPLETED:
        return [_t.completed.is_(True)]
    return []


def _matches(searching: bool) -> list[ColumnElement[bool]]:
    if not searching:
        return []
    # Case-insensitive substring; the value is escaped (see _like_literal) so that `%` and
    # `_` in it match themselves.
    search = bindparam("search", type_=String())
    return [
        or_(
            _t.title.icontains(search, escape=_LIKE_ESCAPE),
            _t.description.icontains(search, escape=_LIKE_ESCAPE),
        )
    ]


_LIKE_ESCAPE = "/"


def _like_literal(text: str) -> str:
    for special in (_LIKE_ESCAPE, "%", "_"):
        text = text.replace(special, _LIKE_ESCAPE + special)
    return text


def _filters(status: TaskStatus, searching: bool) -> list[ColumnElement[bool]]:
    return [_t.user_id == _OWNER, *_status_filter(status), *_matches(searching)]


@cache
def _count_query(status: TaskStatus, searching: bool) -> Select[Any]:
    return select(func.count()).select_from(tasks_table).where(*_filters(status, searching))


@cache
def _page_query(status: TaskStatus, sort: TaskSort, searching: bool) -> Select[Any]:
    # The count rides along as a scalar subquery: one round trip, and the page and the
    # total come from the same snapshot.
    count = _count_query(status, searching).scalar_subquery().label("total")
    return (
        select(tasks_table, count)
        .where(*_filters(status, searching))
        .order_by(*_ORDERINGS[sort])
        .limit(bindparam("limit", type_=Integer()))
        .offset(bindparam("offset", type_=BigInteger()))
    )


_READ = select(tasks_table).where(*_ONE_TASK)
_INSERT = tasks_table.insert().returning(tasks_table)


@cache
def _toggle_query(conditional: bool) -> Update:
    return (
        update(tasks_table)
        .where(*_one_task(conditional))
        .values(
            completed=not_(_t.completed),
            completed_at=case((_t.completed, null()), else_=_NOW),
            updated_at=_NOW,
            version=_t.version + 1,
        )
        .returning(tasks_table)
    )


@cache
def _delete_query(conditional: bool) -> ReturningDelete[Any]:
    return delete(tasks_table).where(*_one_task(conditional)).returning(_t.id)


_STATS = select(
    func.count().label("total"), func.count().filter(_t.completed).label("completed")
).where(_t.user_id == _OWNER)
_NEW_STATE = bindparam("completed", type_=Boolean())
_SET_ALL = (
    update(tasks_table)
    .where(_t.user_id == _OWNER, _t.completed.is_distinct_from(_NEW_STATE))
    .values(
        completed=_NEW_STATE,
        completed_at=case((_NEW_STATE, _NOW), else_=null()),
        updated_at=_NOW,
        version=_t.version + 1,
    )
)
_DELETE_COMPLETED = delete(tasks_table).where(_t.user_id == _OWNER, _t.completed.is_(True))


def _new(name: str) -> BindParameter[Any]:
    # Named apart from the columns: SQLAlchemy reserves a column's own name in SET.
    return bindparam(f"new_{name}", type_=_t[name].type)


@cache
def _update_query(fields: frozenset[str], conditional: bool) -> Update:
    values: dict[str, Any] = {name: _new(name) for name in fields}
    differs = or_(*(_t[name].is_distinct_from(_new(name)) for name in fields))
    values["updated_at"] = case((differs, _NOW), else_=_t.updated_at)
    values["version"] = case((differs, _t.version + 1), else_=_t.version)
    if "completed" in fields:
        becomes_complete = case((_new("completed"), _NOW), else_=null())
        values["completed_at"] = case(
            (_t.completed.is_distinct_from(_new("completed")), becomes_complete),
            else_=_t.completed_at,
        )
    return update(tasks_table).where(*_one_task(conditional)).values(values).returning(tasks_table)


def _record(row: Row[Any]) -> TaskRecord:
    record = dict(row._mapping)
    record.pop("total", None)
    return record


async def list_tasks(
    engine: AsyncEngine,
    *,
    owner: str,
    status: TaskStatus = TaskStatus.ALL,
    sort: TaskSort = TaskSort.NEWEST,
    limit: int,
    offset: int = 0,
    search: str | None = None,
) -> TaskPage:
    """A page of the owner's tasks; `search` keeps those whose title or description has it."""
    searching = search is not None
    params = {
        "owner": owner,
        "limit": limit,
        "offset": offset,
        "search": None if search is None else _like_literal(search),
    }
    async with engine.connect() as connection:
        rows = (await connection.execute(_page_query(status, sort, searching), params)).all()
        if rows:
            total = int(rows[0].total)
        elif offset == 0:
            total = 0
        else:
            count = _count_query(status, searching)
            total = (await connection.execute(count, params)).scalar_one()
    return TaskPage(tasks=[_record(row) for row in rows], total=total)


async def get_task(engine: AsyncEngine, *, owner: str, task_id: int) -> TaskRecord | None:
    async with engine.connect() as connection:
        row = (await connection.execute(_READ, {"owner": owner, "task_id": task_id})).first()
    return None if row is None else _record(row)


@dataclass(frozen=True, slots=True)
class NewTask:
    """What a client gives to create a task."""

    title: str
    description: str | None = None
    completed: bool = False


async def insert_task(connection: AsyncConnection, *, owner: str, task: NewTask) -> TaskRecord:
    """Insert within the caller's transaction (see `create_task` for one on its own)."""
    now = datetime.now(UTC)
    values = {
        "user_id": owner,
        "title": task.title,
        "description": task.description,
        "completed": task.completed,
        "completed_at": now if task.completed else None,
        "created_at": now,
        "updated_at": now,
    }
    return _record((await connection.execute(_INSERT, values)).one())


async def create_task(engine: AsyncEngine, *, owner: str, task: NewTask) -> TaskRecord:
    async with engine.begin() as connection:
        return await insert_task(connection, owner=owner, task=task)


async def _missed_write(
    engine: AsyncEngine, *, owner: str, task_id: int, versions: Collection[int] | None
) -> None:
    """After a write matched no row: raise if that was the version check, not the task."""
    if versions is None:
        return
    current = await get_task(engine, owner=owner, task_id=task_id)
    if current is not None:
        raise VersionMismatchError(current)


def _condition(
    params: dict[str, Any], versions: Collection[int] | None
) -> tuple[dict[str, Any], bool]:
    if versions is None:
        return params, False
    return params | {"versions": list(versions)}, True


async def update_task(
    engine: AsyncEngine,
    *,
    owner: str,
    task_id: int,
    changes: Mapping[str, Any],
    if_version_in: Collection[int] | None = None,
) -> TaskRecord | None:
    """Apply `changes` (a subset of the editable fields) in one statement.

    `updated_at` and `version` move only if some value really differs, and `completed_at`
    only when the completion state flips, so repeating a request changes nothing. With
    `if_version_in`, the task changes only if its version is one of those; otherwise
    VersionMismatchError. None means no such task for this owner.
    """
    unknown = set(changes) - EDITABLE_FIELDS
    if unknown:
        raise ValueError(f"not editable: {sorted(unknown)}")
    if not changes or (if_version_in is not None and not if_version_in):
        # Nothing to write, or no version could match: a read decides the answer.
        task = await get_task(engine, owner=owner, task_id=task_id)
        if task is not None and if_version_in is not None and task["version"] not in if_version_in:
            raise VersionMismatchError(task)
        return task
    params = {f"new_{name}": value for name, value in changes.items()}
    params |= {"owner": owner, "task_id": task_id, "now": datetime.now(UTC)}
    params, conditional = _condition(params, if_version_in)
    statement = _update_query(frozenset(changes), conditional)
    async with engine.begin() as connection:
        row = (await connection.execute(statement, params)).first()
    if row is None:
        await _missed_write(engine, owner=owner, task_id=task_id, versions=if_version_in)
        return None
    return _record(row)


async def toggle_task(
    engine: AsyncEngine,
    *,
    owner: str,
    task_id: int,
    if_version_in: Collection[int] | None = None,
) -> TaskRecord | None:
    """Flip completion atomically: the database reads and writes the flag in one statement.

    `if_version_in` works as in `update_task`.
    """
    params, conditional = _condition(
        {"owner": owner, "task_id": task_id, "now": datetime.now(UTC)}, if_version_in
    )
    async with engine.begin() as connection:
        row = (await connection.execute(_toggle_query(conditional), params)).first()
    if row is None:
        await _missed_write(engine, owner=owner, task_id=task_id, versions=if_version_in)
        return None
    return _record(row)


async def delete_task(
    engine: AsyncEngine,
    *,
    owner: str,
    task_id: int,
    if_version_in: Collection[int] | None = None,
) -> bool:
    """Delete one task; False when the owner has no such task.

    `if_version_in` works as in `update_task`.
    """
    params, conditional = _condition({"owner": owner, "task_id": task_id}, if_version_in)
    async with engine.begin() as connection:
        deleted = (await connection.execute(_delete_query(conditional), params)).first()
    if deleted is None:
        await _missed_write(engine, owner=owner, task_id=task_id, versions=if_version_in)
        return False
    return True


@dataclass(frozen=True, slots=True)
class TaskCounts:
    total: int
    completed: int

    @property
    def pending(self) -> int:
        return self.total - self.completed


async def count_tasks(engine: AsyncEngine, *, owner: str) -> TaskCounts:
    """How many tasks the owner has, and how many are completed, in one statement."""
    async with engine.connect() as connection:
        row = (await connection.execute(_STATS, {"owner": owner})).one()
    return TaskCounts(total=int(row.total), completed=int(row.completed))


async def set_all_completed(engine: AsyncEngine, *, owner: str, completed: bool) -> int:
    """Set every task of the owner to `completed`; returns how many changed state."""
    params = {"owner": owner, "completed": completed, "now": datetime.now(UTC)}
    async with engine.begin() as connection:
        result = await connection.execute(_SET_ALL, params)
    return int(result.rowcount)


async def delete_completed(engine: AsyncEngine, *, owner: str) -> int:
    """Delete the owner's completed tasks; returns how many."""
    async with engine.begin() as connection:
        result = await connection.execute(_DELETE_COMPLETED, {"owner": owner})
    return int(result.rowcount)
