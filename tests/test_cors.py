"""CORS preflights: allowed ones as browsers need them, refused ones as problem details."""

import pytest

from tests.helpers import app_client, assert_problem, tasks_url

ORIGIN = "http://localhost:3000"


@pytest.mark.parametrize(
    ("origin", "method", "headers", "refused"),
    [
        ("https://evil.example", "GET", "", "origin"),
        (ORIGIN, "TRACE", "", "method"),
        (ORIGIN, "PATCH", "x-secret", "headers"),
    ],
)
async def test_a_refused_preflight_is_a_problem_naming_what_was_refused(
    database_url: str, origin: str, method: str, headers: str, refused: str
) -> None:
    async with app_client(database_url, cors_origins=[ORIGIN]) as client:
        asked = {"Origin": origin, "Access-Control-Request-Method": method}
        if headers:
            asked["Access-Control-Request-Headers"] = headers
        response = await client.options(tasks_url("alice"), headers=asked)
    body = assert_problem(response, 400)
    assert body["type"] == "urn:todo-api:cors-refused"
    assert f"refused: {refused}" in body["detail"]
    assert "CORS_ORIGINS" in body["detail"]
    # Nothing that would let a browser go on with the request.
    assert "access-control-allow-origin" not in response.headers
    assert response.headers["x-content-type-options"] == "nosniff"


async def test_an_allowed_preflight_is_unchanged(database_url: str) -> None:
    async with app_client(database_url, cors_origins=[ORIGIN]) as client:
        response = await client.options(
            tasks_url("alice"),
            headers={
                "Origin": ORIGIN,
                "Access-Control-Request-Method": "PATCH",
                "Access-Control-Request-Headers": "if-match, content-type",
            },
        )
    assert response.status_code == 200, response.text
    assert response.headers["access-control-allow-origin"] == ORIGIN
    assert response.headers["access-control-allow-credentials"] == "true"
    assert response.headers["x-content-type-options"] == "nosniff"
