"""`/mcp`: the MCP tools over Streamable HTTP, driven through the real server by two real
clients (the MCP SDK's, and the OpenAI Agents SDK's `MCPServerStreamableHttp`), in both
auth modes. Identity comes from the token, never from an argument a model could change."""

import asyncio
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from agents.mcp import MCPServerStreamableHttp
from alembic import command
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client
from mcp_types import CallToolResult

from tests.conftest import PROJECT_ROOT, UNREACHABLE_POSTGRES, alembic_config
from tests.helpers import TEST_JWT_SECRET, app_client, jwt_settings, tasks_url
from tests.live_server import running_server
from todo_api.app import create_app
from todo_api.settings import Settings

#: The tools assistants are written against: name -> (required, all parameters).
USUAL_TOOLS = {
    "add_task": ({"title"}, {"user_id", "title", "description"}),
    "list_tasks": (set(), {"user_id", "status"}),
    "complete_task": ({"task_id"}, {"user_id", "task_id"}),
    "delete_task": ({"task_id"}, {"user_id", "task_id"}),
    "update_task": ({"task_id"}, {"user_id", "task_id", "title", "description"}),
}
EXTRA_TOOLS = {"get_task", "reopen_task", "task_stats", "due_reminders", "acknowledge_reminder"}


def token(subject: str) -> str:
    return jwt.encode(
        {"sub": subject, "exp": int(time.time()) + 600}, TEST_JWT_SECRET, algorithm="HS256"
    )


@dataclass(frozen=True)
class Servers:
    """The real server in both auth modes, on one database, for this module's tests."""

    open: str  # AUTH_MODE=none: the tools' user_id names the user
    signed_in: str  # AUTH_MODE=jwt with the test secret
    open_log: Path


@pytest.fixture(scope="module")
def servers(
    new_database: Callable[[], str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Servers]:
    url = new_database()
    command.upgrade(alembic_config(url), "head")
    logs = tmp_path_factory.mktemp("mcp-servers")
    with (
        running_server(url, logs / "open.log", LOG_LEVEL="info") as (_, open_client),
        running_server(
            url, logs / "signed-in.log", AUTH_MODE="jwt", AUTH_JWT_SECRET=TEST_JWT_SECRET
        ) as (_, signed_in_client),
    ):
        yield Servers(str(open_client.base_url), str(signed_in_client.base_url), logs / "open.log")


@pytest.fixture
def open_server(servers: Servers) -> str:
    return servers.open


@pytest.fixture
def signed_in_server(servers: Servers) -> str:
    return servers.signed_in


@pytest.fixture
def alice() -> str:
    """A user of this test alone (the servers and their database are shared)."""
    return f"alice-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def bob() -> str:
    return f"bob-{uuid.uuid4().hex[:8]}"


@asynccontextmanager
async def mcp_session(base_url: str, bearer: str | None = None) -> AsyncIterator[ClientSession]:
    """The MCP SDK's own client over Streamable HTTP."""
    headers = {"Authorization": f"Bearer {bearer}"} if bearer else None
    async with (
        create_mcp_http_client(headers=headers) as http,
        streamable_http_client(f"{base_url}/mcp", http_client=http) as (read, write),
        ClientSession(read, write) as session,
    ):
        await session.initialize()
        yield session


def result_of(called: CallToolResult) -> Any:
    """The structured result, checked to be the same JSON as the text content."""
    assert not called.is_error, called.content
    [text] = called.content
    structured = called.structured_content
    assert structured is not None
    payload = structured["result"] if set(structured) == {"result"} else structured
    assert json.loads(text.text) == payload  # type: ignore[union-attr]
    return payload


def error_of(called: CallToolResult) -> str:
    assert called.is_error, called.structured_content
    return " ".join(block.text for block in called.content)  # type: ignore[union-attr]


async def test_the_tool_list_has_the_usual_tools_and_ours(open_server: str) -> None:
    async with mcp_session(open_server) as session:
        tools = {tool.name: tool for tool in (await session.list_tools()).tools}
    assert set(tools) == set(USUAL_TOOLS) | EXTRA_TOOLS
    for name, (required, parameters) in USUAL_TOOLS.items():
        schema = tools[name].input_schema
        assert set(schema.get("required", [])) == required, name
        assert parameters <= set(schema["properties"]), name
        assert tools[name].output_schema is not None, name
        assert tools[name].description, name
    status = tools["list_tasks"].input_schema["properties"]["status"]
    assert status["enum"] == ["all", "pending", "completed"]
    assert status["default"] == "all"
    extras = set(tools["list_tasks"].input_schema["properties"])
    assert {"q", "priority", "tags", "due_from", "due_to", "overdue", "sort", "limit", "tz"} <= (
        extras
    )
    for name in ("add_task", "update_task"):
        assert {"priority", "due_date", "due_at", "tags", "recurrence", "reminder"} <= set(
            tools[name].input_schema["properties"]
        )
    assert "request_id" in tools["add_task"].input_schema["properties"]


async def test_the_usual_tools_do_what_they_say(open_server: str, alice: str) -> None:
    async with mcp_session(open_server) as session:
        added = result_of(
            await session.call_tool("add_task", {"user_id": alice, "title": "Buy groceries"})
        )
        assert added == {"task_id": added["task_id"], "status": "created", "title": "Buy groceries"}
        task_id = added["task_id"]
        listed = result_of(await session.call_tool("list_tasks", {"user_id": alice}))
        assert [(task["id"], task["title"], task["completed"]) for task in listed] == [
            (task_id, "Buy groceries", False)
        ]
        assert listed[0]["etag"] == f'"{task_id}.1"'  # the REST task JSON
        updated = await session.call_tool(
            "update_task", {"user_id": alice, "task_id": task_id, "title": "Buy milk"}
        )
        assert result_of(updated) == {"task_id": task_id, "status": "updated", "title": "Buy milk"}
        for _ in range(2):  # completing twice is harmless: never a toggle
            completed = await session.call_tool(
                "complete_task", {"user_id": alice, "task_id": task_id}
            )
            assert result_of(completed)["status"] == "completed"
        pending = await session.call_tool("list_tasks", {"user_id": alice, "status": "pending"})
        assert result_of(pending) == []
        deleted = await session.call_tool("delete_task", {"user_id": alice, "task_id": task_id})
        assert result_of(deleted) == {"task_id": task_id, "status": "deleted", "title": "Buy milk"}
        again = await session.call_tool("delete_task", {"user_id": alice, "task_id": task_id})
        assert f"no task {task_id} for this user" in error_of(again)


async def test_the_rest_api_sees_what_the_tools_did(open_server: str, alice: str) -> None:
    async with mcp_session(open_server) as session:
        added = await session.call_tool(
            "add_task",
            {
                "user_id": alice,
                "title": "Report",
                "priority": "high",
                "due_date": "2030-01-15",
                "tags": ["Work"],
            },
        )
        task_id = result_of(added)["task_id"]
        stats = result_of(await session.call_tool("task_stats", {"user_id": alice}))
    async with httpx.AsyncClient(base_url=open_server) as client:
        task = (await client.get(f"{tasks_url(alice)}/{task_id}")).json()
    assert (task["priority"], task["due_date"], task["tags"]) == ("high", "2030-01-15", ["Work"])
    assert stats == {"total": 1, "pending": 1, "completed": 0, "overdue": 0, "due_today": 0}


@pytest.mark.parametrize(
    ("arguments", "says"),
    [
        ({"title": ""}, "title: String should have at least 1 character"),
        ({"title": 5}, "title: Input should be a valid string"),
        ({"title": "x", "due_date": "2030-02-30"}, "due_date"),
        ({"title": "x", "tags": ["a,b"]}, "tags.0: Tags must not contain the character U+002C"),
        ({"title": "x", "priority": "urgent"}, "priority"),
    ],
)
async def test_bad_arguments_are_error_results_naming_each_field(
    open_server: str, arguments: dict[str, Any], says: str, alice: str
) -> None:
    async with mcp_session(open_server) as session:
        called = await session.call_tool("add_task", {"user_id": alice, **arguments})
        message = error_of(called)
        assert message.startswith("invalid arguments: "), message
        assert says in message
        assert "input_value" not in message
        assert result_of(await session.call_tool("list_tasks", {"user_id": alice})) == []


@pytest.mark.parametrize("tool", ["get_task", "complete_task", "delete_task"])
async def test_a_task_id_beyond_64_bits_is_an_error_result(
    open_server: str, alice: str, tool: str
) -> None:
    # Ids are PostgreSQL bigints: a larger one is bad input, not an internal error.
    async with mcp_session(open_server) as session:
        called = await session.call_tool(tool, {"user_id": alice, "task_id": 2**64})
        message = error_of(called)
        assert message.startswith("invalid arguments: task_id"), message


async def test_without_sign_in_user_id_is_required_and_is_the_user(
    open_server: str, alice: str, bob: str
) -> None:
    async with mcp_session(open_server) as session:
        assert "user_id is required" in error_of(
            await session.call_tool("add_task", {"title": "x"})
        )
        assert "invalid user_id" in error_of(
            await session.call_tool("list_tasks", {"user_id": "a b"})
        )
        result_of(await session.call_tool("add_task", {"user_id": bob, "title": "bob's"}))
        assert result_of(await session.call_tool("list_tasks", {"user_id": alice})) == []


async def test_a_request_id_makes_one_task_however_often_it_is_sent(
    open_server: str, alice: str
) -> None:
    async with mcp_session(open_server) as session:
        arguments = {"user_id": alice, "title": "Once", "request_id": "agent-call-1"}
        first = result_of(await session.call_tool("add_task", arguments))
        again = result_of(await session.call_tool("add_task", arguments))
        assert again == first
        other = await session.call_tool("add_task", {**arguments, "title": "Other"})
        assert "request_id was already used with other arguments" in error_of(other)
        listed = result_of(await session.call_tool("list_tasks", {"user_id": alice}))
    assert [task["title"] for task in listed] == ["Once"]


async def test_twenty_concurrent_completions_leave_the_task_completed(
    open_server: str, alice: str
) -> None:
    async with mcp_session(open_server) as session:
        added = await session.call_tool("add_task", {"user_id": alice, "title": "Once"})
        task_id = result_of(added)["task_id"]

    async def complete() -> Any:
        async with mcp_session(open_server) as session:
            arguments = {"user_id": alice, "task_id": task_id}
            return result_of(await session.call_tool("complete_task", arguments))

    results = await asyncio.gather(*(complete() for _ in range(20)))
    assert {result["status"] for result in results} == {"completed"}
    async with httpx.AsyncClient(base_url=open_server) as client:
        task = (await client.get(f"{tasks_url(alice)}/{task_id}")).json()
    assert task["completed"] is True


async def test_completing_a_repeating_task_makes_its_next_occurrence_once(
    open_server: str, alice: str
) -> None:
    async with mcp_session(open_server) as session:
        refused = await session.call_tool(
            "add_task",
            {"user_id": alice, "title": "Water plants", "recurrence": {"frequency": "daily"}},
        )
        assert error_of(refused).startswith("invalid arguments: recurrence: ")
        added = await session.call_tool(
            "add_task",
            {
                "user_id": alice,
                "title": "Water plants",
                "due_date": "2030-01-14",
                "recurrence": {"frequency": "weekly", "days_of_week": ["mo", "th"]},
            },
        )
        task_id = result_of(added)["task_id"]
        for _ in range(2):  # an agent calling twice
            completed = await session.call_tool(
                "complete_task", {"user_id": alice, "task_id": task_id}
            )
            assert result_of(completed)["status"] == "completed"
        pending = result_of(
            await session.call_tool("list_tasks", {"user_id": alice, "status": "pending"})
        )
    assert [(task["title"], task["due_date"]) for task in pending] == [
        ("Water plants", "2030-01-17")
    ]
    assert pending[0]["recurrence"]["rrule"] == "FREQ=WEEKLY;INTERVAL=1;BYDAY=MO,TH"
    assert pending[0]["series_id"] == task_id
    async with mcp_session(open_server) as session:
        result_of(await session.call_tool("add_task", {"user_id": alice, "title": "Once"}))
        once = await session.call_tool("list_tasks", {"user_id": alice, "recurring": False})
        assert [task["title"] for task in result_of(once)] == ["Once"]


async def test_due_reminders_lists_what_to_remind_the_user_of_now(
    open_server: str, alice: str
) -> None:
    async with mcp_session(open_server) as session:
        for title, at in (("Call mum", "2020-01-01T09:00:00Z"), ("Later", "2999-01-01T09:00:00Z")):
            result_of(
                await session.call_tool(
                    "add_task", {"user_id": alice, "title": title, "reminder": {"at": at}}
                )
            )
        refused = await session.call_tool(
            "add_task", {"user_id": alice, "title": "x", "reminder": {"minutes_before": 5}}
        )
        assert error_of(refused).startswith("invalid arguments: reminder: ")
        due = result_of(await session.call_tool("due_reminders", {"user_id": alice}))
        assert [(task["title"], task["reminder"]["at"]) for task in due] == [
            ("Call mum", "2020-01-01T09:00:00Z")
        ]
        for _ in range(2):
            seen = await session.call_tool(
                "acknowledge_reminder", {"user_id": alice, "task_id": due[0]["id"]}
            )
            assert result_of(seen)["reminder"]["acknowledged_at"] is not None
        assert result_of(await session.call_tool("due_reminders", {"user_id": alice})) == []


async def test_the_token_is_the_user_and_user_id_can_only_repeat_it(
    signed_in_server: str, alice: str, bob: str
) -> None:
    async with mcp_session(signed_in_server, token(alice)) as as_alice:
        mine = result_of(await as_alice.call_tool("add_task", {"title": f"{alice}'s"}))
        same = await as_alice.call_tool("add_task", {"title": "also", "user_id": alice})
        result_of(same)
        forged = await as_alice.call_tool("add_task", {"title": "planted", "user_id": bob})
        assert error_of(forged) == "forbidden: user_id does not match the signed-in user"
        peek = await as_alice.call_tool("list_tasks", {"user_id": bob})
        assert error_of(peek) == "forbidden: user_id does not match the signed-in user"
    async with mcp_session(signed_in_server, token(bob)) as as_bob:
        assert result_of(await as_bob.call_tool("list_tasks", {})) == []
        # Alice's task id through bob's token: as if it did not exist, and untouched.
        for tool in ("get_task", "complete_task", "reopen_task", "delete_task", "update_task"):
            arguments: dict[str, Any] = {"task_id": mine["task_id"]}
            if tool == "update_task":
                arguments["title"] = "taken over"
            message = error_of(await as_bob.call_tool(tool, arguments))
            assert f"no task {mine['task_id']} for this user" in message
    async with mcp_session(signed_in_server, token(alice)) as as_alice:
        listed = result_of(await as_alice.call_tool("list_tasks", {}))
        untouched = result_of(await as_alice.call_tool("get_task", {"task_id": mine["task_id"]}))
    assert untouched["etag"] == f'"{mine["task_id"]}.1"'
    assert sorted((task["title"], task["completed"]) for task in listed) == [
        (f"{alice}'s", False),
        ("also", False),
    ]


@pytest.mark.parametrize("authorization", [None, "Bearer not-a-token", "Basic YTpi"])
async def test_without_a_valid_token_mcp_is_401_before_any_message_is_read(
    signed_in_server: str, authorization: str | None
) -> None:
    headers = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}
    if authorization is not None:
        headers["Authorization"] = authorization
    async with httpx.AsyncClient(base_url=signed_in_server) as client:
        response = await client.post("/mcp", content=b"{not json", headers=headers)
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith('Bearer realm="todo-api"')
    assert response.json()["type"] == "urn:todo-api:unauthorized"


@pytest.mark.parametrize(
    ("headers", "status", "problem"),
    [
        ({"Origin": "http://evil.example"}, 403, "urn:todo-api:origin-refused"),
        ({"Host": "evil.example"}, 421, "urn:todo-api:host-refused"),
    ],
)
async def test_dns_rebinding_is_refused(
    open_server: str, headers: dict[str, str], status: int, problem: str
) -> None:
    async with httpx.AsyncClient(base_url=open_server) as client:
        response = await client.post("/mcp", json={}, headers=headers)
    assert response.status_code == status
    assert response.json()["type"] == problem


async def test_the_openai_agents_client_lists_and_calls_the_tools(
    signed_in_server: str, alice: str
) -> None:
    """The OpenAI Agents SDK's MCP client, as an agent would use it (no model needed)."""
    server = MCPServerStreamableHttp(
        params={
            "url": f"{signed_in_server}/mcp",
            "headers": {"Authorization": f"Bearer {token('carol')}"},
        },
        cache_tools_list=True,
    )
    await server.connect()  # type: ignore[no-untyped-call]
    try:
        names = {tool.name for tool in await server.list_tools()}
        assert set(USUAL_TOOLS) <= names
        added = await server.call_tool("add_task", {"title": "From an agent"})
        assert not added.is_error
        assert added.structured_content is not None
        task_id = added.structured_content["task_id"]
        completed = await server.call_tool("complete_task", {"task_id": task_id})
        assert completed.structured_content == {
            "task_id": task_id,
            "status": "completed",
            "title": "From an agent",
        }
        forged = await server.call_tool("list_tasks", {"user_id": alice})
        assert forged.is_error
    finally:
        await server.cleanup()  # type: ignore[no-untyped-call]


async def test_each_tool_call_is_one_log_line_without_task_text(
    servers: Servers, alice: str
) -> None:
    before = servers.open_log.stat().st_size
    async with mcp_session(servers.open) as session:
        await session.call_tool("add_task", {"user_id": alice, "title": "secret-title-7"})
        await session.call_tool("get_task", {"user_id": alice, "task_id": 999_999})
        await session.call_tool("add_task", {"user_id": alice, "title": 5})  # a wrong type
        await session.call_tool("no\nsuch tool", {})
        await session.call_tool("list_tasks", {"user_id": alice})  # lets the log catch up
    with servers.open_log.open() as log:
        log.seek(before)
        lines = log.read().splitlines()
    tool_lines = [line for line in lines if "todo_api.mcp:" in line]
    assert len(tool_lines) == 5, lines
    assert "MCP tool add_task ok" in tool_lines[0]
    assert "MCP tool get_task error" in tool_lines[1]
    assert "MCP tool add_task error" in tool_lines[2]
    assert "MCP tool (unknown tool) error" in tool_lines[3]
    assert all("request_id=" in line for line in tool_lines)
    assert not [line for line in lines if "secret-title-7" in line or alice in line]


async def test_the_protected_resource_metadata_names_the_issuer(database_url: str) -> None:
    """RFC 9728: where an MCP client that signs users in learns who issues the tokens."""
    settings = jwt_settings() | {
        "public_base_url": "https://api.example.com",
        "auth_issuer": "https://app.example.com",
    }
    async with app_client(database_url, **settings) as client:
        metadata = await client.get("/.well-known/oauth-protected-resource/mcp")
    assert metadata.status_code == 200
    assert metadata.json()["resource"] == "https://api.example.com/mcp"
    assert metadata.json()["authorization_servers"] == ["https://app.example.com/"]
    async with app_client(database_url) as client:  # without tokens: nothing to publish
        assert (await client.get("/.well-known/oauth-protected-resource/mcp")).status_code == 404


async def test_a_database_that_is_away_is_an_error_result_that_says_when_to_retry(
    tmp_path: Path,
) -> None:
    with running_server(
        UNREACHABLE_POSTGRES, tmp_path / "server.log", DB_STARTUP_WAIT_SECONDS="0"
    ) as (_, client):
        async with mcp_session(str(client.base_url)) as session:
            called = await session.call_tool("add_task", {"user_id": "alice", "title": "x"})
    assert error_of(called) == "the task service is temporarily unavailable; retry in 5 s"


def test_the_agents_sdk_snippet_in_docs_mcp_runs(servers: Servers, alice: str) -> None:
    """docs/mcp.md's OpenAI Agents SDK example, run as a user would, against the server."""
    text = (PROJECT_ROOT / "docs" / "mcp.md").read_text()
    after_marker = text.split("<!-- tested: tests/test_mcp.py runs this block -->", 1)[1]
    snippet = after_marker.split("```python\n", 1)[1].split("\n```", 1)[0]
    environment = {
        name: value for name, value in os.environ.items() if name != "OPENAI_API_KEY"
    } | {"TODO_API_URL": servers.open, "TODO_API_USER": alice}
    finished = subprocess.run(
        [sys.executable, "-c", snippet],
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert finished.returncode == 0, finished.stderr
    lines = finished.stdout.splitlines()
    assert lines[0].startswith("tools: add_task, list_tasks"), lines
    assert lines[1].startswith("added: {'task_id': "), lines
    listed = httpx.get(f"{servers.open}{tasks_url(alice)}").json()
    assert [task["title"] for task in listed] == ["Buy milk"]


async def test_a_listed_browser_origin_may_send_the_mcp_headers(database_url: str) -> None:
    origin = "http://localhost:3000"
    async with app_client(database_url, cors_origins=[origin]) as client:
        preflight = await client.options(
            "/mcp",
            headers={
                "Origin": origin,
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "authorization, content-type, "
                "mcp-protocol-version, mcp-session-id",
            },
        )
    assert preflight.status_code == 200, preflight.text
    assert preflight.headers["access-control-allow-origin"] == origin
    allowed = preflight.headers["access-control-allow-headers"].lower()
    for header in ("authorization", "mcp-protocol-version", "mcp-session-id"):
        assert header in allowed


@asynccontextmanager
async def mcp_app_client(
    database_url: str, peer: tuple[str, int], **settings: Any
) -> AsyncIterator[httpx.AsyncClient]:
    """An in-process client of an app whose lifespan runs (the MCP session manager with it)."""
    app = create_app(Settings(_env_file=None, database_url=database_url, **settings))
    transport = httpx.ASGITransport(app=app, client=peer)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://internal:8000") as client,
    ):
        yield client


MCP_HEADERS = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}
TOOLS_LIST = {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}


@pytest.mark.parametrize(
    ("peer", "forwarded_host", "status"),
    [
        (("127.0.0.1", 5000), "api.example.com", 200),  # a trusted proxy names the public host
        (("203.0.113.9", 5000), "api.example.com", 421),  # anyone else's X-Forwarded-Host
        (("127.0.0.1", 5000), "evil.example", 421),
    ],
)
async def test_the_host_is_checked_as_trusted_proxies_forward_it(
    database_url: str, peer: tuple[str, int], forwarded_host: str, status: int
) -> None:
    """Behind a proxy at FORWARDED_ALLOW_IPS (127.0.0.1 by default), the public host is the
    one it forwards; the Host it connects with (`internal:8000`) is not PUBLIC_BASE_URL's."""
    async with mcp_app_client(
        database_url, peer, public_base_url="https://api.example.com"
    ) as client:
        response = await client.post(
            "/mcp",
            json=TOOLS_LIST,
            headers=MCP_HEADERS | {"X-Forwarded-Host": forwarded_host},
        )
    assert response.status_code == status, response.text
