"""Whatever a client sends, the answer is a 4xx problem, never a 500."""

import json
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import Request
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.helpers import assert_problem, create, error_locations, task_url, tasks_url
from todo_api.api.conditional import matching_versions, none_match
from todo_api.api.dependencies import reject_repeated_query_parameters
from todo_api.api.middleware.body_limit import DRAIN_MAX_BYTES

LIMIT = 64 * 1024
JSON = {"content-type": "application/json"}


async def _count_tasks(engine: AsyncEngine) -> int:
    async with engine.connect() as connection:
        return int((await connection.execute(text("SELECT count(*) FROM tasks"))).scalar_one())


def _body_of_size(size: int) -> bytes:
    prefix, suffix = b'{"title": "t", "description": "', b'"}'
    return prefix + b"x" * (size - len(prefix) - len(suffix)) + suffix


async def test_declared_oversized_body_is_413_before_reading(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    response = await client.post(tasks_url("alice"), content=_body_of_size(LIMIT + 1), headers=JSON)
    body = assert_problem(response, 413)
    assert str(LIMIT) in body["detail"]
    assert await _count_tasks(engine) == 0


async def test_body_at_the_limit_reaches_validation(client: httpx.AsyncClient) -> None:
    response = await client.post(tasks_url("alice"), content=_body_of_size(LIMIT), headers=JSON)
    assert ["body", "description"] in error_locations(response)  # too long, but read


class ChunkedBody:
    """A streamed body without Content-Length that records how much was pulled."""

    def __init__(self, total: int, chunk: int = 8192) -> None:
        self.total = total
        self.chunk = chunk
        self.pulled = 0

    async def __aiter__(self) -> AsyncIterator[bytes]:
        yield b'{"title": "t", "description": "'
        while self.pulled < self.total:
            self.pulled += self.chunk
            yield b"x" * self.chunk
        yield b'"}'


async def test_chunked_oversized_body_is_413_and_not_read_whole(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    stream = ChunkedBody(total=DRAIN_MAX_BYTES + 10 * 1024 * 1024)

    response = await client.post(tasks_url("alice"), content=stream, headers=JSON)

    assert_problem(response, 413)
    # Past the limit the rest is only drained, so that every client reads the 413, and
    # only up to DRAIN_MAX_BYTES (tests/test_body_drain.py).
    assert stream.pulled <= LIMIT + DRAIN_MAX_BYTES + 2 * stream.chunk
    assert await _count_tasks(engine) == 0


async def test_lying_content_length_is_caught_while_streaming(client: httpx.AsyncClient) -> None:
    stream = ChunkedBody(total=DRAIN_MAX_BYTES + 1024 * 1024)
    response = await client.post(
        tasks_url("alice"), content=stream, headers={**JSON, "content-length": "100"}
    )
    assert_problem(response, 413)
    assert stream.pulled <= LIMIT + DRAIN_MAX_BYTES + 2 * stream.chunk


@pytest.mark.parametrize(
    "content_type",
    ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", "xml"],
)
async def test_non_json_bodies_are_415(
    client: httpx.AsyncClient, engine: AsyncEngine, content_type: str
) -> None:
    response = await client.post(
        tasks_url("alice"), content=b'{"title": "t"}', headers={"content-type": content_type}
    )
    assert_problem(response, 415)
    assert await _count_tasks(engine) == 0


@pytest.mark.parametrize(
    "content_type",
    ["application/json", "application/json; charset=utf-8", "application/merge-patch+json"],
)
async def test_json_media_types_are_accepted(client: httpx.AsyncClient, content_type: str) -> None:
    response = await client.post(
        tasks_url("alice"), content=b'{"title": "t"}', headers={"content-type": content_type}
    )
    assert response.status_code == 201, response.text


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("PUT", "{task}"),
        ("PATCH", "{task}"),
        ("PATCH", "{task}/complete"),
        ("POST", "{tasks}/complete-all"),
    ],
)
async def test_every_operation_with_a_body_refuses_one_not_declared_as_json(
    client: httpx.AsyncClient, method: str, path: str
) -> None:
    task = await create(client, "alice", title="As it was")
    url = path.format(task=task_url("alice", task["id"]), tasks=tasks_url("alice"))
    body = b'{"title": "Changed", "completed": true}'

    refused = await client.request(
        method, url, content=body, headers={"content-type": "text/plain"}
    )
    utf16 = await client.request(method, url, content=body.decode().encode("utf-16"), headers=JSON)

    assert_problem(refused, 415)
    assert_problem(utf16, 400)
    after = (await client.get(task_url("alice", task["id"]))).json()
    assert (after["title"], after["completed"], after["etag"]) == ("As it was", False, task["etag"])


async def test_an_operation_without_a_body_ignores_a_text_one(client: httpx.AsyncClient) -> None:
    task = await create(client, "alice")
    response = await client.request(
        "GET",
        task_url("alice", task["id"]),
        content=b"hello",
        headers={"content-type": "text/plain"},
    )
    assert response.status_code == 200, response.text


async def test_body_without_content_type_is_415(client: httpx.AsyncClient) -> None:
    request = client.build_request("POST", tasks_url("alice"), content=b'{"title": "t"}')
    assert "content-type" not in request.headers
    assert_problem(await client.send(request), 415)


async def test_toggle_without_body_needs_no_content_type(client: httpx.AsyncClient) -> None:
    task = await create(client, "alice")
    response = await client.patch(f"{task_url('alice', task['id'])}/complete")
    assert response.status_code == 200


@pytest.mark.parametrize("depth", [100, 5_000, 30_000])
async def test_deeply_nested_json_is_4xx(client: httpx.AsyncClient, depth: int) -> None:
    raw = b'{"title": ' + b"[" * depth + b"]" * depth + b"}"
    response = await client.post(tasks_url("alice"), content=raw, headers=JSON)
    assert 400 <= response.status_code < 500
    assert_problem(response, response.status_code)


@pytest.mark.parametrize(
    "raw",
    [
        b"\xff\xfe not utf-8",
        b'{"title": "\xed\xa0\x80"}',  # a surrogate encoded as UTF-8 bytes: invalid UTF-8
        b'{"title": "\\udfff"}',
        b'{"title": "ok", "description": "\\ud83d"}',
        b'{"title": 1e999}',
        b'{"title": "t", "completed": 123456789012345678901234567890}',
        b'{"title": "t", "title": "duplicate key"}',
        b"\x00",
    ],
)
async def test_broken_bodies_are_4xx(
    client: httpx.AsyncClient, engine: AsyncEngine, raw: bytes
) -> None:
    response = await client.post(tasks_url("alice"), content=raw, headers=JSON)
    if raw.startswith(b'{"title": "t", "title"'):
        # Duplicate keys are legal JSON; the last one wins, as in every parser clients use.
        assert response.status_code == 201
        assert response.json()["title"] == "duplicate key"
        return
    assert 400 <= response.status_code < 500, response.text
    assert_problem(response, response.status_code)
    assert await _count_tasks(engine) == 0


@pytest.mark.parametrize(
    "encoding", ["utf-16", "utf-16-le", "utf-16-be", "utf-32", "utf-32-le", "utf-32-be"]
)
async def test_utf16_and_utf32_bodies_are_400_and_change_nothing(
    client: httpx.AsyncClient, engine: AsyncEngine, encoding: str
) -> None:
    async def send(method: str, url: str, body: dict[str, Any]) -> httpx.Response:
        raw = json.dumps(body).encode(encoding)
        return await client.request(method, url, content=raw, headers=JSON)

    response = await send("POST", tasks_url("alice"), {"title": "t"})
    assert "UTF-8" in assert_problem(response, 400)["detail"]
    assert await _count_tasks(engine) == 0

    task = await create(client, "alice")
    url = task_url("alice", task["id"])
    assert_problem(await send("PATCH", url, {"title": "changed"}), 400)
    assert_problem(await send("PATCH", f"{url}/complete", {"completed": True}), 400)
    assert (await client.get(url)).json() == task


async def test_utf8_encoded_surrogate_is_400(
    client: httpx.AsyncClient, engine: AsyncEngine
) -> None:
    raw = b'{"title": "\xed\xa0\x80"}'  # U+D800 encoded as if a character: not UTF-8
    assert_problem(await client.post(tasks_url("alice"), content=raw, headers=JSON), 400)
    assert await _count_tasks(engine) == 0


async def test_utf8_byte_order_mark_is_ignored(client: httpx.AsyncClient) -> None:
    # RFC 8259 lets a parser ignore it, and some Windows tools still write one.
    bom = b"\xef\xbb\xbf"
    response = await client.post(tasks_url("alice"), content=bom + b'{"title": "t"}', headers=JSON)
    assert response.status_code == 201, response.text
    assert response.json()["title"] == "t"
    url = task_url("alice", response.json()["id"])
    response = await client.patch(url, content=bom + b'{"title": "u"}', headers=JSON)
    assert response.status_code == 200, response.text
    assert response.json()["title"] == "u"


@pytest.mark.parametrize(
    "path",
    [
        "/api/%ED%A0%80/tasks",  # a lone surrogate, percent-encoded
        "/api/%00/tasks",
        "/api/" + "u" * 10_000 + "/tasks",
        "/api/alice/tasks/" + "9" * 10_000,
        "/api/alice/tasks/%F0%9F%8E%89",
        "/api/alice/tasks/1%00",
    ],
)
async def test_hostile_paths_are_4xx(client: httpx.AsyncClient, path: str) -> None:
    response = await client.get(path)
    assert response.status_code in {404, 414, 422}, response.text
    assert_problem(response, response.status_code)


@pytest.mark.parametrize(
    "query",
    [
        "limit=1&limit=2",
        "status=all&status=completed",
        "sort=title&sort=-title&offset=1&offset=2",
        "limit=99999999999999999999999",
        "offset=1e3",
        "sort=%00",
        "status=%ED%A0%80",
    ],
)
async def test_hostile_queries_are_422(client: httpx.AsyncClient, query: str) -> None:
    response = await client.get(f"{tasks_url('alice')}?{query}")
    assert_problem(response, 422)


async def test_repeated_parameter_is_named(client: httpx.AsyncClient) -> None:
    response = await client.get(f"{tasks_url('alice')}?limit=1&limit=2&offset=0")
    assert error_locations(response) == [["query", "limit"]]


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", "", None),
        ("POST", "", {"title": "t"}),
        ("GET", "/{id}", None),
        ("PATCH", "/{id}", {"title": "u"}),
        ("GET", "/{missing}", None),
        ("DELETE", "/{id}", None),
    ],
)
async def test_task_responses_are_not_cached_or_sniffed(
    client: httpx.AsyncClient, method: str, path: str, body: dict[str, Any] | None
) -> None:
    task = await create(client, "alice")
    url = tasks_url("alice") + path.format(id=task["id"], missing=task["id"] + 99)
    response = await client.request(method, url, json=body)
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["cache-control"] == "no-store"


async def test_error_and_health_responses_are_not_sniffed(client: httpx.AsyncClient) -> None:
    for response in (await client.get("/nope"), await client.get("/health")):
        assert response.headers["x-content-type-options"] == "nosniff"


async def test_validation_errors_never_echo_the_input(client: httpx.AsyncClient) -> None:
    secret = "sk_live_do_not_echo"
    response = await client.post(tasks_url("alice"), json={"title": "t", "token": secret})
    assert_problem(response, 422)
    assert secret not in response.text
    response = await client.patch(task_url("alice", 1), json={"completed": secret})
    assert secret not in response.text


# Sizes at which the quadratic parsers took tens of seconds; linear ones take milliseconds.
# Past the head limits, so called directly: these bound the work per byte, the limits the bytes.
# CPU time, which waiting for a core on a busy machine does not add to.
LINEAR_BOUND_SECONDS = 1.0


def test_entity_tag_lists_are_parsed_in_linear_time() -> None:
    header = '"",' * 40_000 + "," * 40_000  # 160 KB: 20 s before
    started = time.process_time()
    assert matching_versions(header, 7) == set()
    assert none_match(header, '"7.1"')
    assert time.process_time() - started < LINEAR_BOUND_SECONDS


async def test_repeated_parameter_check_is_linear_in_the_query() -> None:
    query = "&".join(f"p{i}" for i in range(40_000)).encode()  # 17,372 names took 6.9 s
    request = Request({"type": "http", "method": "GET", "query_string": query, "headers": []})
    started = time.process_time()
    await reject_repeated_query_parameters(request)
    assert time.process_time() - started < LINEAR_BOUND_SECONDS


async def test_oversized_url_and_headers_are_414_and_431(client: httpx.AsyncClient) -> None:
    long_query = await client.get(tasks_url("alice"), params={"q": "x" * 9000})
    assert_problem(long_query, 414)
    many_headers = {f"X-Filler-{i}": "y" * 100 for i in range(200)}
    too_many = await client.get(tasks_url("alice"), headers=many_headers)
    assert_problem(too_many, 431)
    # Inside the limits, nothing changes.
    assert (
        await client.get(tasks_url("alice"), headers={"X-Filler": "y" * 8000})
    ).status_code == 200
    for response in (long_query, too_many):
        assert response.headers["x-content-type-options"] == "nosniff"
        assert "x-request-id" in response.headers
