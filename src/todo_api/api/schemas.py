"""Request and response bodies of the task endpoints."""

import re
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    AwareDatetime,
    ConfigDict,
    Field,
    StrictBool,
    StringConstraints,
)
from pydantic import field_validator as validates
from pydantic_core import PydanticCustomError
from sqlmodel import SQLModel

from todo_api.db.models import (
    DEFAULT_PRIORITY,
    DESCRIPTION_MAX_LENGTH,
    TITLE_MAX_LENGTH,
    TaskBase,
)

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


def _refuse(pattern: re.Pattern[str]) -> AfterValidator:
    def check(value: str) -> str:
        found = pattern.search(value)
        if found is not None:
            raise PydanticCustomError(
                "forbidden_character",
                "Text must not contain the character U+{code_point} (control or unpaired "
                "surrogate)",
                {"code_point": f"{ord(found.group()):04X}"},
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


def omittable() -> Any:
    """Optional but not nullable: absent leaves the value alone, an explicit null is refused.

    Declared `X | None` so errors name the field plainly; published without `null`.
    """
    return Field(default=None, json_schema_extra=_drop_null)


def _refuse_null(value: Any) -> Any:
    if value is None:
        raise PydanticCustomError("null_not_allowed", "Field may be omitted but not null")
    return value


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
    "priority": "medium",
    "etag": '"1.1"',
}


class TaskCreate(TaskBase):
    model_config = ConfigDict(  # type: ignore[assignment]
        extra="forbid",
        json_schema_extra=examples({"title": "Buy milk", "description": "2 litres"}),
    )

    title: TaskTitle
    description: TaskDescription | None = None
    completed: StrictBool = False
    priority: TaskPriority = DEFAULT_PRIORITY


class TaskReplace(SQLModel):
    """A whole task: an absent description becomes null; an absent `completed` or
    `priority` stays as it is, so a client that does not know a field cannot wipe it."""

    model_config = ConfigDict(  # type: ignore[assignment]
        extra="forbid",
        json_schema_extra=examples(
            {"title": "Buy milk", "description": "2 litres, semi-skimmed", "completed": False}
        ),
    )

    title: TaskTitle
    description: TaskDescription | None = None
    completed: StrictBool | None = omittable()
    priority: TaskPriority | None = omittable()

    _kept_when_absent_not_null = validates("completed", "priority", mode="before")(_refuse_null)

    def changes(self) -> dict[str, Any]:
        fields = {"title", "description"} | (self.model_fields_set & {"completed", "priority"})
        return self.model_dump(include=fields)


class TaskUpdate(SQLModel):
    """Any subset of the editable fields; `description: null` clears the description."""

    model_config = ConfigDict(  # type: ignore[assignment]
        extra="forbid",
        json_schema_extra=examples(
            {"description": "2 litres, semi-skimmed"},
            {"completed": True},
            {"description": None},
        ),
    )

    title: TaskTitle | None = omittable()
    description: TaskDescription | None = None
    completed: StrictBool | None = omittable()
    priority: TaskPriority | None = omittable()

    _not_null = validates("title", "completed", "priority", mode="before")(_refuse_null)

    def changes(self) -> dict[str, Any]:
        return self.model_dump(exclude_unset=True)


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
    priority: TaskPriority
    etag: str = Field(
        description="The task's current ETag, as in the `ETag` header: send it in `If-Match` "
        "to change the task only if nobody else has since."
    )


class TaskStats(SQLModel):
    """The counters a todo list shows ("3 items left")."""

    model_config = ConfigDict(  # type: ignore[assignment]
        json_schema_extra=examples({"total": 5, "pending": 3, "completed": 2})
    )

    total: Int64
    pending: Int64
    completed: Int64


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
