"""The published JSON Schema of a task body says exactly what validation accepts."""

import re
import unicodedata
from typing import Any

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from tests.helpers import create, error_locations, task_url, tasks_url
from todo_api.api.schemas import (
    DESCRIPTION_PATTERN,
    TAG_LIST_PATTERN,
    TAG_PATTERN,
    TITLE_PATTERN,
    TaskCreate,
    TaskReplace,
    TaskUpdate,
)
from todo_api.db.models import DESCRIPTION_MAX_LENGTH, TAG_MAX_LENGTH, TITLE_MAX_LENGTH

# Default-ignorable code points of the Basic Multilingual Plane: the first and last of each
# range.
INVISIBLE = (
    "\u00ad\u034f\u061c\u115f\u1160\u17b4\u17b5\u180b\u180f\u200b\u200f\u202a\u202e"
    "\u2060\u206f\u3164\ufe00\ufe0f\ufeff\uffa0\ufff0\ufff8"
)
# Text as a JSON client could send it: any code point but unpaired surrogates, with control
# characters, exotic spaces and invisible characters made frequent. U+E0020 is invisible too,
# but astral, so outside the pattern: validation must accept it just the same. A list of
# characters, not st.text: that merges its alphabet into one set and the few special
# characters would hardly ever be drawn.
text = st.lists(
    st.one_of(
        st.characters(exclude_categories=["Cs"]),
        st.sampled_from("\x00\t\n\r\x1b\x7f\x85\xa0\u2028\u3000 " + INVISIBLE + "\U000e0020"),
    ),
    max_size=TITLE_MAX_LENGTH + 5,
).map("".join)


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


# Tags are short: mostly letters, with the special characters frequent.
tag_text = st.lists(
    st.one_of(
        st.sampled_from(
            "aB, \t\n\x00\x7f\x85\xa0\u3000\u2066\u2069\u0301\u0958" + INVISIBLE + "\U000e0020"
        ),
        st.characters(exclude_categories=["Cs"]),
    ),
    max_size=45,
).map("".join)


@settings(max_examples=600)
@given(tag=tag_text)
def test_tag_pattern_matches_validation(tag: str) -> None:
    documented = re.fullmatch(TAG_PATTERN, tag) is not None
    # Beyond what a pattern can say: at most 40 characters in NFC too (U+0958 is two).
    fits = len(unicodedata.normalize("NFC", tag.strip())) <= TAG_MAX_LENGTH
    assert _accepts(title="t", tags=[tag]) == (documented and fits)
    # The filter's pattern takes the same tags, comma-separated.
    if "," not in tag:
        assert (re.fullmatch(TAG_LIST_PATTERN, f"{tag},work") is not None) == documented


def test_tag_list_pattern_takes_one_to_twenty_tags() -> None:
    assert re.fullmatch(TAG_LIST_PATTERN, ",".join(["work"] * 20))
    assert not re.fullmatch(TAG_LIST_PATTERN, ",".join(["work"] * 21))
    assert not re.fullmatch(TAG_LIST_PATTERN, "")


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


@pytest.mark.parametrize(
    "title",
    [
        "\ufeff",
        "\u200b",
        "\u2060",
        "\u00ad",
        "\u034f",
        "\u3164",
        "\u115f",
        "\ufe0f",
        INVISIBLE,
        " \ufeff\u3000\u200b ",
    ],
)
async def test_title_of_invisible_characters_is_422(client: httpx.AsyncClient, title: str) -> None:
    response = await client.post(tasks_url("alice"), json={"title": title})
    assert ["body", "title"] in error_locations(response)
    assert (await client.get(tasks_url("alice"))).json() == []


async def test_title_update_to_invisible_characters_is_422(client: httpx.AsyncClient) -> None:
    task = await create(client, "alice", title="Buy milk")
    response = await client.patch(task_url("alice", task["id"]), json={"title": "\ufeff\ufe0f"})
    assert ["body", "title"] in error_locations(response)
    assert (await client.get(task_url("alice", task["id"]))).json()["title"] == "Buy milk"


@pytest.mark.parametrize(
    ("sent", "stored"),
    [("\ufeffBuy milk", "\ufeffBuy milk"), ("  ok  ", "ok"), (" \u200bx ", "\u200bx")],
)
async def test_visible_title_is_kept_with_only_whitespace_trimmed(
    client: httpx.AsyncClient, sent: str, stored: str
) -> None:
    assert (await create(client, "alice", title=sent))["title"] == stored


def test_a_tag_that_is_too_long_only_in_nfc_is_refused() -> None:
    """U+0958 is written as two characters in NFC: 21 of them would not fit the column."""
    assert _accepts(title="t", tags=["\u0958" * 20])
    assert not _accepts(title="t", tags=["\u0958" * 21])
