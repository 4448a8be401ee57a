"""URLs are exact: one spelling per resource, ids percent-encoded, a root that points on."""

import httpx
import pytest
from fastapi import FastAPI

from tests.helpers import app_client, assert_problem, jwt_settings, tasks_url

HOSTILE_HOST = {"Host": "evil.example", "X-Forwarded-Host": "evil.example"}


@pytest.mark.parametrize("method", ["GET", "POST", "DELETE"])
@pytest.mark.parametrize("path", ["/api/alice/tasks/", "/api/alice/tasks/1/", "/api/alice/tags/"])
async def test_a_trailing_slash_is_a_404_that_says_so_never_a_redirect(
    client: httpx.AsyncClient, method: str, path: str
) -> None:
    response = await client.request(method, path, headers=HOSTILE_HOST)
    body = assert_problem(response, 404)
    assert "without the trailing slash" in body["detail"]
    assert "location" not in response.headers


async def test_an_unknown_url_is_a_plain_404(client: httpx.AsyncClient) -> None:
    body = assert_problem(await client.get("/no/such/thing/"), 404)
    assert body["detail"] == "Nothing exists at this URL."


async def test_a_trailing_slash_is_a_404_before_any_token_is_asked_for(database_url: str) -> None:
    """Nothing is routed, so nothing is authorized, and no redirect reveals a host."""
    async with app_client(database_url, **jwt_settings()) as client:
        response = await client.get("/api/alice/tasks/", headers=HOSTILE_HOST)
    assert_problem(response, 404)


async def test_user_ids_are_percent_encoded_in_location_and_link(
    client: httpx.AsyncClient,
) -> None:
    owner = "a|b@c:d"
    created = await client.post(tasks_url(owner), json={"title": "first"})
    assert created.status_code == 201, created.text
    location = created.headers["location"]
    assert location == f"http://testserver/api/a%7Cb@c:d/tasks/{created.json()['id']}"
    assert (await client.get(location)).json()["title"] == "first"
    await client.post(tasks_url(owner), json={"title": "second"})
    page = await client.get(tasks_url(owner), params={"limit": 1})
    assert (
        '<http://testserver/api/a%7Cb@c:d/tasks?offset=1&limit=1>; rel="next"'
        in (page.headers["link"])
    )


async def test_the_root_points_to_the_docs_and_the_api(client: httpx.AsyncClient) -> None:
    response = await client.get("/", headers=HOSTILE_HOST)
    assert response.status_code == 200
    index = response.json()
    assert index["docs"] == "/docs"
    assert index["openapi"] == "/openapi.json"
    assert index["tasks"] == "/api/{user_id}/tasks"
    assert "evil" not in response.text
    assert (await client.get(index["openapi"])).status_code == 200


async def test_the_root_gives_absolute_urls_under_public_base_url(database_url: str) -> None:
    async with app_client(database_url, public_base_url="https://api.example.com/todo") as client:
        index = (await client.get("/")).json()
    assert index["docs"] == "https://api.example.com/todo/docs"


@pytest.mark.parametrize("user_id", ["a b", "caf\u00e9", "x" * 129, "tab%09"])
async def test_a_bad_user_id_is_explained_in_words(client: httpx.AsyncClient, user_id: str) -> None:
    body = assert_problem(await client.get(f"/api/{user_id}/tasks"), 422)
    [error] = body["errors"]
    assert error["loc"] == ["path", "user_id"]
    assert error["msg"].startswith("A user id is 1 to 128 of the characters A-Z a-z 0-9")
    assert "^" not in body["detail"]
    assert "[" not in body["detail"]


def test_the_paths_kept_for_public_urls_are_the_routers_own(app: FastAPI) -> None:
    """`public_url` formats paths made at start-up; they are what the router would build."""
    paths = app.state.route_paths
    assert {"read_task", "list_tasks"} <= set(paths)
    for name, path in paths.items():
        params = {part[1:-1]: f"{part[1:-1]}-value" for part in path.split("/") if "{" in part}
        assert path.format(**params) == app.url_path_for(name, **params), name
