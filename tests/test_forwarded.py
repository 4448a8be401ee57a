"""X-Forwarded-* only from FORWARDED_ALLOW_IPS, and 400 for a Host that is not host[:port]."""

from collections.abc import Sequence
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from starlette.responses import PlainTextResponse
from starlette.types import Receive, Scope, Send

from tests.helpers import assert_problem, tasks_url
from todo_api.api.middleware.forwarded import ForwardedHeadersMiddleware, trusted_proxies
from todo_api.app import create_app
from todo_api.settings import Settings

UNTRUSTED_PEER = ("203.0.113.9", 1234)


async def scope_seen(
    peer: tuple[str, int], headers: Sequence[tuple[str, str]], trusted: str = "127.0.0.1"
) -> tuple[int, dict[str, Any]]:
    """The status, and the scope the app behind the middleware got (empty if not called)."""
    seen: dict[str, Any] = {}

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        seen.update(scope)
        await PlainTextResponse("ok")(scope, receive, send)

    middleware = ForwardedHeadersMiddleware(app, trusted=trusted_proxies(trusted))
    transport = httpx.ASGITransport(app=middleware, client=peer)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        response = await client.get("/", headers=list(headers))
    return response.status_code, seen


@pytest.mark.parametrize(
    ("trusted", "peer", "forwarded_for", "client"),
    [
        # The rightmost address no trusted proxy added is the client; what is left of it, the
        # client itself may have written.
        ("127.0.0.1", "127.0.0.1", "forged, 198.51.100.7", ("198.51.100.7", 0)),
        ("127.0.0.1, 10.0.0.0/8", "127.0.0.1", "198.51.100.7, 10.1.2.3", ("198.51.100.7", 0)),
        ("10.0.0.0/8", "10.9.9.9", "10.1.1.1, 10.2.2.2", ("10.1.1.1", 0)),
        ("127.0.0.1", "127.0.0.1", "198.51.100.7:4711", ("198.51.100.7", 4711)),
        ("127.0.0.1", "127.0.0.1", "[2001:db8::7]:4711", ("2001:db8::7", 4711)),
        ("127.0.0.1", "127.0.0.1", "2001:db8::7", ("2001:db8::7", 0)),
        ("::1", "::1", "198.51.100.7", ("198.51.100.7", 0)),
        ("127.0.0.1", "::ffff:127.0.0.1", "198.51.100.7", ("198.51.100.7", 0)),
        ("*", "203.0.113.9", "198.51.100.7", ("198.51.100.7", 0)),
        ("127.0.0.1", "203.0.113.9", "198.51.100.7", ("203.0.113.9", 1234)),
        ("192.0.2.1", "127.0.0.1", "198.51.100.7", ("127.0.0.1", 1234)),
    ],
)
async def test_forwarded_for_names_the_client_only_from_trusted_proxies(
    trusted: str, peer: str, forwarded_for: str, client: tuple[str, int]
) -> None:
    status, scope = await scope_seen(
        (peer, 1234), [("X-Forwarded-For", forwarded_for)], trusted=trusted
    )
    assert status == 200
    assert tuple(scope["client"]) == client


async def test_repeated_forwarded_lines_are_one_list() -> None:
    _status, scope = await scope_seen(
        ("127.0.0.1", 1234),
        [
            ("X-Forwarded-For", "198.51.100.7"),
            ("X-Forwarded-For", "127.0.0.1"),
            ("X-Forwarded-Proto", "http"),
            ("X-Forwarded-Proto", "https"),
        ],
    )
    assert tuple(scope["client"]) == ("198.51.100.7", 0)
    assert scope["scheme"] == "https"  # the value the nearest proxy set


@pytest.mark.parametrize(
    ("peer", "proto", "scheme"),
    [
        ("127.0.0.1", "https", "https"),
        ("127.0.0.1", "HTTPS", "https"),
        ("127.0.0.1", "javascript", "http"),
        ("203.0.113.9", "https", "http"),
    ],
)
async def test_forwarded_proto_is_the_scheme_only_from_trusted_proxies(
    peer: str, proto: str, scheme: str
) -> None:
    _status, scope = await scope_seen((peer, 1234), [("X-Forwarded-Proto", proto)])
    assert scope["scheme"] == scheme


@pytest.mark.parametrize(
    "host",
    [
        "evil.example/path",
        "evil.example/",
        "user@evil.example",
        "evil example",
        "evil.example:80x",
        "evil.example, other.example",
        'evil.example"',
        "evil.example;rel=x",
        "[::1",
        "",
    ],
)
async def test_a_host_that_is_not_host_port_is_400(client: httpx.AsyncClient, host: str) -> None:
    response = await client.get(tasks_url("alice"), headers={"Host": host})
    body = assert_problem(response, 400)
    assert "evil" not in response.text
    assert body["detail"].startswith("The Host header")


@pytest.mark.parametrize(
    "host", ["api.example.com", "API.Example.COM.", "127.0.0.1:8000", "[::1]:8443", "db_1:80"]
)
async def test_well_formed_hosts_are_served(client: httpx.AsyncClient, host: str) -> None:
    response = await client.get(tasks_url("alice"), headers={"Host": host})
    assert response.status_code == 200, response.text


async def test_two_host_lines_are_400(client: httpx.AsyncClient) -> None:
    response = await client.get(
        tasks_url("alice"), headers=[("Host", "api.example.com"), ("Host", "evil.example")]
    )
    assert_problem(response, 400)


async def test_a_malformed_forwarded_host_is_400_from_a_trusted_proxy_only(
    client: httpx.AsyncClient, app: FastAPI
) -> None:
    headers = {"X-Forwarded-Host": "evil.example/x"}
    # The in-process client connects from 127.0.0.1, the default trusted proxy.
    assert_problem(await client.get(tasks_url("alice"), headers=headers), 400)
    transport = httpx.ASGITransport(app=app, client=UNTRUSTED_PEER)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as untrusted:
        assert (await untrusted.get(tasks_url("alice"), headers=headers)).status_code == 200


async def test_forwarded_host_is_the_host_only_from_trusted_proxies() -> None:
    headers = [("X-Forwarded-Host", "evil.example, api.example.com")]
    _status, trusted = await scope_seen(("127.0.0.1", 1234), headers)
    assert [value for name, value in trusted["headers"] if name == b"host"] == [b"api.example.com"]
    _status, untrusted = await scope_seen(UNTRUSTED_PEER, headers)
    assert [value for name, value in untrusted["headers"] if name == b"host"] == [b"testserver"]


def test_trusted_proxies_are_addresses_networks_or_star() -> None:
    proxies = trusted_proxies(" 10.0.0.5, 10.0.0.0/8 ,::1,")
    assert [str(network) for network in proxies] == ["10.0.0.5/32", "10.0.0.0/8", "::1/128"]
    assert [str(network) for network in trusted_proxies("*")] == ["0.0.0.0/0", "::/0"]


@pytest.mark.parametrize("value", ["localhost", "10.0.0.0/33", "10.0.0.1/8", "10.0.0.1 10.0.0.2"])
def test_a_bad_forwarded_allow_ips_stops_start_up(database_url: str, value: str) -> None:
    with pytest.raises(ValueError, match="FORWARDED_ALLOW_IPS"):
        create_app(Settings(database_url=database_url, forwarded_allow_ips=value))
