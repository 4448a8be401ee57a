"""Request and response bodies of the task endpoints."""

import re
import unicodedata
from datetime import UTC, date, datetime
from typing import Annotated, Any, Literal
from zoneinfo import available_timezones

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    StringConstraints,
    model_validator,
)
from pydantic import field_validator as validates
from pydantic_core import PydanticCustomError
from sqlmodel import SQLModel

from todo_api.db import recurrence as rules
from todo_api.db import reminders
from todo_api.db.models import (
    DEFAULT_PRIORITY,
    DESCRIPTION_MAX_LENGTH,
    TAG_MAX_LENGTH,
    TAGS_MAX_COUNT,
    TITLE_MAX_LENGTH,
    TaskBase,
)
from todo_api.db.tags import tag_key
from todo_api.db.tasks import NewTask

# PostgreSQL cannot store NUL, and an unpaired surrogate cannot even be encoded as UTF-8.
# Other control characters are refused too; descriptions may still span lines. The rules
# are published as JSON Schema patterns and checked by the validators below, which give a
# precise message; tests/test_schemas.py proves the two agree.
_TITLE_CONTROLS = r"\x00-\x1f\x7f-\x9f"
_DESCRIPTION_CONTROLS = r"\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f"
# Visible: not whitespace, not a control, not default-ignorable (Unicode's
# Default_Ignorable_Code_Point: format characters, variation selectors and fillers, which
# render as nothing). Only the Basic Multilingual Plane's are listed, as \uXXXX escapes that
# ECMA-262 (JavaScript clients), Python and Rust all read alike; no astral escape is shared,
# and to a JavaScript regex without the `u` flag an astral character is two surrogates. So
# U+1BCA0-1BCA3, U+1D173-1D17A and U+E0000-E0FFF still count as visible.
_INVISIBLE = (
    r"\u00ad\u034f\u061c\u115f-\u1160\u17b4-\u17b5\u180b-\u180f\u200b-\u200f\u202a-\u202e"
    r"\u2060-\u206f\u3164\ufe00-\ufe0f\ufeff\uffa0\ufff0-\ufff8"
)
_VISIBLE = rf"[^\s{_TITLE_CONTROLS}{_INVISIBLE}]"
TITLE_PATTERN = rf"^[^{_TITLE_CONTROLS}]*{_VISIBLE}[^{_TITLE_CONTROLS}]*$"
DESCRIPTION_PATTERN = rf"^[^{_DESCRIPTION_CONTROLS}]*$"
_TITLE_FORBIDDEN = re.compile(rf"[{_TITLE_CONTROLS}\ud800-\udfff]")
_TITLE_VISIBLE = re.compile(_VISIBLE)
_DESCRIPTION_FORBIDDEN = re.compile(rf"[{_DESCRIPTION_CONTROLS}\ud800-\udfff]")


def _refuse_found(pattern: re.Pattern[str], value: str, message: str) -> None:
    """Raise `message` (with `{code_point}`) for the first character `pattern` finds."""
    found = pattern.search(value)
    if found is not None:
        raise PydanticCustomError(
            "forbidden_character", message, {"code_point": f"{ord(found.group()):04X}"}
        )


def _refuse(pattern: re.Pattern[str]) -> AfterValidator:
    def check(value: str) -> str:
        _refuse_found(
            pattern,
            value,
            "Text must not contain the character U+{code_point} (control or unpaired surrogate)",
        )
        return value

    return AfterValidator(check)


def _trim_title(value: str) -> str:
    if _TITLE_VISIBLE.search(value) is None:
        raise PydanticCustomError("blank_title", "Title must contain a visible character")
    return value.strip()


# Lengths are checked as sent, so the published maxLength means exactly what it says; the
# stored title is the trimmed one.
TaskTitle = Annotated[
    str,
    StringConstraints(min_length=1, max_length=TITLE_MAX_LENGTH),
    Field(json_schema_extra={"pattern": TITLE_PATTERN}),
    _refuse(_TITLE_FORBIDDEN),
    AfterValidator(_trim_title),
]
TaskDescription = Annotated[
    str,
    StringConstraints(max_length=DESCRIPTION_MAX_LENGTH),
    Field(json_schema_extra={"pattern": DESCRIPTION_PATTERN}),
    _refuse(_DESCRIPTION_FORBIDDEN),
]


def _drop_null(schema: dict[str, Any]) -> None:
    alternatives = [option for option in schema.pop("anyOf", []) if option.get("type") != "null"]
    schema.update(*alternatives)
    schema.pop("default", None)


def omittable(description: str | None = None) -> Any:
    """Optional but not nullable: absent leaves the value alone, an explicit null is refused.

    Declared `X | None` so errors name the field plainly; published without `null` (and with
    `description` rather than its type's).
    """
    if description is None:
        return Field(default=None, json_schema_extra=_drop_null)

    def published(schema: dict[str, Any]) -> None:
        _drop_null(schema)
        schema["description"] = description

    return Field(default=None, json_schema_extra=published)


def _refuse_null(value: Any) -> Any:
    if value is None:
        raise PydanticCustomError("null_not_allowed", "Field may be omitted but not null")
    return value


def _in_utc(value: datetime) -> datetime:
    # 0001-01-01T00:00:00+05:00 is a valid date-time but no UTC one: refuse it here, not
    # with a 500 when it is stored.
    try:
        return value.astimezone(UTC)
    except OverflowError:
        raise PydanticCustomError(
            "datetime_out_of_range", "Date-time must fall within years 1 to 9999 in UTC"
        ) from None


_DATE_TEXT = re.compile(r"\d{4}-\d{2}-\d{2}")


def _date_text(value: Any) -> Any:
    # Pydantic would also take a number (as a Unix time) or a date-time at midnight.
    if not (isinstance(value, str) and _DATE_TEXT.fullmatch(value)):
        raise PydanticCustomError("date_format", "Date must be given as YYYY-MM-DD")
    return value


# Pydantic would also take a number, or a string of one, as a Unix time.
_DATETIME_TEXT = re.compile(r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}")


def _datetime_text(value: Any) -> Any:
    if not (isinstance(value, str) and _DATETIME_TEXT.match(value)):
        raise PydanticCustomError(
            "datetime_type",
            "Date-time must be an RFC 3339 string such as 2026-12-03T09:00:00+05:00",
        )
    return value


TaskDueDate = Annotated[
    date,
    BeforeValidator(_date_text),
    Field(
        description="An all-day task's day, `YYYY-MM-DD`: the same date in every time zone.",
        json_schema_extra={"pattern": r"^\d{4}-\d{2}-\d{2}$"},
    ),
]
TaskDueAt = Annotated[
    AwareDatetime,
    BeforeValidator(_datetime_text),
    AfterValidator(_in_utc),
    Field(
        description="A timed task's instant, with its UTC offset "
        "(`2026-12-03T09:00:00+05:00`); answered in UTC (`Z`)."
    ),
]


def _one_due(model: Any) -> Any:
    if getattr(model, "due_date", None) is not None and getattr(model, "due_at", None) is not None:
        raise PydanticCustomError(
            "due_conflict", "A task is due on a day (due_date) or at a time (due_at), not both"
        )
    return model


# The same rule as _one_due, published: both may be absent or null, not both given.
ONE_DUE_SCHEMA: dict[str, Any] = {
    "not": {
        "required": ["due_date", "due_at"],
        "properties": {"due_date": {"type": "string"}, "due_at": {"type": "string"}},
    }
}


# The zones of the tz database, which PostgreSQL knows too; not the other files zoneinfo
# would open (`posix/...`, `right/...`), nor `localtime`: the server's zone, not the user's.
_ZONES = (frozenset(available_timezones()) | {"UTC"}) - {"localtime"}


def _known_time_zone(name: str) -> str:
    if name not in _ZONES:
        raise PydanticCustomError(
            "time_zone", "Unknown time zone; use an IANA name such as Europe/Paris or UTC"
        )
    return name


#: A name `zoneinfo.ZoneInfo` opens.
TimeZoneName = Annotated[str, AfterValidator(_known_time_zone)]
TIME_ZONE_MAX_LENGTH = 64


def _due_changes(changes: dict[str, Any]) -> dict[str, Any]:
    """Setting one kind of due clears the other."""
    if changes.get("due_date") is not None:
        changes["due_at"] = None
    elif changes.get("due_at") is not None:
        changes["due_date"] = None
    return changes


# A tag: 1-40 characters once trimmed, the first and last of them visible; no control
# character, and no comma, as commas separate tags in `?tags=work,home`. No bidirectional
# embedding, override or isolate either (U+202A-202E, U+2066-2069): a tag is a short label
# shown and matched on its own, which they could only make display as another tag.
_BIDI_CONTROLS = r"\u202a-\u202e\u2066-\u2069"
_TAG_FORBIDDEN_CHARACTERS = rf"{_TITLE_CONTROLS},{_BIDI_CONTROLS}"
_TAG_EDGE = rf"[^\s{_TAG_FORBIDDEN_CHARACTERS}{_INVISIBLE}]"
_TAG_PADDING = rf"[^\S{_TITLE_CONTROLS}]*"  # spaces, trimmed off (tabs and newlines are controls)
_TAG_MIDDLE = rf"[^{_TAG_FORBIDDEN_CHARACTERS}]{{0,{TAG_MAX_LENGTH - 2}}}"
_TAG = rf"{_TAG_PADDING}{_TAG_EDGE}(?:{_TAG_MIDDLE}{_TAG_EDGE})?{_TAG_PADDING}"
TAG_PATTERN = rf"^{_TAG}$"
#: Up to 20 tags separated by commas, as `?tags=` takes them.
TAG_LIST_PATTERN = rf"^{_TAG}(?:,{_TAG}){{0,{TAGS_MAX_COUNT - 1}}}$"
_TAG_FORBIDDEN = re.compile(rf"[{_TAG_FORBIDDEN_CHARACTERS}\ud800-\udfff]")
_TAG_EDGE_CHARACTER = re.compile(_TAG_EDGE)


def tag(value: str) -> str:
    """`value` trimmed and in Unicode NFC, if it is a valid tag; raises PydanticCustomError
    if not. In NFC, "\u00e9" and "e\u0301" are one tag, stored one way."""
    _refuse_found(
        _TAG_FORBIDDEN,
        value,
        "Tags must not contain the character U+{code_point} (a comma, a control, a "
        "bidirectional control or an unpaired surrogate)",
    )
    trimmed = value.strip()
    if not trimmed:
        raise PydanticCustomError("blank_tag", "A tag must contain a visible character")
    if len(trimmed) > TAG_MAX_LENGTH:
        raise PydanticCustomError(
            "tag_too_long",
            "A tag has at most {max_length} characters",
            {"max_length": TAG_MAX_LENGTH},
        )
    if not (
        _TAG_EDGE_CHARACTER.fullmatch(trimmed[0]) and _TAG_EDGE_CHARACTER.fullmatch(trimmed[-1])
    ):
        raise PydanticCustomError(
            "invisible_tag_edge", "A tag must begin and end with a visible character"
        )
    normalized = unicodedata.normalize("NFC", trimmed)
    if len(normalized) > TAG_MAX_LENGTH:  # the rare characters NFC writes as two or three
        raise PydanticCustomError(
            "tag_too_long",
            "A tag has at most {max_length} characters in Unicode NFC",
            {"max_length": TAG_MAX_LENGTH},
        )
    return normalized


def _distinct_tags(tags: list[str]) -> list[str]:
    seen: dict[str, str] = {}
    for name in tags:
        key = tag_key(name)
        if key in seen:
            raise PydanticCustomError(
                "duplicate_tag",
                "Each tag may be given once, ignoring case: '{first}' and '{second}' are "
                "the same tag",
                {"first": seen[key], "second": name},
            )
        seen[key] = name
    return tags


TaskTag = Annotated[str, Field(json_schema_extra={"pattern": TAG_PATTERN}), AfterValidator(tag)]
TaskTags = Annotated[
    list[TaskTag],
    Field(
        max_length=TAGS_MAX_COUNT,
        description="Labels such as `work` or `home`, in the order given; trimmed, and "
        "compared ignoring case (two that differ only by case are refused).",
        examples=[["work", "errands"]],
        # Also the same tag ignoring case, which JSON Schema cannot say.
        json_schema_extra={"uniqueItems": True},
    ),
    AfterValidator(_distinct_tags),
]

TaskPriority = Annotated[
    Literal["low", "medium", "high"],
    Field(description="How urgent the task is; `sort=-priority` lists high first."),
]

# Ids and counts are 64-bit in the database. JavaScript numbers hold integers exactly only up
# to 2^53, so the format tells generated clients and Swagger UI what width to expect.
Int64 = Annotated[int, Field(json_schema_extra={"format": "int64"})]


def examples(*values: dict[str, Any]) -> dict[str, Any]:
    """The JSON Schema `examples` of a body: what Swagger UI's "Try it out" starts from.

    Each must be valid for its model (tests/test_openapi.py checks it); the first is shown.
    """
    return {"examples": list(values)}


def _not_a_boolean(value: Any) -> Any:
    # JSON Schema's integer takes 3.0 but not true, which Python's int would.
    if isinstance(value, bool):
        raise PydanticCustomError("int_type", "Input should be a valid integer")
    return value


#: An integer as JSON Schema has it: 3 or 3.0, not true.
JsonInt = Annotated[int, BeforeValidator(_not_a_boolean)]


class RecurrenceEndsAfter(SQLModel):
    model_config = ConfigDict(extra="forbid")  # type: ignore[assignment]

    count: JsonInt = Field(
        ge=1,
        le=rules.MAX_COUNT,
        description="The series has this many occurrences in all, this one included.",
    )


class RecurrenceEndsOn(SQLModel):
    model_config = ConfigDict(extra="forbid")  # type: ignore[assignment]

    until: TaskDueDate = Field(description="No occurrence is due after this day (in `tz`).")


RecurrenceFrequency = Literal["daily", "weekly", "monthly", "yearly"]
Weekday = Literal["mo", "tu", "we", "th", "fr", "sa", "su"]
RecurrenceEnds = RecurrenceEndsAfter | RecurrenceEndsOn
RecurrenceFrom = Literal["due", "completion"]
_FREQUENCY = "How often: every `interval` days, weeks, months or years."
_DAYS = "Weekly only: the days of the week it falls on (default: the due's)."
_MONTH_DAY = (
    "Monthly or yearly only: the day of the month, or -1 for the last; a month without that "
    "day is skipped (default: the due's day)."
)
_ENDS = '`{"count": n}` or `{"until": "YYYY-MM-DD"}`; absent or null: never.'
_FROM = (
    "`due`: the next is due one step after this one's due; `completion`: after the day it "
    "is completed."
)
_TZ = "The IANA zone the series is computed in: a `due_at` keeps its local time across DST."


class RecurrenceRule(SQLModel):
    """How a task repeats: completing it creates the next occurrence."""

    model_config = ConfigDict(  # type: ignore[assignment]
        extra="forbid",
        json_schema_extra=examples(
            {"frequency": "weekly", "days_of_week": ["mo", "th"]},
            {"frequency": "monthly", "month_day": -1, "ends": {"count": 12}},
        ),
    )

    frequency: RecurrenceFrequency = Field(description=_FREQUENCY)
    interval: JsonInt = Field(default=1, ge=1, le=rules.MAX_INTERVAL)
    days_of_week: list[Weekday] | None = Field(
        default=None, min_length=1, max_length=7, description=_DAYS
    )
    month_day: Annotated[int, Field(ge=-1, le=31), BeforeValidator(_not_a_boolean)] | None = Field(
        default=None, description=_MONTH_DAY
    )
    ends: RecurrenceEnds | None = Field(default=None, description=_ENDS)
    from_: RecurrenceFrom = Field(default="due", alias="from", description=_FROM)
    tz: Annotated[TimeZoneName, Field(max_length=TIME_ZONE_MAX_LENGTH, description=_TZ)] = "UTC"

    @model_validator(mode="after")
    def _fits_its_frequency(self) -> "RecurrenceRule":
        if self.days_of_week is not None and self.frequency != "weekly":
            raise PydanticCustomError("recurrence_days", "days_of_week is for weekly rules only")
        if self.days_of_week is not None and len(set(self.days_of_week)) < len(self.days_of_week):
            raise PydanticCustomError("recurrence_days", "Each day of the week may be given once")
        if self.month_day is not None and self.frequency not in ("monthly", "yearly"):
            raise PydanticCustomError(
                "recurrence_month_day", "month_day is for monthly and yearly rules only"
            )
        if self.month_day == 0:
            raise PydanticCustomError(
                "recurrence_month_day", "month_day is 1 to 31, or -1 for the last day"
            )
        return self

    def rule(self) -> rules.Recurrence:
        """The rule the data layer keeps."""
        days = set(self.days_of_week or ())
        return rules.Recurrence(
            frequency=self.frequency,
            interval=self.interval,
            days_of_week=tuple(day for day in rules.WEEKDAYS if day in days),
            month_day=self.month_day,
            count=self.ends.count if isinstance(self.ends, RecurrenceEndsAfter) else None,
            until=self.ends.until if isinstance(self.ends, RecurrenceEndsOn) else None,
            from_completion=self.from_ == "completion",
            tz=self.tz,
        )


class RecurrencePublic(SQLModel):
    """A task's rule as stored, and spelled as an RFC 5545 RRULE."""

    model_config = ConfigDict(  # type: ignore[assignment]
        json_schema_serialization_defaults_required=True
    )

    frequency: RecurrenceFrequency
    interval: int
    days_of_week: list[Weekday]
    month_day: int | None
    ends: RecurrenceEnds | None
    from_: RecurrenceFrom = Field(alias="from")
    tz: str
    rrule: str = Field(
        description="The rule as an RFC 5545 RRULE value (`FREQ=WEEKLY;INTERVAL=1;BYDAY=MO`)."
    )


class ReminderRule(SQLModel):
    """When to remind: `{"at": instant}`, or `{"minutes_before": n}` the due."""

    model_config = ConfigDict(  # type: ignore[assignment]
        extra="forbid",
        json_schema_extra={
            # One of the two; a zone only for a reminder before the due.
            "oneOf": [
                {"required": ["at"], "not": {"required": ["tz"]}},
                {"required": ["minutes_before"]},
            ],
            **examples({"minutes_before": 30}, {"at": "2026-12-03T08:30:00+01:00"}),
        },
    )

    at: TaskDueAt | None = omittable("The instant it fires, with its UTC offset.")
    minutes_before: (
        Annotated[
            int, Field(ge=0, le=reminders.MAX_MINUTES_BEFORE), BeforeValidator(_not_a_boolean)
        ]
        | None
    ) = omittable(
        "Fires this many minutes before the due (0 to 40320, four weeks); it moves with the due."
    )
    tz: Annotated[TimeZoneName, Field(max_length=TIME_ZONE_MAX_LENGTH)] | None = omittable(
        "With `minutes_before` and a `due_date`: the IANA zone whose start of that day it "
        "counts from (default UTC)."
    )

    _not_null = validates("at", "minutes_before", "tz", mode="before")(_refuse_null)

    @model_validator(mode="after")
    def _one_kind(self) -> "ReminderRule":
        if (self.at is None) == (self.minutes_before is None):
            raise PydanticCustomError(
                "reminder_kind", "A reminder has either at or minutes_before, not both"
            )
        if self.at is not None and self.tz is not None:
            raise PydanticCustomError("reminder_tz", "tz goes with minutes_before only")
        return self

    def reminder(self) -> reminders.Reminder:
        """The reminder the data layer keeps."""
        if self.at is not None:
            return reminders.Reminder(at=self.at)
        return reminders.Reminder(minutes_before=self.minutes_before, tz=self.tz or "UTC")


def _reminder(reminder: ReminderRule | None) -> reminders.Reminder | None:
    return None if reminder is None else reminder.reminder()


class ReminderPublic(SQLModel):
    """A task's reminder: when it fires, how it was set, and whether it was acknowledged."""

    model_config = ConfigDict(  # type: ignore[assignment]
        json_schema_serialization_defaults_required=True
    )

    at: AwareDatetime = Field(description="When it fires (for `minutes_before`, from the due).")
    minutes_before: int | None
    tz: str | None
    acknowledged_at: AwareDatetime | None = Field(
        description="When it was acknowledged; it fires again only once set again or the due moves."
    )


# A task as the API sends it, just created (fields in the order they are sent).
TASK_EXAMPLE: dict[str, Any] = {
    "title": "Buy milk",
    "description": "2 litres",
    "completed": False,
    "id": 1,
    "user_id": "alice",
    "completed_at": None,
    "created_at": "2026-11-24T15:27:06.908932Z",
    "updated_at": "2026-11-24T15:27:06.908932Z",
    "due_date": None,
    "due_at": None,
    "priority": "medium",
    "tags": [],
    "recurrence": None,
    "series_id": None,
    "next_occurrence_id": None,
    "reminder": None,
    "etag": '"1.1"',
}
_REMINDS = (
    'When to remind: `{"at": instant}`, or `{"minutes_before": n}` the due (moving with it); '
    "null: none. Reminders whose time has come are listed by GET /api/{user_id}/reminders."
)
_REPEATS = "How the task repeats; null: it does not. Needs a `due_date` or `due_at`."


def _rule(recurrence: RecurrenceRule | None) -> rules.Recurrence | None:
    return None if recurrence is None else recurrence.rule()


def _rule_changes(body: "TaskReplace | TaskUpdate") -> dict[str, Any]:
    """The body's `recurrence` and `reminder`, if given, as the data layer takes them."""
    changes: dict[str, Any] = {}
    if "recurrence" in body.model_fields_set:
        changes["recurrence"] = _rule(body.recurrence)
    if "reminder" in body.model_fields_set:
        changes["reminder"] = _reminder(body.reminder)
    return changes


class TaskCreate(TaskBase):
    model_config = ConfigDict(  # type: ignore[assignment]
        extra="forbid",
        json_schema_extra=examples({"title": "Buy milk", "description": "2 litres"})
        | ONE_DUE_SCHEMA,
    )

    title: TaskTitle
    description: TaskDescription | None = None
    completed: StrictBool = False
    due_date: TaskDueDate | None = None
    due_at: TaskDueAt | None = None
    priority: TaskPriority = DEFAULT_PRIORITY
    tags: TaskTags = Field(default_factory=list)
    recurrence: RecurrenceRule | None = Field(default=None, description=_REPEATS)
    reminder: ReminderRule | None = Field(default=None, description=_REMINDS)

    _not_null = validates("completed", "priority", "tags", mode="before")(_refuse_null)
    _one_due = model_validator(mode="after")(_one_due)

    def new_task(self) -> NewTask:
        """What the data layer creates from this body."""
        return NewTask(
            title=self.title,
            description=self.description,
            completed=self.completed,
            priority=self.priority,
            due_date=self.due_date,
            due_at=self.due_at,
            tags=tuple(self.tags),
            recurrence=_rule(self.recurrence),
            reminder=_reminder(self.reminder),
        )


class TaskReplace(SQLModel):
    """A whole task: an absent description becomes null; an absent `completed`,
    `priority`, due, `tags`, `recurrence` or `reminder` stays as it is, so a client that does
    not know a field cannot wipe it."""

    model_config = ConfigDict(  # type: ignore[assignment]
        extra="forbid",
        json_schema_extra=examples(
            {"title": "Buy milk", "description": "2 litres, semi-skimmed", "completed": False}
        )
        | ONE_DUE_SCHEMA,
    )

    title: TaskTitle
    description: TaskDescription | None = None
    completed: StrictBool | None = omittable()
    due_date: TaskDueDate | None = None
    due_at: TaskDueAt | None = None
    priority: TaskPriority | None = omittable()
    tags: TaskTags | None = omittable()
    recurrence: RecurrenceRule | None = Field(default=None, description=_REPEATS)
    reminder: ReminderRule | None = Field(default=None, description=_REMINDS)

    _kept_when_absent_not_null = validates("completed", "priority", "tags", mode="before")(
        _refuse_null
    )
    _one_due = model_validator(mode="after")(_one_due)

    def changes(self) -> dict[str, Any]:
        kept_when_absent = {"completed", "priority", "due_date", "due_at", "tags"}
        fields = {"title", "description"} | (self.model_fields_set & kept_when_absent)
        return _due_changes(self.model_dump(include=fields)) | _rule_changes(self)


class TaskUpdate(SQLModel):
    """Any subset of the editable fields; `description: null` clears the description."""

    model_config = ConfigDict(  # type: ignore[assignment]
        extra="forbid",
        json_schema_extra=examples(
            {"description": "2 litres, semi-skimmed"},
            {"completed": True},
            {"description": None},
        )
        | ONE_DUE_SCHEMA,
    )

    title: TaskTitle | None = omittable()
    description: TaskDescription | None = None
    completed: StrictBool | None = omittable()
    due_date: TaskDueDate | None = None
    due_at: TaskDueAt | None = None
    priority: TaskPriority | None = omittable()
    tags: TaskTags | None = omittable()
    recurrence: RecurrenceRule | None = Field(default=None, description=_REPEATS)
    reminder: ReminderRule | None = Field(default=None, description=_REMINDS)

    _not_null = validates("title", "completed", "priority", "tags", mode="before")(_refuse_null)
    _one_due = model_validator(mode="after")(_one_due)

    def changes(self) -> dict[str, Any]:
        plain = self.model_dump(exclude_unset=True, exclude={"recurrence", "reminder"})
        return _due_changes(plain) | _rule_changes(self)


class TaskCompletion(SQLModel):
    """Body of the toggle: `completed` sets the state; without it the state flips."""

    model_config = ConfigDict(  # type: ignore[assignment]
        extra="forbid", json_schema_extra=examples({"completed": True})
    )

    completed: StrictBool | None = omittable()

    _completed_not_null = validates("completed", mode="before")(_refuse_null)


class TaskPublic(TaskBase):
    # Every field is always sent, so the response schema marks them all required.
    model_config = ConfigDict(  # type: ignore[assignment]
        json_schema_serialization_defaults_required=True,
        json_schema_extra=examples(TASK_EXAMPLE),
    )

    id: Int64
    user_id: str
    completed_at: AwareDatetime | None
    created_at: AwareDatetime
    updated_at: AwareDatetime
    due_date: date | None
    due_at: AwareDatetime | None
    priority: TaskPriority
    tags: list[str] = Field(description="The task's tags, in the order they were given.")
    recurrence: RecurrencePublic | None = Field(description="How the task repeats, or null.")
    series_id: Int64 | None = Field(
        description="A repeating task's series: the id of its first occurrence."
    )
    next_occurrence_id: Int64 | None = Field(
        description="The occurrence created when this one was completed (also the "
        '`Link` `rel="next-occurrence"`).'
    )
    reminder: ReminderPublic | None = Field(description="The task's reminder, or null.")
    etag: str = Field(
        description="The task's current ETag, as in the `ETag` header: send it in `If-Match` "
        "to change the task only if nobody else has since."
    )


class TaskStats(SQLModel):
    """The counters a todo list shows ("3 items left")."""

    model_config = ConfigDict(  # type: ignore[assignment]
        json_schema_extra=examples(
            {"total": 5, "pending": 3, "completed": 2, "overdue": 1, "due_today": 1}
        )
    )

    total: Int64
    pending: Int64
    completed: Int64
    overdue: Int64 = Field(description="Pending tasks past due (in `tz`).")
    due_today: Int64 = Field(description="Pending tasks due today (in `tz`).")


class TagCount(SQLModel):
    """A tag of the caller's and how many of their tasks carry it."""

    model_config = ConfigDict(  # type: ignore[assignment]
        json_schema_extra=examples({"name": "work", "count": 3})
    )

    name: str = Field(
        description="The tag. Spellings that differ only by case count as one tag, "
        "named by the first of them in code-point order (`Work` before `work`)."
    )
    count: Int64 = Field(description="Tasks carrying the tag, completed or not.")


class BulkCompletion(SQLModel):
    model_config = ConfigDict(  # type: ignore[assignment]
        extra="forbid", json_schema_extra=examples({"completed": True})
    )

    completed: StrictBool


class BulkUpdateResult(SQLModel):
    model_config = ConfigDict(json_schema_extra=examples({"updated": 3}))  # type: ignore[assignment]

    updated: Int64 = Field(description="Tasks whose completion state changed.")


class BulkDeleteResult(SQLModel):
    model_config = ConfigDict(json_schema_extra=examples({"deleted": 2}))  # type: ignore[assignment]

    deleted: Int64 = Field(description="Tasks deleted.")
