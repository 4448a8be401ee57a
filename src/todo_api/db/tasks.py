"""Every query on tasks. Each function takes the owner and filters by it in SQL."""

from collections.abc import Callable, Collection, Iterator, Mapping
from dataclasses import dataclass, replace
from datetime import MINYEAR, UTC, date, datetime, timedelta, tzinfo
from enum import StrEnum
from functools import lru_cache
from itertools import combinations, product
from operator import attrgetter
from typing import Any, NamedTuple, Protocol
from zoneinfo import ZoneInfo

from sqlalchemy import (
    BigInteger,
    BindParameter,
    ColumnElement,
    Date,
    Integer,
    Select,
    SmallInteger,
    String,
    Update,
    and_,
    bindparam,
    case,
    delete,
    exists,
    func,
    not_,
    null,
    or_,
    select,
    update,
)
from sqlalchemy.sql.dml import Insert, ReturningDelete

from todo_api.db import recurrence as rules
from todo_api.db import reminders
from todo_api.db import tags as tag_rows
from todo_api.db.database import (
    Database,
    DatabaseBusyError,
    Row,
    Statement,
    StatementShape,
    Step,
)
from todo_api.db.local_date import day_starts, local_date
from todo_api.db.models import (
    ARMED_REMINDER,
    DEFAULT_PRIORITY,
    PRIORITIES,
    TAGS_MAX_COUNT,
    UTCDateTime,
    task_tags_table,
    tasks_table,
)
from todo_api.db.value_list import ValueList, one_of

_t = tasks_table.c

#: Fields a client may change; everything else is owned by the server.
EDITABLE_FIELDS = frozenset(
    {
        "title",
        "description",
        "completed",
        "priority",
        "due_date",
        "due_at",
        "tags",
        "recurrence",
        "reminder",
    }
)
#: What one statement can write: a rule or a reminder needs the due to be spelled out, so
#: setting one is always a write knowing the task (`_write_knowing`).
_STATEMENT_FIELDS = EDITABLE_FIELDS - {"recurrence", "reminder"}
#: How many times a write knowing the task reads it again after it changed meanwhile.
_KNOWING_ATTEMPTS = 20


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
    PRIORITY = "priority"
    PRIORITY_DESCENDING = "-priority"
    DUE = "due"
    DUE_DESCENDING = "-due"


UTC_ZONE = ZoneInfo("UTC")
_ZONE = bindparam("tz", type_=String())
_NO_DUE_LAST = case((and_(_t.due_date.is_(None), _t.due_at.is_(None)), 1), else_=0).asc()

# Every ordering ends with the id so that equal keys still page deterministically.
_ORDERINGS: dict[TaskSort, tuple[ColumnElement[Any], ...]] = {
    TaskSort.NEWEST: (_t.created_at.desc(), _t.id.desc()),
    TaskSort.OLDEST: (_t.created_at.asc(), _t.id.asc()),
    TaskSort.RECENTLY_UPDATED: (_t.updated_at.desc(), _t.id.desc()),
    TaskSort.LEAST_RECENTLY_UPDATED: (_t.updated_at.asc(), _t.id.asc()),
    TaskSort.TITLE: (func.lower(_t.title).asc(), _t.id.asc()),
    TaskSort.TITLE_DESCENDING: (func.lower(_t.title).desc(), _t.id.desc()),
    # Lowest first; `-priority` is high first. The column holds the rank (models.Priority).
    TaskSort.PRIORITY: (_t.priority.asc(), _t.id.asc()),
    TaskSort.PRIORITY_DESCENDING: (_t.priority.desc(), _t.id.desc()),
    # By the day the task is due where the user is (`tz`); within a day all-day tasks
    # before timed ones; tasks without a due last in both directions.
    TaskSort.DUE: (
        _NO_DUE_LAST,
        func.coalesce(_t.due_date, local_date(_t.due_at, _ZONE)).asc(),
        _t.due_at.is_not(None).asc(),
        _t.due_at.asc(),
        _t.id.asc(),
    ),
    TaskSort.DUE_DESCENDING: (
        _NO_DUE_LAST,
        func.coalesce(_t.due_date, local_date(_t.due_at, _ZONE)).desc(),
        _t.due_at.is_not(None).asc(),
        _t.due_at.desc(),
        _t.id.desc(),
    ),
}


class TaskRecord(NamedTuple):
    """A task as stored: one field per column of `tasks`, in the table's order (what every
    statement that returns tasks selects), timestamps timezone-aware."""

    title: str
    description: str | None
    completed: bool
    id: int
    user_id: str
    completed_at: datetime | None
    created_at: datetime
    updated_at: datetime
    due_date: date | None
    due_at: datetime | None
    priority: str
    tags: list[str]
    version: int
    recurrence: str | None
    recurrence_tz: str | None
    recurrence_from_completion: bool
    series_id: int | None
    occurrence: int
    next_occurrence_id: int | None
    remind_at: datetime | None
    reminder_minutes_before: int | None
    reminder_tz: str | None
    reminder_acknowledged_at: datetime | None

    def rule(self) -> rules.Recurrence | None:
        """How the task repeats, as its columns store it; None if it does not."""
        if self.recurrence is None:
            return None
        if self.recurrence_tz is None:  # what the schema's recurrence_has_zone forbids
            raise ValueError(f"task {self.id} has a rule without a zone")
        return rules.parse_rrule(
            self.recurrence, tz=self.recurrence_tz, from_completion=self.recurrence_from_completion
        )


class VersionMismatchError(Exception):
    """A conditional write found the task at another version; nothing was changed."""

    def __init__(self, current: TaskRecord) -> None:
        super().__init__(f"task {current.id} is at version {current.version}")
        self.current = current


@dataclass(frozen=True, slots=True)
class TaskPage:
    tasks: list[TaskRecord]
    total: int


TASK_COLUMNS = TaskRecord._fields

# Statements are built once per shape and take every value as a bind parameter, so each
# shape is compiled once (todo_api.db.statements); lists of values are one parameter each
# (todo_api.db.value_list), so their length makes no new shape.
_OWNER = bindparam("owner", type_=String())
_TASK_ID = bindparam("task_id", type_=BigInteger())
_NOW = bindparam("now", type_=UTCDateTime())
_ONE_TASK = (_t.user_id == _OWNER, _t.id == _TASK_ID)
_EXPECTED_VERSIONS = bindparam("expected_versions", type_=ValueList(BigInteger()))


def _one_task(conditional: bool) -> tuple[ColumnElement[bool], ...]:
    """The owner's task; if `conditional`, only at one of the expected versions.

    A conditional write names the versions it may overwrite; checking them in the write's
    own WHERE makes check and write one atomic step.
    """
    if not conditional:
        return _ONE_TASK
    return (*_ONE_TASK, one_of(_t.version, _EXPECTED_VERSIONS))


_NOT_REPEATING = _t.recurrence.is_(None)
_DUE_FIELDS = frozenset({"due_date", "due_at"})


def _known_by(fields: Collection[str]) -> tuple[str, ...]:
    """The columns that, when set, make a single statement writing `fields` leave a task as
    it is, to be written knowing it: completing a repeating task makes its next occurrence,
    and a new due must fit its rule and moves its reminder."""
    if not _DUE_FIELDS.isdisjoint(fields):
        return ("recurrence", "remind_at")
    if "completed" in fields:
        return ("recurrence",)
    return ()


def _unless_left_alone(known_by: tuple[str, ...], values: Mapping[str, Any]) -> dict[str, Any]:
    """`values` for a task none of the `known_by` columns is set on; any other keeps what
    it has. The statement still matches and returns the task it leaves alone, which is
    then written knowing it without another read (`_left_alone`)."""
    if not known_by:
        return dict(values)
    writes = and_(*(_t[name].is_(None) for name in known_by))
    return {name: case((writes, value), else_=_t[name]) for name, value in values.items()}


def _left_alone(task: TaskRecord, known_by: tuple[str, ...]) -> bool:
    """Whether the statement of `_unless_left_alone` left `task` (as it returned it) as it
    was. Such a statement never writes the `known_by` columns, so they are as it saw them.

    Decided here and not by a column in RETURNING: SQLite 3.40 (Debian 12's) answers
    `recurrence IS NULL` there wrongly, false for a NULL.
    """
    return any(getattr(task, name) is not None for name in known_by)


def _recurring_filter(recurring: bool | None) -> list[ColumnElement[bool]]:
    if recurring is None:
        return []
    return [_t.recurrence.is_not(None) if recurring else _NOT_REPEATING]


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


_PRIORITY_RANKS = bindparam("priority_ranks", type_=ValueList(SmallInteger()))


def _priority_rank(priority: str) -> int:
    """What the column holds for `priority` (models.Priority)."""
    return PRIORITIES.index(priority) + 1


def _priority_filter(filtered: bool) -> list[ColumnElement[bool]]:
    """If `filtered`, tasks of one of the priorities whose ranks are in `priority_ranks`."""
    return [one_of(_t.priority, _PRIORITY_RANKS)] if filtered else []


@dataclass(frozen=True, slots=True)
class DueFilter:
    """Which due-date conditions a listing has (their values are parameters)."""

    has_due: bool | None = None
    due_from: bool = False
    due_to: bool = False
    overdue: bool | None = None


_NO_DUE_FILTER = DueFilter()
_TODAY = bindparam("today", type_=Date())
_HAS_DUE = or_(_t.due_date.is_not(None), _t.due_at.is_not(None))
# Past due and not done: a timed task once its instant has passed, an all-day one once its
# day has ended where the user is (`today` is the user's date). Written so that a missing
# due is false, never NULL, so that NOT of it is well defined.
_OVERDUE = and_(
    _t.completed.is_(False),
    or_(
        and_(_t.due_at.is_not(None), _t.due_at < _NOW),
        and_(_t.due_date.is_not(None), _t.due_date < _TODAY),
    ),
)
# Due on the user's today: that date, or an instant within that day in the user's zone.
_DUE_TODAY = and_(
    _t.completed.is_(False),
    or_(
        _t.due_date == _TODAY,
        and_(
            _t.due_at >= bindparam("today_starts", type_=UTCDateTime()),
            _t.due_at < bindparam("tomorrow_starts", type_=UTCDateTime()),
        ),
    ),
)


def _due_filter(due: DueFilter) -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = []
    if due.has_due is not None:
        conditions.append(_HAS_DUE if due.has_due else not_(_HAS_DUE))
    if due.due_from or due.due_to:
        # Inclusive dates in the user's zone: a date for all-day tasks, the instants from
        # the first day's start to the next day's start after the last for timed ones.
        on_day: list[ColumnElement[bool]] = [_t.due_date.is_not(None)]
        at_time: list[ColumnElement[bool]] = [_t.due_at.is_not(None)]
        if due.due_from:
            on_day.append(_t.due_date >= bindparam("due_from_date", type_=Date()))
            at_time.append(_t.due_at >= bindparam("due_from_starts", type_=UTCDateTime()))
        if due.due_to:
            on_day.append(_t.due_date <= bindparam("due_to_date", type_=Date()))
            at_time.append(_t.due_at < bindparam("due_to_ends", type_=UTCDateTime()))
        conditions.append(or_(and_(*on_day), and_(*at_time)))
    if due.overdue is not None:
        conditions.append(_OVERDUE if due.overdue else not_(_OVERDUE))
    return conditions


@dataclass(frozen=True, slots=True)
class ListFilter:
    """Which conditions a listing has (their values are parameters): its statement's shape."""

    status: TaskStatus = TaskStatus.ALL
    searching: bool = False
    priorities: bool = False
    due: DueFilter = _NO_DUE_FILTER
    #: tags.NO_TAGS, ONE_TAG or SEVERAL_TAGS.
    tags: int = tag_rows.NO_TAGS
    recurring: bool | None = None

    def conditions(self) -> list[ColumnElement[bool]]:
        conditions = [
            _t.user_id == _OWNER,
            *_status_filter(self.status),
            *_matches(self.searching),
            *_priority_filter(self.priorities),
            *_due_filter(self.due),
            *_recurring_filter(self.recurring),
        ]
        if self.tags:
            conditions.append(tag_rows.carrying_all(_t.id, self.tags))
        return conditions

    def prepare(self) -> bool | None:
        """Whether the listing may be prepared on the server (None: where prepared
        statements are on). A tag filter's generic plan cannot know how many tasks the
        tags match and may guess badly: 0.85 s against 18 ms planned each time, for one
        tag of a user with 10,000 tasks. So it is planned for its values every time."""
        return False if self.tags else None


def _build_count(filters: ListFilter) -> Select[Any]:
    count = select(func.count()).select_from(tasks_table).where(*filters.conditions())
    return count.execution_options(prepare=filters.prepare())


def _build_page(filters: ListFilter, sort: TaskSort) -> Select[Any]:
    # The count rides along as a scalar subquery: one round trip, and the page and the
    # total come from the same snapshot.
    count = select(func.count()).select_from(tasks_table).where(*filters.conditions())
    prepare = filters.prepare()
    if filters == _NO_FILTER and sort is TaskSort.NEWEST:
        prepare = True  # the default listing: prepared from its first run, as _READ is
    return (
        select(tasks_table, count.scalar_subquery().label("total"))
        .where(*filters.conditions())
        .order_by(*_ORDERINGS[sort])
        .limit(bindparam("limit", type_=Integer()))
        .offset(bindparam("offset", type_=BigInteger()))
        .execution_options(prepare=prepare)
    )


_NO_FILTER = ListFilter()


# Listings have thousands of shapes (every combination of filters and sort): each is
# built and compiled on first use, and kept in the database's bounded statement cache.
def _count_query(filters: ListFilter) -> StatementShape:
    return StatementShape(_build_count, (filters,))


def _page_query(filters: ListFilter, sort: TaskSort) -> StatementShape:
    return StatementShape(_build_page, (filters, sort))


# What most requests run is prepared from its first run on a connection (`prepare=True`:
# todo_api.db.postgres); the rest after psycopg's own count of runs. Few, so that psycopg's
# limit of prepared statements per connection (100) keeps room for those.
_READ = select(tasks_table).where(*_ONE_TASK).execution_options(prepare=True)
#: The columns a write knowing the task sets from what it computed.
_KNOWN_FIELDS = (
    "title",
    "description",
    "completed",
    "completed_at",
    "priority",
    "due_date",
    "due_at",
    "tags",
    "recurrence",
    "recurrence_tz",
    "recurrence_from_completion",
    "series_id",
    "remind_at",
    "reminder_minutes_before",
    "reminder_tz",
    "reminder_acknowledged_at",
    "updated_at",
)


# Completing a task acknowledges its reminder, if it has one: it no longer fires. A task
# without one keeps NULL, so the column does not change (and the update can stay HOT).
_DISARMED = func.coalesce(_t.reminder_acknowledged_at, case((_t.remind_at.is_not(None), _NOW)))


_TOGGLE_KNOWN_BY = _known_by({"completed"})


@lru_cache(maxsize=2)  # unconditional and conditional
def _toggle_query(conditional: bool) -> Update:
    flipped = {
        "completed": not_(_t.completed),
        "completed_at": case((_t.completed, null()), else_=_NOW),
        "reminder_acknowledged_at": case(
            (_t.completed, _t.reminder_acknowledged_at), else_=_DISARMED
        ),
        "updated_at": _NOW,
        "version": _t.version + 1,
    }
    return (
        update(tasks_table)
        .where(*_one_task(conditional))
        .values(_unless_left_alone(_TOGGLE_KNOWN_BY, flipped))
        .returning(tasks_table)
        .execution_options(prepare=True)
    )


@lru_cache(maxsize=2)  # unconditional and conditional
def _delete_query(conditional: bool) -> ReturningDelete[Any]:
    return (
        delete(tasks_table)
        .where(*_one_task(conditional))
        .returning(_t.title)
        .execution_options(prepare=True)
    )


_STATS = (
    select(
        func.count().label("total"),
        func.count().filter(_t.completed).label("completed"),
        func.count().filter(_OVERDUE).label("overdue"),
        func.count().filter(_DUE_TODAY).label("due_today"),
    )
    .where(_t.user_id == _OWNER)
    .execution_options(prepare=True)
)
_REOPEN_ALL = (
    update(tasks_table)
    .where(_t.user_id == _OWNER, _t.completed.is_(True))
    .values(completed=False, completed_at=None, updated_at=_NOW, version=_t.version + 1)
)
# Completing a repeating task makes its next occurrence: those are completed knowing them.
_COMPLETE_ALL_PLAIN = (
    update(tasks_table)
    .where(_t.user_id == _OWNER, _t.completed.is_(False), _NOT_REPEATING)
    .values(
        completed=True,
        completed_at=_NOW,
        reminder_acknowledged_at=_DISARMED,
        updated_at=_NOW,
        version=_t.version + 1,
    )
    .returning(_t.id)
)
_DELETE_COMPLETED = delete(tasks_table).where(_t.user_id == _OWNER, _t.completed.is_(True))


def _new(name: str) -> BindParameter[Any]:
    # Named apart from the columns: SQLAlchemy reserves a column's own name in SET.
    return bindparam(f"new_{name}", type_=_t[name].type)


# A new task: what a write knowing one sets, plus its owner and place in its series; it is
# created and last updated at the same instant.
_INSERTED: dict[str, BindParameter[Any]] = {
    **{
        name: _new(name)
        for name in ("user_id", *_KNOWN_FIELDS, "occurrence")
        if name != "updated_at"
    },
    "created_at": _new("created_at"),
    "updated_at": _new("created_at"),
}
_INSERT = (
    tasks_table.insert().values(_INSERTED).returning(tasks_table).execution_options(prepare=True)
)


@lru_cache(maxsize=TAGS_MAX_COUNT)  # one per count of tags a task may have
def _insert_with_tags(count: int) -> Select[Any]:
    """The insert of a new task and of the rows of its `count` tags, as one statement, which
    returns the task: the rows are made from what the task's insert returns (a
    data-modifying CTE, which PostgreSQL has and SQLite does not)."""
    task = _INSERT.cte("new_task")  # (its prepare=True stays with _INSERT)
    return select(task).add_cte(tag_rows.insert_rows_of(count, task).cte("new_tag_rows"))


def insert_where(*conditions: ColumnElement[bool]) -> Insert:
    """The insert of a new task (`new_task_values`), made only if `conditions` hold."""
    source = select(*_INSERTED.values()).where(*conditions)
    return tasks_table.insert().from_select(list(_INSERTED), source)


@lru_cache(maxsize=256)  # one per set of fields one statement writes, and conditional or not
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
        completing = and_(_new("completed"), _t.completed.is_(False))
        values["reminder_acknowledged_at"] = case(
            (completing, _DISARMED), else_=_t.reminder_acknowledged_at
        )
    return (
        update(tasks_table)
        .where(*_one_task(conditional))
        .values(_unless_left_alone(_known_by(fields), values))
        .returning(tasks_table)
    )


# A write knowing the task (`_write_knowing`) goes out as these statements in one
# transaction. `_LOCK` comes first: it holds the task, if it is still at the version the
# write was planned from, until the end; every later statement checks that version, so
# they all act, or none does. Every change to a task moves its version and `updated_at`.
_READ_VERSION = bindparam("read_version", type_=BigInteger())
# With the time of the version: after the database was restored, an id can come back at a
# version it had with other contents (it was changed differently since), never at that time.
_READ_UPDATED_AT = bindparam("read_updated_at", type_=UTCDateTime())
_AS_READ = (*_ONE_TASK, _t.version == _READ_VERSION, _t.updated_at == _READ_UPDATED_AT)
_LOCK = update(tasks_table).where(*_AS_READ).values(version=_t.version)
_NEXT_SERIES = bindparam("next_series_id", type_=BigInteger())
_NEXT_OCCURRENCE = bindparam("next_occurrence", type_=Integer())
_next = tasks_table.alias("next_occurrence")
_IS_NEXT = (
    _next.c.user_id == _OWNER,
    _next.c.series_id == _NEXT_SERIES,
    _next.c.occurrence == _NEXT_OCCURRENCE,
)
_NEXT_ID = select(_next.c.id).where(*_IS_NEXT).scalar_subquery()
# The next occurrence, unless it exists already (the occurrence was completed before,
# reopened and completed again): the unique (series_id, occurrence) keeps it one.
_INSERT_NEXT = insert_where(exists().where(*_AS_READ), ~exists().where(*_IS_NEXT)).returning(
    tasks_table
)
_WRITE_KNOWN = (
    update(tasks_table)
    .where(*_AS_READ)
    .values(
        {
            **{name: _new(name) for name in _KNOWN_FIELDS},
            "next_occurrence_id": func.coalesce(_NEXT_ID, _t.next_occurrence_id),
            "version": _t.version + 1,
        }
    )
    .returning(tasks_table)
)
# Served by the partial index of repeating tasks (owner, id), backwards: one entry.
_repeating = tasks_table.alias("repeating")
_LAST_REPEATING = select(func.max(_repeating.c.id)).where(
    _repeating.c.user_id == _OWNER, _repeating.c.recurrence.is_not(None)
)
# A page of complete-all's repeating tasks, each row with the owner's greatest id of a
# repeating task after the task's columns: read in the same snapshot, so never below the
# page's ids.
_PENDING_REPEATING = (
    select(tasks_table, _LAST_REPEATING.scalar_subquery().label("last_id"))
    .where(
        _t.user_id == _OWNER,
        _t.completed.is_(False),
        _t.recurrence.is_not(None),
        _t.id > bindparam("after_id", type_=BigInteger()),
        _t.id < bindparam("before_id", type_=BigInteger()),
    )
    .order_by(_t.id)
    .limit(bindparam("limit", type_=Integer()))
)


@lru_cache(maxsize=TAGS_MAX_COUNT)  # one per count of tags a task may have
def _next_tag_rows(count: int) -> Insert:
    # Written with the next occurrence, and only then: it is at its first version, carries
    # these tags and has no tag rows yet.
    tag_of_this_task = (task_tags_table.c.user_id == _OWNER, task_tags_table.c.task_id == _t.id)
    return tag_rows.insert_rows(
        count,
        _NEXT_ID,
        _t.version == 1,
        _t.tags == bindparam("new_tags", type_=_t.tags.type),
        ~exists().where(*tag_of_this_task),
    ).execution_options(prepare=False)  # see todo_api.db.tags


# The owner's reminders that have come (`until`), oldest first: ARMED_REMINDER is the
# predicate of the partial index that serves them, spelled the same so both databases use it.
_DUE = (
    _t.user_id == _OWNER,
    ARMED_REMINDER,
    _t.remind_at <= bindparam("until", type_=UTCDateTime()),
)
_DUE_REMINDER_COUNT = select(func.count()).select_from(tasks_table).where(*_DUE)
_DUE_REMINDERS = (
    select(tasks_table, _DUE_REMINDER_COUNT.scalar_subquery().label("total"))
    .where(*_DUE)
    .order_by(_t.remind_at, _t.id)
    .limit(bindparam("limit", type_=Integer()))
    .offset(bindparam("offset", type_=BigInteger()))
)
_ACKNOWLEDGE = (
    update(tasks_table)
    .where(*_ONE_TASK, _t.remind_at.is_not(None), _t.reminder_acknowledged_at.is_(None))
    .values(reminder_acknowledged_at=_NOW, updated_at=_NOW, version=_t.version + 1)
    .returning(tasks_table)
    .execution_options(prepare=False)  # see todo_api.db.tags
)


def _record(row: Row) -> TaskRecord:
    # A page's rows carry its total after the task's columns.
    return TaskRecord._make(row[: len(TASK_COLUMNS)])


class _Runner(Protocol):
    """A database or a session: both run single statements."""

    async def fetch_one(self, statement: Statement, params: Mapping[str, Any]) -> Row | None: ...


async def _fetch_task(
    runner: _Runner, statement: Statement, params: Mapping[str, Any]
) -> TaskRecord | None:
    row = await runner.fetch_one(statement, params)
    return None if row is None else _record(row)


def _seen(database: Database, task: TaskRecord) -> TaskRecord:
    """`task`, as read or written just now, kept for the writes that compute from it."""
    database.recent_tasks.remember(task.user_id, task.id, task)
    return task


def seen_row(database: Database, row: Row) -> TaskRecord:
    """The task a statement returned (all of its columns), kept as `_seen` keeps it."""
    return _seen(database, _record(row))


def _recalled(database: Database, owner: str, task_id: int) -> TaskRecord | None:
    recalled: TaskRecord | None = database.recent_tasks.recall(owner, task_id)
    return recalled


@dataclass(frozen=True, slots=True)
class DueQuery:
    """The due-date conditions of a listing, with their values."""

    zone: ZoneInfo = UTC_ZONE
    has_due: bool | None = None
    due_from: date | None = None
    due_to: date | None = None
    overdue: bool | None = None

    def shape(self) -> DueFilter:
        return DueFilter(
            has_due=self.has_due,
            due_from=self.due_from is not None,
            due_to=self.due_to is not None,
            overdue=self.overdue,
        )

    def parameters(self, now: datetime) -> dict[str, Any]:
        params: dict[str, Any] = {
            "now": now,
            "today": now.astimezone(self.zone).date(),
            "tz": self.zone.key,
        }
        if self.due_from is not None:
            params["due_from_date"] = self.due_from
            params["due_from_starts"] = _day_bound(self.due_from, 0, self.zone)
        if self.due_to is not None:
            params["due_to_date"] = self.due_to
            params["due_to_ends"] = _day_bound(self.due_to, 1, self.zone)
        return params


_FIRST_INSTANT = datetime.min.replace(tzinfo=UTC)
_LAST_INSTANT = datetime.max.replace(tzinfo=UTC)


def _day_bound(day: date, days_after: int, zone: ZoneInfo) -> datetime:
    """When the day `days_after` days after `day` begins in `zone`; where that is before
    year 1 or after year 9999, Python's first or last instant, which bounds the same dues."""
    try:
        return day_starts(day + timedelta(days=days_after), zone)
    except OverflowError:
        return _FIRST_INSTANT if day.year == MINYEAR else _LAST_INSTANT


def _listing(filters: ListFilter) -> Iterator[Statement]:
    yield _count_query(filters)
    for sort in TaskSort:
        yield _page_query(filters, sort)


def statement_shapes() -> Iterator[Statement]:
    """Every statement this module runs, but listings with due-date filters or with tags
    and another filter (those are compiled when first used).

    Compiled at start-up and kept; checked by tests against SQLAlchemy and for the owner
    filter.
    """
    for status, searching, priorities in product(TaskStatus, (False, True), (False, True)):
        yield from _listing(ListFilter(status, searching, priorities))
    yield from _listing(ListFilter(tags=tag_rows.ONE_TAG))
    yield from (_READ, _INSERT, _STATS, _REOPEN_ALL, _COMPLETE_ALL_PLAIN, _DELETE_COMPLETED)
    yield from map(_insert_with_tags, range(1, TAGS_MAX_COUNT + 1))
    yield from (_LOCK, _INSERT_NEXT, _WRITE_KNOWN, _PENDING_REPEATING)
    yield from (_DUE_REMINDERS, _DUE_REMINDER_COUNT, _ACKNOWLEDGE)
    for conditional in (False, True):
        yield _toggle_query(conditional)
        yield _delete_query(conditional)
        for count in range(1, len(_STATEMENT_FIELDS) + 1):
            for fields in combinations(sorted(_STATEMENT_FIELDS), count):
                yield _update_query(frozenset(fields), conditional)


async def _page(
    database: Database, page: Statement, count: Statement, params: Mapping[str, Any]
) -> TaskPage:
    """The tasks `page` selects, each row with the total after the task's columns; `count`
    counts them only for a page past the end, which has no row to carry it.

    Kept (`_seen`) are only the tasks that repeat or have a reminder: most writes planned
    from a kept record (`_known_by`) are of those. Keeping every task of a page cost a
    listing 7% of its instructions, for the writes that name a rule or a reminder, and
    bringing up to date a record kept of another task 2% more, for a rule or reminder
    removed elsewhere. Either costs such a write one more round trip, never a wrong write
    (docs/design.md).
    """
    async with database.session() as session:
        rows = await session.fetch_all(page, params)
        if rows:
            total = int(rows[0][-1])
        elif params["offset"] == 0:
            total = 0
        else:
            counted = await session.fetch_one(count, params)
            total = int(counted[0]) if counted else 0
    found = [_record(row) for row in rows]
    for task in found:
        if task.recurrence is not None or task.remind_at is not None:
            _seen(database, task)
    return TaskPage(tasks=found, total=total)


async def list_tasks(
    database: Database,
    *,
    owner: str,
    status: TaskStatus = TaskStatus.ALL,
    sort: TaskSort = TaskSort.NEWEST,
    limit: int,
    offset: int = 0,
    search: str | None = None,
    priorities: Collection[str] = (),
    due: DueQuery | None = None,
    tags: Collection[str] = (),
    recurring: bool | None = None,
) -> TaskPage:
    """A page of the owner's tasks; `search` keeps those whose title or description has
    it, `tags` those that carry every one of them (ignoring case)."""
    keys = sorted({tag_rows.tag_key(tag) for tag in tags})
    params: dict[str, Any] = {
        "owner": owner,
        "limit": limit,
        "offset": offset,
        "search": None if search is None else _like_literal(search),
        "priority_ranks": sorted({_priority_rank(priority) for priority in priorities}),
        **(due.parameters(datetime.now(UTC)) if due is not None else {}),
        **tag_rows.filter_parameters(keys),
    }
    filters = ListFilter(
        status=status,
        searching=search is not None,
        priorities=bool(priorities),
        due=_NO_DUE_FILTER if due is None else due.shape(),
        tags=tag_rows.filter_shape(keys),
        recurring=recurring,
    )
    return await _page(database, _page_query(filters, sort), _count_query(filters), params)


async def get_task(database: Database, *, owner: str, task_id: int) -> TaskRecord | None:
    task = await _fetch_task(database, _READ, {"owner": owner, "task_id": task_id})
    return None if task is None else _seen(database, task)


@dataclass(frozen=True, slots=True)
class NewTask:
    """What a client gives to create a task."""

    title: str
    description: str | None = None
    completed: bool = False
    priority: str = DEFAULT_PRIORITY
    due_date: date | None = None
    due_at: datetime | None = None
    tags: tuple[str, ...] = ()
    recurrence: rules.Recurrence | None = None
    reminder: reminders.Reminder | None = None


def _rule_values(rule: rules.Recurrence | None, due: date | datetime | None) -> dict[str, Any]:
    if rule is None:
        return {"recurrence": None, "recurrence_tz": None, "recurrence_from_completion": False}
    if due is None:
        raise rules.RecurrenceError("", "A repeating task needs a due_date or a due_at")
    return {
        "recurrence": rules.rrule_text(rule, due),
        "recurrence_tz": rule.tz,
        "recurrence_from_completion": rule.from_completion,
    }


# What a task that neither repeats nor reminds stores for both: most tasks, built once.
_NEITHER = {
    "new_recurrence": None,
    "new_recurrence_tz": None,
    "new_recurrence_from_completion": False,
    "new_remind_at": None,
    "new_reminder_minutes_before": None,
    "new_reminder_tz": None,
    "new_reminder_acknowledged_at": None,
}


def _rule_and_reminder(task: NewTask, now: datetime) -> dict[str, Any]:
    if task.recurrence is None and task.reminder is None:
        return _NEITHER
    rule = _rule_values(task.recurrence, task.due_date or task.due_at)
    reminder = reminders.values(task.reminder, task.due_date, task.due_at)
    values = {f"new_{name}": value for name, value in (rule | reminder).items()}
    # Created completed: its reminder will not fire.
    values["new_reminder_acknowledged_at"] = now if task.completed and task.reminder else None
    return values


def new_task_values(owner: str, task: NewTask, now: datetime) -> dict[str, Any]:
    """The values of a statement that inserts `task` for `owner`, created `now`.

    Raises RecurrenceError or ReminderError if its rule or reminder cannot be used with
    its due.
    """
    return {
        "new_user_id": owner,
        "new_title": task.title,
        "new_description": task.description,
        "new_completed": task.completed,
        "new_completed_at": now if task.completed else None,
        "new_priority": task.priority,
        "new_due_date": task.due_date,
        "new_due_at": task.due_at,
        "new_tags": task.tags,
        "new_created_at": now,
        **_rule_and_reminder(task, now),
        "new_series_id": None,
        "new_occurrence": 1,
    }


def created_record(task_id: int, values: Mapping[str, Any]) -> TaskRecord:
    """The task as `new_task_values` insert it and the database stores it, given its id."""
    record: dict[str, Any] = {name: values.get(f"new_{name}") for name in TASK_COLUMNS}
    record |= {"id": task_id, "tags": list(values["new_tags"]), "version": 1}
    record["updated_at"] = record["created_at"]
    return TaskRecord(**record)


async def create_task(database: Database, *, owner: str, task: NewTask) -> TaskRecord:
    values = new_task_values(owner, task, datetime.now(UTC))
    if not task.tags:
        # One statement: atomic on its own, no transaction needed around it.
        record = await _fetch_task(database, _INSERT, values)
        assert record is not None  # an INSERT ... RETURNING returns its row
        return _seen(database, record)
    if database.dialect.name == "postgresql":
        # One statement, which may be prepared: the pair below, in a pipeline, took 44% more
        # of the API's CPU (docs/benchmarks.md), and its tag insert is never prepared.
        params = values | tag_rows.row_parameters(task.tags)
        record = await _fetch_task(database, _insert_with_tags(len(task.tags)), params)
        assert record is not None  # the CTE's insert returns its row
        return _seen(database, record)
    async with database.session() as session:
        inserted, _ = await session.run_together(
            [(_INSERT, values), tag_rows.new_task_rows(owner, task.tags)]
        )
    return seen_row(database, inserted[0])


async def _missed_write(
    database: Database, *, owner: str, task_id: int, versions: Collection[int] | None
) -> None:
    """After a write matched no row: VersionMismatchError if it named the versions it may
    overwrite and the task is at another; otherwise the owner has no such task."""
    if versions is None:
        return
    current = await get_task(database, owner=owner, task_id=task_id)
    if current is not None:
        raise VersionMismatchError(current)


def _condition(
    params: dict[str, Any], versions: Collection[int] | None
) -> tuple[dict[str, Any], bool]:
    """`params` with the expected versions, and whether the statement must compare them."""
    if versions is None:
        return params, False
    return params | {"expected_versions": sorted(versions)}, True


#: What a write knowing the task makes of it: the changes, given the task as it is.
Changes = Callable[[TaskRecord], Mapping[str, Any]]


async def update_task(
    database: Database,
    *,
    owner: str,
    task_id: int,
    changes: Mapping[str, Any],
    if_version_in: Collection[int] | None = None,
) -> TaskRecord | None:
    """Apply `changes` (a subset of the editable fields; `recurrence` a Recurrence or None).

    `updated_at` and `version` move only if some value really differs, and `completed_at`
    only when the completion state flips, so repeating a request changes nothing. With
    `if_version_in`, the task changes only if its version is one of those; otherwise
    VersionMismatchError. None means no such task for this owner. Completing a repeating
    task creates its next occurrence (`next_occurrence_id`) in the same transaction;
    RecurrenceError if the task's rule and due would not fit together.
    """
    unknown = set(changes) - EDITABLE_FIELDS
    if unknown:
        raise ValueError(f"not editable: {sorted(unknown)}")
    if not changes or (if_version_in is not None and not if_version_in):
        # Nothing to write, or no version could match: a read decides the answer.
        task = await get_task(database, owner=owner, task_id=task_id)
        if task is not None and if_version_in is not None and task.version not in if_version_in:
            raise VersionMismatchError(task)
        return task
    recalled = _recalled(database, owner, task_id)
    if not _STATEMENT_FIELDS.issuperset(changes) or (
        recalled is not None and _left_alone(recalled, _known_by(changes))
    ):
        return await _write_knowing(
            database, owner, task_id, recalled, lambda _task: changes, if_version_in, fresh=False
        )
    params = {f"new_{name}": value for name, value in changes.items()}
    params |= {"owner": owner, "task_id": task_id, "now": datetime.now(UTC)}
    params, conditional = _condition(params, if_version_in)
    statement = _update_query(frozenset(changes), conditional)
    if "tags" in changes:
        steps = [(statement, params), *tag_rows.replacing_rows(owner, task_id, changes["tags"])]
        async with database.session() as session:
            updated, *_ = await session.run_together(steps)
        task = _record(updated[0]) if updated else None
    else:
        task = await _fetch_task(database, statement, params)
    if task is None:
        await _missed_write(database, owner=owner, task_id=task_id, versions=if_version_in)
        return None
    if not _left_alone(task, _known_by(changes)):
        return _seen(database, task)
    return await _write_knowing(
        database, owner, task_id, task, lambda _task: changes, if_version_in, fresh=True
    )


async def toggle_task(
    database: Database,
    *,
    owner: str,
    task_id: int,
    if_version_in: Collection[int] | None = None,
) -> TaskRecord | None:
    """Flip completion atomically: the database reads and writes the flag in one statement
    (for a repeating task, `update_task`'s write knowing it).

    `if_version_in` works as in `update_task`.
    """
    recalled = _recalled(database, owner, task_id)
    if recalled is not None and _left_alone(recalled, _TOGGLE_KNOWN_BY):
        return await _write_knowing(
            database, owner, task_id, recalled, _flipped, if_version_in, fresh=False
        )
    params, conditional = _condition(
        {"owner": owner, "task_id": task_id, "now": datetime.now(UTC)}, if_version_in
    )
    task = await _fetch_task(database, _toggle_query(conditional), params)
    if task is None:
        await _missed_write(database, owner=owner, task_id=task_id, versions=if_version_in)
        return None
    if not _left_alone(task, _TOGGLE_KNOWN_BY):
        return _seen(database, task)
    return await _write_knowing(database, owner, task_id, task, _flipped, if_version_in, fresh=True)


def _flipped(task: TaskRecord) -> Mapping[str, Any]:
    return {"completed": not task.completed}


async def _write_knowing(
    database: Database,
    owner: str,
    task_id: int,
    task: TaskRecord | None,
    changes: Changes,
    versions: Collection[int] | None,
    *,
    fresh: bool,
) -> TaskRecord | None:
    """Write `changes(task)` to the task as known (`task`, or read now), in one transaction
    that acts only if the task is still at that version; know it again and retry if not.

    For writes that need the task's rule or due: they are computed here, from the task. A
    task not `fresh` is what this process last saw of it (`RecentTasks`), perhaps out of
    date: it only plans a write, which reads the task in the same round trip in case it
    does not act. What else it would decide (nothing to write, another version, a rule that
    does not fit) is decided from the task as read.
    """
    for _attempt in range(_KNOWING_ATTEMPTS):
        if task is None:
            task = await get_task(database, owner=owner, task_id=task_id)
            if task is None:
                return None
            fresh = True
        if fresh:
            if versions is not None and task.version not in versions:
                raise VersionMismatchError(task)
            planned = _planned_write(owner, task, changes(task), datetime.now(UTC))
            if planned is None:
                return task  # nothing differs: nothing is written, as with one statement
            steps = planned.steps
        else:
            planned = _planned_from_recalled(owner, task, changes, versions)
            if planned is None:
                task = None
                continue
            steps = [*planned.steps, (_READ, {"owner": owner, "task_id": task_id})]
        async with database.session() as session:
            results = await session.run_together(steps)
        written = planned.written(database, results)
        if written is not None:
            return written
        if fresh:
            task = None
            continue
        current = results[-1]
        if not current:
            database.recent_tasks.forget(owner, task_id)
            return None
        task, fresh = seen_row(database, current[0]), True
    raise DatabaseBusyError(f"task {task_id} kept changing while it was being written")


def _planned_from_recalled(
    owner: str, task: TaskRecord, changes: Changes, versions: Collection[int] | None
) -> "_PlannedWrite | None":
    """The write `changes` make of a recalled `task`, if one is to be sent; None when what
    it would decide instead must be decided from the task as read."""
    if versions is not None and task.version not in versions:
        return None
    try:
        return _planned_write(owner, task, changes(task), datetime.now(UTC))
    except Exception:  # a 422, or any error an old due or rule may cause: the task decides
        return None


@dataclass(frozen=True, slots=True)
class _PlannedWrite:
    steps: list[Step]
    #: Which step writes the task and returns it.
    task_step: int
    #: Which step inserts the next occurrence and returns it (if it makes one).
    next_step: int | None = None

    def after(self, offset: int) -> "_PlannedWrite":
        """The same plan, its steps run after `offset` others."""
        next_step = None if self.next_step is None else self.next_step + offset
        return _PlannedWrite(self.steps, self.task_step + offset, next_step)

    def written(self, database: Database, results: list[list[Row]]) -> TaskRecord | None:
        """The task as the plan's steps (run, with `results`) wrote it; None if they did
        not act. What they wrote is kept (`_seen`), the next occurrence too."""
        task = results[self.task_step]
        if not task:
            return None
        if self.next_step is not None and results[self.next_step]:
            seen_row(database, results[self.next_step][0])
        return seen_row(database, task[0])


def _planned_write(
    owner: str, task: TaskRecord, changes: Mapping[str, Any], now: datetime
) -> _PlannedWrite | None:
    """The statements that apply `changes` to `task` as read; None if nothing would differ.

    Raises RecurrenceError if the rule and due it would have do not fit together.
    """
    state = task._asdict() | dict(changes)
    rule = changes["recurrence"] if "recurrence" in changes else task.rule()
    due = state["due_date"] or state["due_at"]
    moved = (state["due_date"], state["due_at"]) != (task.due_date, task.due_at)
    if moved and rule is not None:
        # The series now repeats at the time of day of its new due.
        rule = replace(rule, at=None)
    state |= _rule_values(rule, due)
    if "reminder" in changes or moved:
        # Set again, or counted from another due: armed again.
        reminder = (
            changes["reminder"] if "reminder" in changes else reminders.stored(task._asdict())
        )
        state |= reminders.values(reminder, state["due_date"], state["due_at"])
        state["reminder_acknowledged_at"] = None
    completing = state["completed"] and not task.completed
    if completing:
        state["completed_at"] = now
    elif not state["completed"]:
        state["completed_at"] = None
    if completing and state["remind_at"] is not None:
        # Done: its reminder will not fire.
        state["reminder_acknowledged_at"] = state["reminder_acknowledged_at"] or now
    if completing and rule is not None:
        # The first occurrence names the series once there is a second.
        state["series_id"] = task.series_id or task.id
    if all(state[name] == getattr(task, name) for name in _KNOWN_FIELDS if name != "updated_at"):
        return None
    state["updated_at"] = now
    base = {
        "owner": owner,
        "task_id": task.id,
        "read_version": task.version,
        "read_updated_at": task.updated_at,
    }
    link: dict[str, Any] = {"next_series_id": None, "next_occurrence": None}
    steps: list[Step] = [(_LOCK, base)]
    next_step = None
    if completing and rule is not None and due is not None:
        link = {"next_series_id": state["series_id"], "next_occurrence": task.occurrence + 1}
        next_due = rules.next_due(rule, due, occurrence=task.occurrence, completed_at=now)
        if next_due is not None:
            next_step = len(steps)
            steps += _next_occurrence(owner, state, rule, next_due, now, base | link)
    known = {f"new_{name}": state[name] for name in _KNOWN_FIELDS}
    steps.append((_WRITE_KNOWN, base | known | link))
    task_step = len(steps) - 1
    if state["tags"] != task.tags:
        steps += tag_rows.replacing_rows(owner, task.id, state["tags"])
    return _PlannedWrite(steps, task_step, next_step)


def _next_occurrence(
    owner: str,
    state: Mapping[str, Any],
    rule: rules.Recurrence,
    due: date | datetime,
    now: datetime,
    params: Mapping[str, Any],
) -> list[Step]:
    """The steps that create the next occurrence of the task that becomes `state`, due
    `due`: the same task, open, in the same series (`params` name it)."""
    # A reminder before the due comes along; one at an instant was this occurrence's own.
    reminder = reminders.stored(state)
    occurrence = NewTask(
        title=state["title"],
        description=state["description"],
        priority=state["priority"],
        due_date=None if isinstance(due, datetime) else due,
        due_at=due if isinstance(due, datetime) else None,
        tags=tuple(state["tags"]),
        recurrence=rule,
        reminder=reminder if reminder is not None and reminder.relative else None,
    )
    values = new_task_values(owner, occurrence, now) | {
        "new_series_id": params["next_series_id"],
        "new_occurrence": params["next_occurrence"],
    }
    steps: list[Step] = [(_INSERT_NEXT, {**params, **values})]
    if occurrence.tags:
        tag_params = {**params, "new_tags": occurrence.tags}
        count = len(occurrence.tags)
        steps.append((_next_tag_rows(count), tag_params | tag_rows.row_parameters(occurrence.tags)))
    return steps


async def delete_task(
    database: Database,
    *,
    owner: str,
    task_id: int,
    if_version_in: Collection[int] | None = None,
) -> str | None:
    """Delete one task; its title, or None when the owner has no such task.

    `if_version_in` works as in `update_task`.
    """
    params, conditional = _condition({"owner": owner, "task_id": task_id}, if_version_in)
    deleted = await database.fetch_one(_delete_query(conditional), params)
    database.recent_tasks.forget(owner, task_id)
    if deleted is None:
        await _missed_write(database, owner=owner, task_id=task_id, versions=if_version_in)
        return None
    title: str = deleted[0]
    return title


@dataclass(frozen=True, slots=True)
class TaskCounts:
    total: int
    completed: int
    overdue: int
    due_today: int

    @property
    def pending(self) -> int:
        return self.total - self.completed


async def count_tasks(database: Database, *, owner: str, zone: tzinfo = UTC) -> TaskCounts:
    """How many tasks the owner has, completed, overdue and due today in `zone`: one statement."""
    now = datetime.now(UTC)
    today = now.astimezone(zone).date()
    params = {
        "owner": owner,
        "now": now,
        "today": today,
        "today_starts": day_starts(today, zone),
        "tomorrow_starts": day_starts(today + timedelta(days=1), zone),
    }
    row = await database.fetch_one(_STATS, params)
    assert row is not None  # an aggregate without GROUP BY returns one row
    return TaskCounts(*(int(value or 0) for value in row))


#: Repeating tasks completed together by `set_all_completed`: one transaction each page.
_COMPLETE_ALL_PAGE = 100
_MAX_TASK_ID = 2**63 - 1


def _completing(_task: TaskRecord) -> Mapping[str, Any]:
    return {"completed": True}


async def set_all_completed(database: Database, *, owner: str, completed: bool) -> int:
    """Set every task of the owner to `completed`; returns how many changed state.

    One statement, but for the repeating tasks being completed: those this process has seen
    are completed with it, the others a page at a time after it, each with its next
    occurrence, and the occurrences made here are not completed in turn.
    """
    now = datetime.now(UTC)
    if not completed:
        return await database.execute(_REOPEN_ALL, {"owner": owner, "now": now})
    after_id, before_id, rereads = 0, _MAX_TASK_ID, 0

    def page() -> tuple[Statement, dict[str, Any]]:
        bounds = {"after_id": after_id, "before_id": before_id}
        return _PENDING_REPEATING, {"owner": owner, "limit": _COMPLETE_ALL_PAGE, **bounds}

    # The pending repeating tasks this process has seen are completed in the first round trip
    # too, planned from what it saw (as `_write_knowing` does); the first page, read before
    # them in that round trip, then leaves out those they completed.
    seen = [
        task
        for task in database.recent_tasks.of_owner(owner)
        if task.recurrence is not None and not task.completed
    ]
    first: list[Step] = [(_COMPLETE_ALL_PLAIN, {"owner": owner, "now": now}), page()]
    known: list[tuple[TaskRecord, _PlannedWrite]] = []
    for task in sorted(seen, key=attrgetter("id"))[:_COMPLETE_ALL_PAGE]:
        planned = _planned_from_recalled(owner, task, _completing, None)
        if planned is not None:
            known.append((task, planned.after(len(first))))
            first += planned.steps
    async with database.session() as session:
        results = await session.run_together(first)
    plain, rows = results[0], results[1]
    done = set()
    for task, plan in known:
        if plan.written(database, results) is None:
            # Not as seen: forgotten, so that it does not take a place here again; a page
            # keeps it anew if it is still pending.
            database.recent_tasks.forget(owner, task.id)
        else:
            done.add(task.id)
    changed = len(plain) + len(done)
    # Occurrences made here get greater ids than every task there was: the pages stop
    # before them, so they are not completed in turn.
    last_id = int(rows[-1][-1]) if rows else 0
    before_id = last_id + 1
    while rows:
        after_id = _record(rows[-1]).id
        tasks = [task for task in map(_record, rows) if task.id not in done]
        if not tasks:  # all completed in the first round trip: read on if there are more
            more = len(rows) == _COMPLETE_ALL_PAGE and after_id < last_id
            rows = await database.fetch_all(*page()) if more else []
            continue
        now = datetime.now(UTC)
        steps: list[Step] = []
        plans: list[_PlannedWrite] = []
        for task in tasks:
            planned = _planned_write(owner, task, _completing(task), now)
            assert planned is not None  # a pending task becomes completed
            plans.append(planned.after(len(steps)))
            steps += planned.steps
        # The next page is read in the same round trip, after this one's writes.
        async with database.session() as session:
            *results, rows = await session.run_together([*steps, page()])
        missed = [
            task
            for task, plan in zip(tasks, plans, strict=True)
            if plan.written(database, results) is None
        ]
        changed += len(tasks) - len(missed)
        if missed:
            # Changed by someone else meanwhile: read again from the first of those.
            rereads += 1
            if rereads > _KNOWING_ATTEMPTS:
                raise DatabaseBusyError("tasks kept changing while they were being completed")
            after_id = missed[0].id - 1
            rows = await database.fetch_all(*page())
    return changed


async def delete_completed(database: Database, *, owner: str) -> int:
    """Delete the owner's completed tasks; returns how many."""
    return await database.execute(_DELETE_COMPLETED, {"owner": owner})


class NoReminderError(Exception):
    """The task has no reminder to acknowledge."""


async def due_reminders(
    database: Database, *, owner: str, until: datetime, limit: int, offset: int = 0
) -> TaskPage:
    """A page of the owner's tasks whose reminder has come by `until` and is not
    acknowledged (completing a task acknowledges it), the oldest reminder first."""
    params = {"owner": owner, "until": until, "limit": limit, "offset": offset}
    return await _page(database, _DUE_REMINDERS, _DUE_REMINDER_COUNT, params)


async def acknowledge_reminder(
    database: Database, *, owner: str, task_id: int
) -> TaskRecord | None:
    """Acknowledge the task's reminder: it does not fire again until it is set again or its
    due moves. Acknowledging it again changes nothing. None if the owner has no such task;
    NoReminderError if it has no reminder."""
    params = {"owner": owner, "task_id": task_id, "now": datetime.now(UTC)}
    task = await _fetch_task(database, _ACKNOWLEDGE, params)
    if task is not None:
        return _seen(database, task)
    task = await get_task(database, owner=owner, task_id=task_id)
    if task is not None and task.remind_at is None:
        raise NoReminderError(f"task {task_id} has no reminder")
    return task
