"""The published JSON Schema of a task body says exactly what validation accepts."""

import re
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from todo_api.api.schemas import (
    DESCRIPTION_PATTERN,
    TITLE_PATTERN,
    TaskCreate,
    TaskReplace,
    TaskUpdate,
)
from todo_api.db.models import DESCRIPTION_MAX_LENGTH, TITLE_MAX_LENGTH

# Text as a JSON client could send it: any code point but unpaired surrogates, with control
# characters and exotic spaces made frequent.
text = st.text(
    alphabet=st.one_of(
        st.characters(exclude_categories=["Cs"]),
        st.sampled_from("\x00\t\n\r\x1b\x7f\x85\xa0\u2028\u3000 "),
    ),
    max_size=TITLE_MAX_LENGTH + 5,
)


def _accepts(**body: Any) -> bool:
    try:
        TaskCreate.model_validate(body)
    except ValidationError:
        return False
    return True


@settings(max_examples=400)
@given(title=text)
def test_title_pattern_and_length_match_validation(title: str) -> None:
    documented = 1 <= len(title) <= TITLE_MAX_LENGTH and re.fullmatch(TITLE_PATTERN, title)
    assert _accepts(title=title) == bool(documented)


@settings(max_examples=400)
@given(description=text)
def test_description_pattern_and_length_match_validation(description: str) -> None:
    documented = len(description) <= DESCRIPTION_MAX_LENGTH and re.fullmatch(
        DESCRIPTION_PATTERN, description
    )
    assert _accepts(title="t", description=description) == bool(documented)


def test_schema_publishes_the_rules() -> None:
    title = TaskCreate.model_json_schema()["properties"]["title"]
    assert title["pattern"] == TITLE_PATTERN
    assert (title["minLength"], title["maxLength"]) == (1, TITLE_MAX_LENGTH)


@pytest.mark.parametrize(
    ("model", "field"),
    [(TaskReplace, "completed"), (TaskUpdate, "completed"), (TaskUpdate, "title")],
)
def test_omittable_fields_are_documented_as_not_nullable(model: Any, field: str) -> None:
    schema = model.model_json_schema()["properties"][field]
    assert "anyOf" not in schema
    assert schema.get("type") != "null"
    assert field not in model.model_json_schema().get("required", [])


def test_title_is_trimmed_after_checking() -> None:
    assert TaskCreate.model_validate({"title": "  padded  "}).title == "padded"
    with pytest.raises(ValidationError):
        TaskCreate.model_validate({"title": " " * 3})
    with pytest.raises(ValidationError):
        TaskCreate.model_validate({"title": "x" * TITLE_MAX_LENGTH + " "})
