"""Tags: a list as sent, compared ignoring case; filtered on and counted per owner."""

import asyncio
import json
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.helpers import assert_problem, create, error_locations, task_url, tasks_url


async def _stored(engine: AsyncEngine, task_id: int) -> tuple[list[str], list[tuple[str, str]]]:
    """The task row's tags and its tag rows (key, name), by key."""
    async with engine.connect() as connection:
        on_task = await connection.execute(
            text("SELECT tags FROM tasks WHERE id = :id"), {"id": task_id}
        )
        rows = await connection.execute(
            text("SELECT key, name, user_id FROM task_tags WHERE task_id = :id ORDER BY key"),
            {"id": task_id},
        )
        tags = json.loads(on_task.scalar_one())
        return tags, [(key, name) for key, name, _user in rows]


async def _tag_rows(engine: AsyncEngine) -> int:
    async with engine.connect() as connection:
        return int((await connection.execute(text("SELECT count(*) FROM task_tags"))).scalar_one())


async def test_tags_are_kept_trimmed_in_order_and_indexed_ignoring_case(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    task = await create(client, "alice", title="T", tags=["  Work ", "home", "Straße"])

    assert task["tags"] == ["Work", "home", "Straße"]
    assert (await client.get(task_url("alice", task["id"]))).json()["tags"] == task["tags"]
    stored, rows = await _stored(engine, task["id"])
    assert stored == ["Work", "home", "Straße"]
    assert rows == [("home", "home"), ("strasse", "Straße"), ("work", "Work")]
    assert (await create(client, "alice", title="Untagged"))["tags"] == []


@pytest.mark.parametrize(
    ("tags", "location"),
    [
        pytest.param(["Work", "work"], ["body", "tags"], id="same-ignoring-case"),
        pytest.param(["straße", "STRASSE"], ["body", "tags"], id="same-case-folded"),
        pytest.param(["home", " home "], ["body", "tags"], id="same-once-trimmed"),
        pytest.param(["a,b"], ["body", "tags", 0], id="comma"),
        pytest.param(["ok", "a\tb"], ["body", "tags", 1], id="tab"),
        pytest.param(["a\nb"], ["body", "tags", 0], id="newline"),
        pytest.param(["\x00"], ["body", "tags", 0], id="nul"),
        pytest.param([""], ["body", "tags", 0], id="empty"),
        pytest.param(["   "], ["body", "tags", 0], id="blank"),
        pytest.param(["\u200b"], ["body", "tags", 0], id="invisible"),
        pytest.param(["\u00e9t\u00e9", "e\u0301te\u0301"], ["body", "tags"], id="same-in-nfc"),
        pytest.param(["a\u202eb"], ["body", "tags", 0], id="bidi-override"),
        pytest.param(["x\u2066y\u2069"], ["body", "tags", 0], id="bidi-isolate"),
        pytest.param(["\u0958" * 21], ["body", "tags", 0], id="41-characters-in-nfc"),
        pytest.param(["x" * 41], ["body", "tags", 0], id="41-characters"),
        pytest.param([f"t{i}" for i in range(21)], ["body", "tags"], id="21-tags"),
        pytest.param("work", ["body", "tags"], id="not-a-list"),
        pytest.param([1], ["body", "tags", 0], id="not-a-string"),
        pytest.param(None, ["body", "tags"], id="null"),
    ],
)
@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH"])
async def test_invalid_tags_are_422_and_change_nothing(
    client: httpx.AsyncClient, engine: AsyncEngine, method: str, tags: Any, location: list[Any]
) -> None:
    task = await create(client, "alice", title="T", tags=["keep"])
    url = tasks_url("alice") if method == "POST" else task_url("alice", task["id"])

    response = await client.request(method, url, json={"title": "T", "tags": tags})

    assert_problem(response, 422)
    assert error_locations(response) == [location]
    assert await _stored(engine, task["id"]) == (["keep"], [("keep", "keep")])
    assert await _tag_rows(engine) == 1


async def test_the_limits_are_on_the_trimmed_tag_and_the_count(
    client: httpx.AsyncClient,
) -> None:
    longest = "  " + "x" * 40 + "  "
    many = [f"t{i}" for i in range(20)]
    task = await create(client, "alice", title="T", tags=[longest, "a b"])
    assert task["tags"] == ["x" * 40, "a b"]
    assert (await create(client, "alice", title="T", tags=many))["tags"] == many


async def test_patch_replaces_tags_and_moves_the_etag_only_when_they_differ(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    task = await create(client, "alice", title="T", tags=["work", "home"])
    url = task_url("alice", task["id"])

    same = await client.patch(url, json={"tags": ["work", "home"]})
    assert same.json() == task  # same ETag, same updated_at

    reordered = await client.patch(url, json={"tags": ["home", "work"]})
    assert reordered.json()["tags"] == ["home", "work"]
    assert reordered.json()["etag"] != task["etag"]
    assert reordered.json()["updated_at"] > task["updated_at"]

    recased = await client.patch(url, json={"tags": ["Home", "work"]})
    assert recased.json()["etag"] != reordered.json()["etag"]
    assert await _stored(engine, task["id"]) == (
        ["Home", "work"],
        [("home", "Home"), ("work", "work")],
    )

    cleared = await client.patch(url, json={"tags": []})
    assert cleared.json()["tags"] == []
    assert await _stored(engine, task["id"]) == ([], [])


async def test_put_without_tags_keeps_them_and_with_tags_replaces_them(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    task = await create(client, "alice", title="Old", tags=["work"])
    url = task_url("alice", task["id"])

    kept = await client.put(url, json={"title": "New"})
    assert kept.json()["tags"] == ["work"]

    replaced = await client.put(url, json={"title": "New", "tags": ["home"]})
    assert replaced.json()["tags"] == ["home"]
    assert await _stored(engine, task["id"]) == (["home"], [("home", "home")])


async def test_a_failed_if_match_leaves_the_tags(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    task = await create(client, "alice", title="T", tags=["work"])
    url = task_url("alice", task["id"])

    stale = await client.patch(url, json={"tags": ["home"]}, headers={"If-Match": '"1.99"'})
    assert_problem(stale, 412)
    assert await _stored(engine, task["id"]) == (["work"], [("work", "work")])

    fresh = await client.patch(url, json={"tags": ["home"]}, headers={"If-Match": task["etag"]})
    assert fresh.status_code == 200
    assert await _stored(engine, task["id"]) == (["home"], [("home", "home")])


async def test_a_replayed_create_stores_the_tags_once(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    body = {"title": "T", "tags": ["work", "home"]}
    headers = {"Idempotency-Key": "tags-once"}
    first = await client.post(tasks_url("alice"), json=body, headers=headers)
    again = await client.post(tasks_url("alice"), json=body, headers=headers)

    assert first.status_code == again.status_code == 201
    assert again.headers["idempotent-replayed"] == "true"
    assert again.json() == first.json()
    assert await _tag_rows(engine) == 2


async def _titles(client: httpx.AsyncClient, user: str = "alice", **params: str) -> list[str]:
    response = await client.get(tasks_url(user), params={"sort": "title", **params})
    assert response.status_code == 200, response.text
    titles = [task["title"] for task in response.json()]
    assert response.headers["x-total-count"] == str(len(titles))
    return titles


async def test_the_filter_wants_every_tag_ignoring_case(client: httpx.AsyncClient) -> None:
    await create(client, "alice", title="Both", tags=["Work", "home"])
    await create(client, "alice", title="Work only", tags=["work"])
    await create(client, "alice", title="Home only", tags=["HOME"])
    await create(client, "alice", title="Street", tags=["Straße"])
    await create(client, "alice", title="None")
    await create(client, "bob", title="Bob's", tags=["work", "home"])

    assert await _titles(client, tags="work") == ["Both", "Work only"]
    assert await _titles(client, tags="WORK,home") == ["Both"]
    assert await _titles(client, tags=" home , work ") == ["Both"]
    assert await _titles(client, tags="work,work,Work") == ["Both", "Work only"]
    assert await _titles(client, tags="strasse") == ["Street"]
    assert await _titles(client, tags="work,home,errands") == []
    assert await _titles(client, tags="nobody") == []
    assert await _titles(client, "bob", tags="work") == ["Bob's"]


async def test_the_tag_filter_combines_with_the_others(client: httpx.AsyncClient) -> None:
    done = await create(client, "alice", title="Work milk", tags=["work"])
    await client.patch(f"{task_url('alice', done['id'])}/complete")
    await create(client, "alice", title="Work bread", tags=["work"], priority="high")
    await create(client, "alice", title="Work eggs", tags=["work"], due_date="2020-01-01")
    await create(client, "alice", title="Home bread", tags=["home"], priority="high")

    assert await _titles(client, tags="work", status="pending") == ["Work bread", "Work eggs"]
    assert await _titles(client, tags="work", q="bread") == ["Work bread"]
    assert await _titles(client, tags="work", priority="high") == ["Work bread"]
    assert await _titles(client, tags="work", overdue="true") == ["Work eggs"]
    page = await client.get(tasks_url("alice"), params={"tags": "work", "limit": 1, "offset": 1})
    assert page.headers["x-total-count"] == "3"
    assert len(page.json()) == 1
    beyond = await client.get(tasks_url("alice"), params={"tags": "work", "offset": 10})
    assert beyond.json() == []
    assert beyond.headers["x-total-count"] == "3"


@pytest.mark.parametrize(
    "value",
    [
        pytest.param("", id="empty"),
        pytest.param("work,", id="trailing-comma"),
        pytest.param("work,,home", id="empty-item"),
        pytest.param("work, ,home", id="blank-item"),
        pytest.param("a\tb", id="tab"),
        pytest.param("x" * 41, id="41-characters"),
        pytest.param(",".join(f"t{i}" for i in range(21)), id="21-tags"),
    ],
)
async def test_a_malformed_tag_filter_is_422(client: httpx.AsyncClient, value: str) -> None:
    response = await client.get(tasks_url("alice"), params={"tags": value})
    assert error_locations(response) == [["query", "tags"]]
    # Said plainly, not as the published pattern.
    assert len(response.json()["errors"][0]["msg"]) < 120


async def test_the_tag_filter_says_what_is_wrong(client: httpx.AsyncClient) -> None:
    async def message(value: str) -> str:
        response = await client.get(tasks_url("alice"), params={"tags": value})
        return str(assert_problem(response, 422)["errors"][0]["msg"])

    assert await message(",".join(f"t{i}" for i in range(21))) == "At most 20 tags"
    assert await message("work,,home") == "A tag must contain a visible character"
    assert "U+002C" not in await message("x" * 41)
    assert await message("x" * 41) == "A tag has at most 40 characters"


async def test_tags_are_counted_per_owner_by_name_ignoring_case(
    client: httpx.AsyncClient,
) -> None:
    assert (await client.get("/api/alice/tags")).json() == []
    await create(client, "alice", title="a", tags=["work", "Home"])
    await create(client, "alice", title="b", tags=["Work", "errands"])
    done = await create(client, "alice", title="c", tags=["work"])
    await client.patch(f"{task_url('alice', done['id'])}/complete")
    await create(client, "bob", title="d", tags=["work", "bobs"])

    response = await client.get("/api/alice/tags")

    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    # One tag per key, named by the first spelling in code-point order (upper case first).
    assert response.json() == [
        {"name": "errands", "count": 1},
        {"name": "Home", "count": 1},
        {"name": "Work", "count": 3},
    ]
    assert (await client.get("/api/bob/tags")).json() == [
        {"name": "bobs", "count": 1},
        {"name": "work", "count": 1},
    ]


async def test_the_counts_have_an_etag_for_polling(client: httpx.AsyncClient) -> None:
    await create(client, "alice", title="a", tags=["work"])
    first = await client.get("/api/alice/tags")
    etag = first.headers["etag"]

    unchanged = await client.get("/api/alice/tags", headers={"If-None-Match": etag})
    assert unchanged.status_code == 304
    assert unchanged.headers["etag"] == etag
    assert unchanged.content == b""

    await create(client, "alice", title="b", tags=["work"])
    changed = await client.get("/api/alice/tags", headers={"If-None-Match": etag})
    assert changed.status_code == 200
    assert changed.json() == [{"name": "work", "count": 2}]
    assert changed.headers["etag"] != etag


async def test_a_tag_no_task_carries_disappears_from_the_counts(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    one = await create(client, "alice", title="a", tags=["once", "kept"])
    two = await create(client, "alice", title="b", tags=["done", "kept"])
    await client.patch(f"{task_url('alice', two['id'])}/complete")

    assert (await client.delete(task_url("alice", one["id"]))).status_code == 204
    names = [tag["name"] for tag in (await client.get("/api/alice/tags")).json()]
    assert names == ["done", "kept"]

    assert (await client.delete(f"{tasks_url('alice')}/completed")).json() == {"deleted": 1}
    assert (await client.get("/api/alice/tags")).json() == []
    assert await _tag_rows(engine) == 0


async def test_concurrent_tag_edits_leave_the_rows_matching_the_task(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    task = await create(client, "alice", title="T", tags=["start"])
    url = task_url("alice", task["id"])
    lists = [[f"tag{i}", f"shared{i % 3}", "common"] for i in range(12)]

    responses = await asyncio.gather(*(client.patch(url, json={"tags": tags}) for tags in lists))

    assert all(response.status_code == 200 for response in responses)
    final, rows = await _stored(engine, task["id"])
    assert final in lists
    assert rows == sorted((tag.casefold(), tag) for tag in final)
    assert await _tag_rows(engine) == 3


async def test_tags_are_stored_in_nfc_and_found_however_they_are_composed(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    decomposed, composed = "Cafe\u0301", "Caf\u00e9"
    task = await create(client, "alice", title="T", tags=[decomposed])
    assert task["tags"] == [composed]
    assert await _stored(engine, task["id"]) == ([composed], [("caf\u00e9", composed)])
    for spelling in (decomposed, composed, "CAFE\u0301"):
        listed = await client.get(tasks_url("alice"), params={"tags": spelling})
        assert [found["id"] for found in listed.json()] == [task["id"]], spelling
    await create(client, "alice", title="U", tags=[composed])
    counts = (await client.get("/api/alice/tags")).json()
    assert [(tag["name"], tag["count"]) for tag in counts] == [(composed, 2)]


async def test_bidirectional_controls_stay_in_titles_and_descriptions(
    client: httpx.AsyncClient,
) -> None:
    """Right-to-left text needs them; a task is only ever shown to its owner, and a frontend
    shows text with `dir="auto"` in an isolating element (docs/design.md)."""
    title = "\u2067\u05e7\u05e0\u05d5\u05ea \u05d7\u05dc\u05d1\u2069 milk"
    task = await create(client, "alice", title=title, description="a\u202eb\u202c")
    assert (task["title"], task["description"]) == (title, "a\u202eb\u202c")
