"""Response bodies are the bytes pydantic would make of them, by a faster encoder."""

from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

import httpx
import pydantic_core
from fastapi import FastAPI
from hypothesis import given
from hypothesis import strategies as st

from tests.helpers import create
from todo_api.api.conditional import public_task
from todo_api.api.json_encoding import to_json
from todo_api.db import tasks

USER = "encoded"

_ZONES = st.sampled_from(
    [UTC, timezone(timedelta(hours=9)), timezone(timedelta(hours=-3, minutes=-30))]
)
_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    # Any text but unpaired surrogates, which the API refuses on the way in.
    | st.text(st.characters(exclude_categories=["Cs"]))
    | st.dates()
    | st.datetimes(timezones=_ZONES)
)
_VALUES = st.recursive(
    _SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


@given(_VALUES)
def test_any_value_a_response_holds_encodes_as_pydantic_encodes_it(value: Any) -> None:
    assert to_json(value) == pydantic_core.to_json(value)


async def test_every_kind_of_task_encodes_as_pydantic_encodes_it(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    await create(client, USER, title="Plain")
    await create(
        client,
        USER,
        title="Everything \u00e9\u2028</script>",
        description='line\nbreak "quoted" \\ \U0001f600',
        priority="high",
        tags=["home", "Work"],
        due_at="2027-03-01T09:30:00+09:00",
        recurrence={"frequency": "weekly", "interval": 2, "ends": {"count": 5}},
        reminder={"minutes_before": 15},
    )
    await create(
        client,
        USER,
        title="Daily until",
        due_date="2027-01-04",
        recurrence={"frequency": "daily", "ends": {"until": "2027-02-01"}},
    )
    done = await create(client, USER, title="Done", completed=True)
    assert done["completed_at"] is not None

    page = await tasks.list_tasks(app.state.database, owner=USER, limit=10)
    public = [public_task(record) for record in page.tasks]

    assert len(public) == 4
    assert to_json(public) == pydantic_core.to_json(public)
    assert [type(task["created_at"]) for task in public] == [datetime] * 4
    assert any(isinstance(task.get("due_date"), date) for task in public)
