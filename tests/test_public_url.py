"""Location and Link: under PUBLIC_BASE_URL when set, whatever Host and X-Forwarded-* say."""

import os
import subprocess
import sys
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.helpers import app_client, task_url, tasks_url
from todo_api.settings import Settings

UNTRUSTED_PEER = ("203.0.113.9", 1234)
TRUSTED_PEER = ("127.0.0.1", 1234)  # the default FORWARDED_ALLOW_IPS
HOSTILE = {
    "Host": "evil.example",
    "X-Forwarded-Host": "evil-forwarded.example",
    "X-Forwarded-Proto": "http",
}


def client_of(
    database_url: str, peer: tuple[str, int], **settings: Any
) -> AbstractAsyncContextManager[httpx.AsyncClient]:
    """A client of an app with these settings, connecting from `peer`."""
    return app_client(database_url, peer=peer, **settings)


async def created_and_listed(client: httpx.AsyncClient, **headers: str) -> tuple[str, list[str]]:
    """The Location of a new task and the Link URLs of a middle page of three tasks."""
    for n in range(3):
        created = await client.post(tasks_url("alice"), json={"title": f"T{n}"}, headers=headers)
        assert created.status_code == 201, created.text
    listed = await client.get(
        tasks_url("alice"), params={"status": "all", "limit": 1, "offset": 1}, headers=headers
    )
    assert listed.status_code == 200, listed.text
    links = [listed.links[rel]["url"] for rel in ("next", "prev")]
    return created.headers["location"], links


@pytest.mark.parametrize(
    ("peer", "base"),
    [
        (UNTRUSTED_PEER, "https://api.example.com"),
        (TRUSTED_PEER, "https://api.example.com"),
        # A proxy that serves the API under /todo and strips the prefix.
        (TRUSTED_PEER, "https://example.com/todo"),
    ],
)
async def test_public_base_url_is_what_location_and_link_are_built_from(
    engine: AsyncEngine, database_url: str, peer: tuple[str, int], base: str
) -> None:
    async with client_of(database_url, peer, public_base_url=f"{base}/") as client:
        location, links = await created_and_listed(client, **HOSTILE)
        assert (await client.get(location.removeprefix(base))).status_code == 200
    task_id = int(location.rsplit("/", 1)[1])
    assert location == f"{base}{task_url('alice', task_id)}"
    assert links == [
        f"{base}/api/alice/tasks?status=all&offset=2&limit=1",
        f"{base}/api/alice/tasks?status=all&offset=0&limit=1",
    ]
    assert not any("evil" in url for url in [location, *links])


async def test_without_public_base_url_an_untrusted_clients_host_is_used(
    engine: AsyncEngine, database_url: str
) -> None:
    """Documented: the URLs are the request's own, so production sets PUBLIC_BASE_URL.

    Only the client that sent the Host sees them; its X-Forwarded-* are ignored.
    """
    async with client_of(database_url, UNTRUSTED_PEER) as client:
        location, links = await created_and_listed(
            client, **(HOSTILE | {"X-Forwarded-Proto": "https"})
        )
    assert location.startswith("http://evil.example/api/alice/tasks/")
    assert all(link.startswith("http://evil.example/api/alice/tasks?") for link in links)


async def test_without_public_base_url_a_trusted_proxys_forwarded_host_is_used(
    engine: AsyncEngine, database_url: str
) -> None:
    headers = {"X-Forwarded-Host": "api.example.com:8443", "X-Forwarded-Proto": "https"}
    async with client_of(database_url, TRUSTED_PEER) as client:
        location, links = await created_and_listed(client, **headers)
    assert location.startswith("https://api.example.com:8443/api/alice/tasks/")
    assert all(link.startswith("https://api.example.com:8443/api/alice/tasks?") for link in links)


@pytest.mark.parametrize(
    ("value", "normalised"),
    [
        ("https://api.example.com", "https://api.example.com"),
        ("https://example.com/todo/", "https://example.com/todo"),
        ("HTTP://[::1]:8080/", "http://[::1]:8080"),
        ("", None),
    ],
)
def test_public_base_url_is_normalised(value: str, normalised: str | None) -> None:
    assert Settings(_env_file=None, public_base_url=value).public_base_url == normalised


@pytest.mark.parametrize(
    "value",
    [
        "api.example.com",
        "/todo",
        "ftp://api.example.com",
        "https://",
        "https://api.example.com/?x=1",
        "https://api.example.com/#top",
        "https://user:secret@api.example.com",
        "https://api.example.com:99999",
        "https://api example.com",
    ],
)
def test_invalid_public_base_url_is_refused(value: str) -> None:
    with pytest.raises(ValidationError, match="PUBLIC_BASE_URL must be an http or https URL"):
        Settings(_env_file=None, public_base_url=value)


def test_invalid_public_base_url_stops_the_server_at_start_up(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "todo_api"],
        env=os.environ | {"PUBLIC_BASE_URL": "https://api.example.com/?v=1"},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode != 0
    assert "PUBLIC_BASE_URL must be an http or https URL" in result.stderr
