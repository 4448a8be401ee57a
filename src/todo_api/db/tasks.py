"""Every query on tasks. Each function takes the owner and filters by it in SQL."""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Row,
    Select,
    case,
    delete,
    func,
    literal,
    not_,
    null,
    or_,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncEngine

from todo_api.db.models import Task, UTCDateTime, tasks_table

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


@dataclass(frozen=True, slots=True)
class TaskPage:
    tasks: list[Task]
    total: int


def _owned_by(owner: str) -> ColumnElement[bool]:
    return _t.user_id == owner


def _one_task(owner: str, task_id: int) -> tuple[ColumnElement[bool], ColumnElement[bool]]:
    return _owned_by(owner), _t.id == task_id


def _status_filter(status: TaskStatus) -> list[ColumnElement[bool]]:
    if status is TaskStatus.PENDING:
        return [_t.completed.is_(False)]
    if status is TaskStatus.COMPLETED:
        return [_t.completed.is_(True)]
    return []


def _now() -> ColumnElement[datetime]:
    return literal(datetime.now(UTC), UTCDateTime())


def _to_task(row: Row[Any]) -> Task:
    return Task.model_validate(row._mapping)


async def list_tasks(
    engine: AsyncEngine,
    *,
    owner: str,
    status: TaskStatus = TaskStatus.ALL,
    sort: TaskSort = TaskSort.NEWEST,
    limit: int,
    offset: int = 0,
) -> TaskPage:
    conditions = [_owned_by(owner), *_status_filter(status)]
    count_query = select(func.count()).select_from(tasks_table).where(*conditions)
    # The count rides along as a scalar subquery: one round trip, and the page and the
    # total come from the same snapshot.
    page_query: Select[Any] = (
        select(tasks_table, count_query.scalar_subquery().label("total"))
        .where(*conditions)
        .order_by(*_ORDERINGS[sort])
        .limit(limit)
        .offset(offset)
    )
    async with engine.connect() as connection:
        rows = (await connection.execute(page_query)).all()
        if rows:
            total = int(rows[0].total)
        elif offset == 0:
            total = 0
        else:
            total = (await connection.execute(count_query)).scalar_one()
    return TaskPage(tasks=[_to_task(row) for row in rows], total=total)


async def get_task(engine: AsyncEngine, *, owner: str, task_id: int) -> Task | None:
    query = select(tasks_table).where(*_one_task(owner, task_id))
    async with engine.connect() as connection:
        row = (await connection.execute(query)).one_or_none()
    return None if row is None else _to_task(row)


async def create_task(
    engine: AsyncEngine,
    *,
    owner: str,
    title: str,
    description: str | None,
    completed: bool,
) -> Task:
    now = datetime.now(UTC)
    statement = (
        tasks_table.insert()
        .values(
            user_id=owner,
            title=title,
            description=description,
            completed=completed,
            completed_at=now if completed else None,
            created_at=now,
            updated_at=now,
        )
        .returning(tasks_table)
    )
    async with engine.begin() as connection:
        row = (await connection.execute(statement)).one()
    return _to_task(row)


async def update_task(
    engine: AsyncEngine, *, owner: str, task_id: int, changes: Mapping[str, Any]
) -> Task | None:
    """Apply `changes` (a subset of the editable fields) in one statement.

    `updated_at` moves only if some value really differs, and `completed_at` only when the
    completion state flips, so repeating a request changes nothing.
    """
    unknown = set(changes) - EDITABLE_FIELDS
    if unknown:
        raise ValueError(f"not editable: {sorted(unknown)}")
    if not changes:
        return await get_task(engine, owner=owner, task_id=task_id)

    now = _now()
    values: dict[str, Any] = dict(changes)
    differs = [_t[name].is_distinct_from(value) for name, value in changes.items()]
    values["updated_at"] = case((or_(*differs), now), else_=_t.updated_at)
    if "completed" in changes:
        completed = bool(changes["completed"])
        values["completed_at"] = case(
            (_t.completed.is_distinct_from(completed), now if completed else null()),
            else_=_t.completed_at,
        )
    statement = (
        update(tasks_table).where(*_one_task(owner, task_id)).values(values).returning(tasks_table)
    )
    async with engine.begin() as connection:
        row = (await connection.execute(statement)).one_or_none()
    return None if row is None else _to_task(row)


async def toggle_task(engine: AsyncEngine, *, owner: str, task_id: int) -> Task | None:
    """Flip completion atomically: the database reads and writes the flag in one statement."""
    now = _now()
    statement = (
        update(tasks_table)
        .where(*_one_task(owner, task_id))
        .values(
            completed=not_(_t.completed),
            completed_at=case((_t.completed, null()), else_=now),
            updated_at=now,
        )
        .returning(tasks_table)
    )
    async with engine.begin() as connection:
        row = (await connection.execute(statement)).one_or_none()
    return None if row is None else _to_task(row)


async def delete_task(engine: AsyncEngine, *, owner: str, task_id: int) -> bool:
    """Delete one task; False when the owner has no such task."""
    statement = delete(tasks_table).where(*_one_task(owner, task_id)).returning(_t.id)
    async with engine.begin() as connection:
        deleted: Sequence[Row[Any]] = (await connection.execute(statement)).all()
    return bool(deleted)
