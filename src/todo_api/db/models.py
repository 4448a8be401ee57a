"""Table models. The schema itself changes only through Alembic migrations."""

import json
from collections.abc import Callable
from datetime import UTC, date, datetime
from typing import Any, Final

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    Date,
    DateTime,
    Dialect,
    ForeignKey,
    Identity,
    Index,
    Integer,
    SmallInteger,
    String,
    Table,
    Text,
    false,
    text,
)
from sqlalchemy.types import TypeDecorator
from sqlmodel import Field, SQLModel

TITLE_MAX_LENGTH = 200
DESCRIPTION_MAX_LENGTH = 1000
USER_ID_MAX_LENGTH = 128
TAG_MAX_LENGTH = 40
TAGS_MAX_COUNT = 20

SQLModel.metadata.naming_convention = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp that is always timezone-aware UTC in Python.

    PostgreSQL stores `timestamptz`; SQLite has no time zones, so values are stored as UTC
    and the zone is attached again when read.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetimes are ambiguous; pass an aware one")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)  # type: ignore[no-any-return]
        return value.astimezone(UTC)  # type: ignore[no-any-return]


#: A task's priority, lowest first: the order `sort=priority` lists them in.
PRIORITIES = ("low", "medium", "high")
DEFAULT_PRIORITY: Final = "medium"
_PRIORITY_NAMES: dict[int | None, str | None] = {None: None} | dict(enumerate(PRIORITIES, 1))


class Priority(TypeDecorator[str]):
    """`low`, `medium` or `high` in Python; their rank (1-3) in the database.

    Stored as a number so that sorting by priority is sorting by the column, which an
    index can serve, rather than by a CASE over text.
    """

    impl = SmallInteger()
    cache_ok = True

    def process_bind_param(self, value: str | None, dialect: Dialect) -> int | None:
        return None if value is None else PRIORITIES.index(value) + 1

    def process_result_value(self, value: int | None, dialect: Dialect) -> str | None:
        return _PRIORITY_NAMES[value]

    def result_processor(self, dialect: Dialect, coltype: object) -> Callable[[Any], Any]:
        # Every listed task has one: a dict lookup rather than two Python calls per value.
        return _PRIORITY_NAMES.__getitem__


class TagList(TypeDecorator[list[str]]):
    """A task's tags as sent, in order; stored as a JSON array of strings.

    The list rides on the task row so that reading a task needs no join; `task_tags`
    holds the same tags one per row for filtering and counting.
    """

    impl = Text()
    cache_ok = True

    def process_bind_param(self, value: list[str] | None, dialect: Dialect) -> str | None:
        if value is None:
            return None
        if not value:
            return "[]"  # most tasks have none
        # One spelling per list, so that the database's comparison of two lists is exact.
        return json.dumps(list(value), ensure_ascii=False, separators=(",", ":"))

    def process_result_value(self, value: str | None, dialect: Dialect) -> list[str] | None:
        return _load_tags(value)

    def result_processor(self, dialect: Dialect, coltype: object) -> Callable[[Any], Any]:
        return _load_tags  # one Python call per value rather than two


def _load_tags(value: str | None) -> list[str] | None:
    if value is None:
        return None
    return [] if value == "[]" else json.loads(value)  # most tasks have none


#: A task that belongs to a series (todo_api.db.recurrence).
IN_A_SERIES = text("series_id IS NOT NULL")

#: A task that repeats. Not whether it is completed, for the reason ARMED_REMINDER gives.
REPEATING = text("recurrence IS NOT NULL")

#: A reminder that can still fire: set and not acknowledged (completing its task acknowledges
#: it). Not `completed` itself: a column in an index's predicate counts as indexed, and a
#: toggle that changes one cannot be a HOT update, which rewrites every index of the table.
ARMED_REMINDER = text("remind_at IS NOT NULL AND reminder_acknowledged_at IS NULL")

# Compared and sorted by code point on both databases, whatever PostgreSQL's collation.
CODE_POINT_TEXT = Text().with_variant(Text(collation="C"), "postgresql")


class TaskBase(SQLModel):
    title: str = Field(min_length=1, max_length=TITLE_MAX_LENGTH)
    description: str | None = Field(default=None, max_length=DESCRIPTION_MAX_LENGTH)
    completed: bool = False


class Task(TaskBase, table=True):
    __tablename__ = "tasks"
    __table_args__ = (
        # Serves every per-user listing; the default sort (newest first) reads it backwards.
        Index("ix_tasks_user_id_created_at_id", "user_id", "created_at", "id"),
        CheckConstraint(
            f"length(user_id) BETWEEN 1 AND {USER_ID_MAX_LENGTH}", name="user_id_length"
        ),
        CheckConstraint(f"length(title) BETWEEN 1 AND {TITLE_MAX_LENGTH}", name="title_length"),
        CheckConstraint(
            f"description IS NULL OR length(description) <= {DESCRIPTION_MAX_LENGTH}",
            name="description_length",
        ),
        CheckConstraint(
            "(completed_at IS NULL) = (NOT completed)", name="completed_at_matches_completed"
        ),
        CheckConstraint(f"priority BETWEEN 1 AND {len(PRIORITIES)}", name="priority_known"),
        # A task is due on a day (all day) or at an instant, not both.
        CheckConstraint("due_date IS NULL OR due_at IS NULL", name="one_due"),
        Index("ix_tasks_user_id_due_date", "user_id", "due_date"),
        Index("ix_tasks_user_id_due_at", "user_id", "due_at"),
        # Serves sort=priority and sort=-priority (read backwards) within one user's tasks.
        Index("ix_tasks_user_id_priority_id", "user_id", "priority", "id"),
        # A repeating task is due on some day or at some time, and says in which zone.
        CheckConstraint(
            "recurrence IS NULL OR due_date IS NOT NULL OR due_at IS NOT NULL",
            name="recurrence_has_due",
        ),
        CheckConstraint(
            "(recurrence IS NULL) = (recurrence_tz IS NULL)", name="recurrence_has_zone"
        ),
        CheckConstraint("occurrence >= 1", name="occurrence_positive"),
        # One task per occurrence of a series: however often, or however concurrently, an
        # occurrence is completed, its next one is created once. Only tasks of a series are
        # in it, so creating or deleting any other task does not write to it.
        Index(
            "ix_tasks_series_id_occurrence",
            "series_id",
            "occurrence",
            unique=True,
            postgresql_where=IN_A_SERIES,
            sqlite_where=IN_A_SERIES,
        ),
        # A relative reminder moves with the due, so it needs one.
        CheckConstraint(
            "reminder_minutes_before IS NULL OR remind_at IS NOT NULL",
            name="reminder_minutes_have_an_instant",
        ),
        # Only the reminders that can still fire, in the order they fire: what
        # GET /reminders reads, however many tasks there are.
        Index(
            "ix_tasks_user_id_remind_at_id",
            "user_id",
            "remind_at",
            "id",
            postgresql_where=ARMED_REMINDER,
            sqlite_where=ARMED_REMINDER,
        ),
        # An owner's repeating tasks by id: the pages complete-all completes them in, which
        # otherwise read all of the owner's tasks for each page.
        Index(
            "ix_tasks_user_id_id_repeating",
            "user_id",
            "id",
            postgresql_where=REPEATING,
            sqlite_where=REPEATING,
        ),
        {"sqlite_autoincrement": True},
    )

    id: int | None = Field(
        default=None,
        sa_column=Column(
            BigInteger().with_variant(Integer(), "sqlite"), Identity(), primary_key=True
        ),
    )
    user_id: str = Field(max_length=USER_ID_MAX_LENGTH)
    completed_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    created_at: datetime = Field(sa_type=UTCDateTime)
    updated_at: datetime = Field(sa_type=UTCDateTime)
    #: An all-day task's day: the same date wherever the user is, stored as sent.
    due_date: date | None = Field(default=None, sa_type=Date)
    #: A timed task's instant.
    due_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    priority: str = Field(
        default=DEFAULT_PRIORITY,
        sa_column=Column(Priority(), nullable=False, server_default=text("2")),
    )
    tags: list[str] = Field(
        default_factory=list,
        sa_column=Column(TagList(), nullable=False, server_default=text("'[]'")),
    )
    # Raised by every write that changes the task; the ETag is built from it, and a
    # conditional write compares it in its WHERE clause.
    version: int = Field(
        default=1, sa_column=Column(BigInteger(), nullable=False, server_default=text("1"))
    )
    #: How the task repeats, as an RFC 5545 RRULE value (todo_api.db.recurrence); None for
    #: a task that does not.
    recurrence: str | None = Field(default=None, sa_column=Column(Text(), nullable=True))
    #: The IANA zone the rule is computed in (a repeating task's only).
    recurrence_tz: str | None = Field(default=None, sa_column=Column(Text(), nullable=True))
    #: Whether the next due counts from the completion rather than from the due.
    recurrence_from_completion: bool = Field(
        default=False,
        sa_column=Column(Boolean(), nullable=False, server_default=false()),
    )
    #: The id of the series' first task, once the series has more than one.
    series_id: int | None = Field(default=None, sa_column=Column(BigInteger(), nullable=True))
    #: Which occurrence of its series the task is, from 1: what `ends.count` counts.
    occurrence: int = Field(
        default=1, sa_column=Column(Integer(), nullable=False, server_default=text("1"))
    )
    #: The occurrence created when this one was completed.
    next_occurrence_id: int | None = Field(
        default=None, sa_column=Column(BigInteger(), nullable=True)
    )
    #: When the task's reminder fires (todo_api.db.reminders).
    remind_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    #: For a reminder relative to the due: how many minutes before it.
    reminder_minutes_before: int | None = Field(
        default=None, sa_column=Column(Integer(), nullable=True)
    )
    #: For a reminder relative to a due day: the zone whose start of that day it counts from.
    reminder_tz: str | None = Field(default=None, sa_column=Column(Text(), nullable=True))
    #: When the reminder was acknowledged; it fires again only once re-armed.
    reminder_acknowledged_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


tasks_table: Table = Task.__table__  # type: ignore[attr-defined]


class TaskTag(SQLModel, table=True):
    """One tag of one task, under its case-folded key: what tag filters and counts read.

    Written with the task's `tags` in the same transaction; deleted with the task.
    """

    __tablename__ = "task_tags"
    __table_args__ = (
        # Serves `tags=` filters and the per-user counts without touching tasks.
        Index("ix_task_tags_user_id_key_task_id", "user_id", "key", "task_id"),
        CheckConstraint(f"length(name) BETWEEN 1 AND {TAG_MAX_LENGTH}", name="name_length"),
    )

    task_id: int = Field(
        sa_column=Column(
            BigInteger().with_variant(Integer(), "sqlite"),
            ForeignKey("tasks.id", ondelete="CASCADE"),
            primary_key=True,
        )
    )
    #: The tag case-folded: tags that differ only by case share it.
    key: str = Field(sa_column=Column(CODE_POINT_TEXT, primary_key=True))
    user_id: str = Field(max_length=USER_ID_MAX_LENGTH)
    #: The tag as the task carries it.
    name: str = Field(sa_column=Column(CODE_POINT_TEXT, nullable=False))


task_tags_table: Table = TaskTag.__table__  # type: ignore[attr-defined]

IDEMPOTENCY_KEY_MAX_LENGTH = 255


class IdempotencyKey(SQLModel, table=True):
    """A create request made with an `Idempotency-Key`, and the task it created.

    Written with its task in one transaction. A row without a task is a claim left by an
    earlier version of this service, which committed claims on their own.
    """

    __tablename__ = "idempotency_keys"
    __table_args__ = (
        # Expired keys are deleted by age across all users.
        Index("ix_idempotency_keys_created_at", "created_at"),
    )

    user_id: str = Field(max_length=USER_ID_MAX_LENGTH, primary_key=True)
    key: str = Field(max_length=IDEMPOTENCY_KEY_MAX_LENGTH, primary_key=True)
    #: SHA-256 of the request body as canonical JSON.
    fingerprint: str = Field(sa_column=Column(String(64), nullable=False))
    #: Random per request: the statements after the claim act only for the request that
    #: holds it.
    claim: str = Field(sa_column=Column(String(32), nullable=False))
    created_at: datetime = Field(sa_type=UTCDateTime)
    task_id: int | None = Field(default=None, sa_column=Column(BigInteger(), nullable=True))
    #: Unused since migration 0007 (the previous version stored its response body here).
    response: str | None = Field(default=None, sa_column=Column(Text(), nullable=True))


idempotency_keys_table: Table = IdempotencyKey.__table__  # type: ignore[attr-defined]
