"""Every error is one problem+json shape with the right status, never a stack trace."""

import logging
import re

import httpx
import pytest

from tests.helpers import assert_problem, create, error_locations, task_url, tasks_url
from todo_api.api.caller import USER_ID_PATTERN
from todo_api.db import tasks as task_queries


async def test_unknown_route_is_404_problem(client: httpx.AsyncClient) -> None:
    for path in ("/nope", "/api", "/api/alice", "/api/alice/tasks/1/2/3"):
        assert_problem(await client.get(path), 404)


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("DELETE", "/api/alice/tasks", "GET, HEAD, POST"),
        ("PUT", "/api/alice/tasks", "GET, HEAD, POST"),
        ("POST", "/api/alice/tasks/1", "GET, HEAD, PUT, PATCH, DELETE"),
        ("GET", "/api/alice/tasks/1/complete", "PATCH"),
        ("POST", "/health", "GET, HEAD"),
    ],
)
async def test_wrong_method_is_405_with_allow(
    client: httpx.AsyncClient, method: str, path: str, allowed: str
) -> None:
    response = await client.request(method, path)
    assert_problem(response, 405)
    assert response.headers["allow"] == allowed


@pytest.mark.parametrize(
    "user_id",
    ["a b", "a/b", "émile", "a%00b", "semi;colon", "x" * 129, "quote'", "<script>"],
)
async def test_invalid_user_id_is_422(client: httpx.AsyncClient, user_id: str) -> None:
    response = await client.get(tasks_url(user_id))
    if "/" in user_id:
        assert_problem(response, 404)  # another path altogether
        return
    assert ["path", "user_id"] in error_locations(response)


# httpx removes literal dot segments before sending, so they go percent-encoded; the app
# routes on the decoded path and sees them exactly as a literal `.` or `..` from curl.
@pytest.mark.parametrize("user_id", ["%2e", "%2e%2e", "%2E%2E", ".%2e", "%2e."])
async def test_dot_segment_user_id_is_422(client: httpx.AsyncClient, user_id: str) -> None:
    for response in (
        await client.get(tasks_url(user_id)),
        await client.post(tasks_url(user_id), json={"title": "t"}),
        await client.get(task_url(user_id, 1)),
    ):
        assert ["path", "user_id"] in error_locations(response)


async def test_published_user_id_pattern_refuses_dot_segments(
    client: httpx.AsyncClient,
) -> None:
    operation = (await client.get("/openapi.json")).json()["paths"]["/api/{user_id}/tasks"]["get"]
    (user_id,) = [param for param in operation["parameters"] if param["name"] == "user_id"]
    pattern = user_id["schema"]["pattern"]
    assert pattern == USER_ID_PATTERN
    assert not any(re.fullmatch(pattern, dots) for dots in (".", ".."))
    assert all(re.fullmatch(pattern, valid) for valid in ("...", ".a", "a.", "..a", "a" * 128))
    assert not re.fullmatch(pattern, "a" * 129)


@pytest.mark.parametrize(
    "user_id", ["a", "x" * 128, "user_1", "a-b.c:d@e|f", "42", "...", ".a", "a.", "..a"]
)
async def test_valid_user_ids(client: httpx.AsyncClient, user_id: str) -> None:
    task = await create(client, user_id)
    assert task["user_id"] == user_id
    assert (await client.get(task_url(user_id, task["id"]))).status_code == 200


@pytest.mark.parametrize("task_id", ["abc", "1.5", "1e3", "0x10", "%20"])
async def test_non_integer_task_id_is_422(client: httpx.AsyncClient, task_id: str) -> None:
    assert ["path", "task_id"] in error_locations(await client.get(task_url("alice", task_id)))


@pytest.mark.parametrize(
    "task_id", ["0", "-1", str(2**63), str(2**64), "9" * 40, str(-(2**63) - 1)]
)
@pytest.mark.parametrize("method", ["GET", "PUT", "PATCH", "DELETE"])
async def test_impossible_task_ids_are_4xx_never_500(
    client: httpx.AsyncClient, task_id: str, method: str
) -> None:
    response = await client.request(method, task_url("alice", task_id), json={"title": "t"})
    assert response.status_code in {404, 422}
    assert_problem(response, response.status_code)


async def test_largest_bigint_id_is_a_plain_404(client: httpx.AsyncClient) -> None:
    assert_problem(await client.get(task_url("alice", 2**63 - 1)), 404)


async def test_unexpected_failure_is_500_problem_and_logged(
    client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    async def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("secret internals")

    monkeypatch.setattr(task_queries, "get_task", broken)

    with caplog.at_level(logging.ERROR):
        response = await client.get(task_url("alice", 1))

    body = assert_problem(response, 500)
    assert "secret" not in response.text
    assert "Traceback" not in response.text
    assert set(body) == {"type", "title", "status", "detail"}
    assert any(
        record.exc_info and "secret internals" in str(record.exc_info[1])
        for record in caplog.records
    )


async def test_unreachable_database_is_503_with_retry_after(
    offline_client: httpx.AsyncClient,
) -> None:
    for response in (
        await offline_client.get(tasks_url("alice")),
        await offline_client.post(tasks_url("alice"), json={"title": "t"}),
        await offline_client.get(task_url("alice", 1)),
    ):
        assert_problem(response, 503)
        assert int(response.headers["retry-after"]) > 0


async def test_validation_happens_before_the_database(offline_client: httpx.AsyncClient) -> None:
    response = await offline_client.post(tasks_url("alice"), json={"title": ""})
    assert_problem(response, 422)
