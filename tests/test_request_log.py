"""One log line per request: route template, status, duration and a request id; no bodies."""

import json
import logging
import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from pydantic import ValidationError

from tests.helpers import assert_problem, close_databases, create, task_url, tasks_url
from todo_api.api.middleware.request_log import REQUEST_ID_PATTERN, current_request_id
from todo_api.api.schemas import TaskCreate
from todo_api.app import create_app
from todo_api.log_config import TEXT_FORMAT, JsonFormatter, TextFormatter, log_config
from todo_api.settings import Settings

REQUEST_LOGGER = "todo_api.requests"
GENERATED_ID = re.compile(r"[0-9a-f]{32}")
OWNER = "owner-7f3a9c"  # must not appear in any logged route template


class JsonLines(logging.Handler):
    """Formats each record as it is emitted, like the server's stream handler does."""

    def __init__(self) -> None:
        super().__init__()
        self.setFormatter(JsonFormatter())
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


@pytest.fixture
def request_records(caplog: pytest.LogCaptureFixture) -> Iterator[list[logging.LogRecord]]:
    """The request log records emitted during the test (a live view)."""
    caplog.set_level(logging.INFO, logger=REQUEST_LOGGER)
    records: list[logging.LogRecord] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    handler = Collect()
    logging.getLogger(REQUEST_LOGGER).addHandler(handler)
    yield records
    logging.getLogger(REQUEST_LOGGER).removeHandler(handler)


@pytest.fixture
def json_lines() -> Iterator[list[str]]:
    """Every record at INFO and above from any logger, as JSON lines."""
    handler = JsonLines()
    root = logging.getLogger()
    old_level = root.level
    root.setLevel(logging.INFO)
    root.addHandler(handler)
    yield handler.lines
    root.removeHandler(handler)
    root.setLevel(old_level)


def fields(record: logging.LogRecord) -> dict[str, Any]:
    value: dict[str, Any] = record.__dict__["log_fields"]
    return value


async def test_one_line_per_request_with_the_route_template(
    client: httpx.AsyncClient, request_records: list[logging.LogRecord]
) -> None:
    task = await create(client, OWNER, title="A task")
    responses = [
        await client.get(tasks_url(OWNER), params={"status": "pending"}),
        await client.get(task_url(OWNER, task["id"])),
        await client.patch(f"{task_url(OWNER, task['id'])}/complete"),
        await client.get(task_url("someone-else", task["id"])),
        await client.get(task_url(OWNER, "not-a-number")),
        await client.delete(tasks_url(OWNER)),
        await client.get("/health"),
        await client.get("/no/such/page"),
    ]
    expected = [
        ("POST", "/api/{user_id}/tasks", 201),
        ("GET", "/api/{user_id}/tasks", 200),
        ("GET", "/api/{user_id}/tasks/{task_id}", 200),
        ("PATCH", "/api/{user_id}/tasks/{task_id}/complete", 200),
        ("GET", "/api/{user_id}/tasks/{task_id}", 404),
        ("GET", "/api/{user_id}/tasks/{task_id}", 422),
        ("DELETE", "/api/{user_id}/tasks", 405),
        ("GET", "/health", 200),
        ("GET", "(no route)", 404),  # no route: the path could hold a user id
    ]
    assert [
        (fields(r)["method"], fields(r)["route"], fields(r)["status"]) for r in request_records
    ] == (expected)
    for record, response in zip(request_records[1:], responses, strict=True):
        logged = fields(record)
        assert logged["request_id"] == response.headers["x-request-id"]
        assert GENERATED_ID.fullmatch(logged["request_id"])
        assert isinstance(logged["duration_ms"], float)
        assert 0 <= logged["duration_ms"] < 10_000
        assert record.levelno == logging.INFO
        # The text line says all of it too.
        assert record.getMessage() == (
            f"{logged['method']} {logged['route']} {logged['status']} "
            f"{logged['duration_ms']:.1f}ms request_id={logged['request_id']}"
        )
    assert all(OWNER not in record.getMessage() for record in request_records)
    assert len({fields(r)["request_id"] for r in request_records}) == len(request_records)


async def test_json_lines_parse_and_carry_the_fields(
    client: httpx.AsyncClient, json_lines: list[str]
) -> None:
    response = await client.get(tasks_url(OWNER), headers={"X-Request-ID": "trace-42"})
    assert response.status_code == 200
    request_lines = [json.loads(line) for line in json_lines if REQUEST_LOGGER in line]
    assert len(request_lines) == 1
    entry = request_lines[0]
    assert set(entry) == {
        "time",
        "level",
        "logger",
        "message",
        "method",
        "route",
        "status",
        "duration_ms",
        "request_id",
    }
    assert entry["logger"] == REQUEST_LOGGER
    assert entry["level"] == "info"
    assert entry["method"] == "GET"
    assert entry["route"] == "/api/{user_id}/tasks"
    assert entry["status"] == 200
    assert entry["request_id"] == "trace-42"
    assert isinstance(entry["duration_ms"], float)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+00:00", entry["time"])


def test_json_formatter_keeps_each_record_on_one_line() -> None:
    formatter = JsonFormatter()
    try:
        raise ValueError("line one\nline two")
    except ValueError as exc:
        exc_info = (type(exc), exc, exc.__traceback__)
        record = logging.LogRecord(
            "todo_api.test", logging.ERROR, __file__, 1, "failed:\n%s", (exc,), exc_info
        )
    line = formatter.format(record)
    assert "\n" not in line
    entry = json.loads(line)
    assert entry["message"] == "failed:\nline one\nline two"
    assert entry["level"] == "error"
    assert "ValueError: line one" in entry["exception"]
    assert "request_id" not in entry  # outside a request there is none


def test_log_config_selects_the_formatter_and_silences_uvicorn_access() -> None:
    json_config = log_config("json", "warning")
    assert json_config["formatters"]["default"] == {"()": "todo_api.log_config.JsonFormatter"}
    assert json_config["root"]["level"] == "WARNING"
    assert json_config["loggers"]["uvicorn.access"]["propagate"] is False
    text_config = log_config("text", "info")
    assert "format" in text_config["formatters"]["default"]
    formatter = logging.Formatter(text_config["formatters"]["default"]["format"])
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "hello", None, None)
    assert formatter.format(record).endswith("INFO x: hello")


@pytest.mark.parametrize("incoming", ["abc.DEF_123-xyz", "0", "a" * 128])
async def test_a_well_formed_incoming_id_is_kept_and_echoed(
    client: httpx.AsyncClient, request_records: list[logging.LogRecord], incoming: str
) -> None:
    response = await client.get("/health", headers={"X-Request-ID": incoming})
    assert response.status_code == 200
    assert response.headers.get_list("x-request-id") == [incoming]
    assert [fields(record)["request_id"] for record in request_records] == [incoming]


@pytest.mark.parametrize(
    "incoming",
    ["", " ", "a" * 129, "has space", "semi;colon", 'quote"d', "slash/ed", "caf\u00e9", "{id}"],
)
async def test_a_malformed_incoming_id_is_replaced(
    client: httpx.AsyncClient, request_records: list[logging.LogRecord], incoming: str
) -> None:
    assert not REQUEST_ID_PATTERN.fullmatch(incoming)
    response = await client.get("/health", headers=[(b"X-Request-ID", incoming.encode("latin-1"))])
    assert response.status_code == 200
    replaced = response.headers.get_list("x-request-id")
    assert len(replaced) == 1
    assert GENERATED_ID.fullmatch(replaced[0])
    assert [fields(record)["request_id"] for record in request_records] == replaced
    assert all(
        incoming not in record.getMessage() for record in request_records if incoming.strip()
    )


async def test_error_responses_carry_the_id_too(client: httpx.AsyncClient) -> None:
    not_found = await client.get("/no/such/page", headers={"X-Request-ID": "err-1"})
    assert_problem(not_found, 404)
    assert not_found.headers["x-request-id"] == "err-1"
    invalid = await client.post(tasks_url(OWNER), json={"title": ""})
    assert_problem(invalid, 422)
    assert GENERATED_ID.fullmatch(invalid.headers["x-request-id"])


async def test_titles_and_descriptions_never_reach_the_logs(
    client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture, json_lines: list[str]
) -> None:
    caplog.set_level(logging.DEBUG)
    # The server's logger levels at LOG_LEVEL=debug, which hold back the database drivers.
    for name, config in log_config("text", "debug")["loggers"].items():
        caplog.set_level(config["level"], logger=name)
    title = "TITLE-c0ffee-secret"
    description = "DESCRIPTION-c0ffee-secret"
    task = await create(client, OWNER, title=title, description=description)
    url = task_url(OWNER, task["id"])
    await client.put(url, json={"title": f"{title}-2", "description": f"{description}-2"})
    await client.patch(url, json={"description": f"{description}-3"})
    await client.get(tasks_url(OWNER))
    await client.get(url)
    # Refused bodies: too long, a forbidden character, not JSON at all.
    await client.post(tasks_url(OWNER), json={"title": title * 20, "description": description})
    await client.patch(url, json={"title": f"{title}\x07"})
    await client.post(
        tasks_url(OWNER),
        content=f'{{"title": "{title}"',
        headers={"Content-Type": "application/json"},
    )
    request_lines = [line for line in json_lines if REQUEST_LOGGER in line]
    assert len(request_lines) == 8
    everything = caplog.text + "\n".join(json_lines)
    assert "c0ffee" not in everything


async def test_an_unhandled_error_is_logged_once_as_500_with_its_id(
    database_url: str, json_lines: list[str]
) -> None:
    app: FastAPI = create_app(Settings(database_url=database_url))

    @app.get("/boom/{thing}")
    async def boom(thing: str) -> None:
        raise RuntimeError("kaboom")

    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            response = await client.get("/boom/x", headers={"X-Request-ID": "boom-1"})
    finally:
        await close_databases(app)
        current_request_id.set(None)
    assert_problem(response, 500)
    entries = [json.loads(line) for line in json_lines]
    request_entries = [entry for entry in entries if entry["logger"] == REQUEST_LOGGER]
    assert [(e["route"], e["status"], e["request_id"]) for e in request_entries] == [
        ("/boom/{thing}", 500, "boom-1")
    ]
    errors = [entry for entry in entries if entry["level"] == "error"]
    assert len(errors) == 1
    assert errors[0]["request_id"] == "boom-1"
    assert "RuntimeError: kaboom" in errors[0]["exception"]


async def test_responses_made_before_routing_are_logged_under_the_template(
    client: httpx.AsyncClient, request_records: list[logging.LogRecord]
) -> None:
    too_large = await client.post(
        tasks_url(OWNER),
        content=b'{"title": "' + b"x" * 100_000 + b'"}',
        headers={"Content-Type": "application/json"},
    )
    assert_problem(too_large, 413)
    assert [(fields(r)["route"], fields(r)["status"]) for r in request_records] == [
        ("/api/{user_id}/tasks", 413)
    ]
    assert OWNER not in request_records[0].getMessage()


async def test_cors_lets_browsers_read_the_request_id(
    database_url: str, request_records: list[logging.LogRecord]
) -> None:
    origin = "https://app.example.com"
    app: FastAPI = create_app(Settings(database_url=database_url, cors_origins=[origin]))
    transport = httpx.ASGITransport(app=app)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            response = await client.get("/health", headers={"Origin": origin})
            preflight = await client.options(
                task_url(OWNER, 5),
                headers={"Origin": origin, "Access-Control-Request-Method": "PATCH"},
            )
    finally:
        await close_databases(app)
    assert preflight.status_code == 200
    assert [(fields(r)["method"], fields(r)["route"]) for r in request_records] == [
        ("GET", "/health"),
        ("OPTIONS", "/api/{user_id}/tasks/{task_id}"),  # answered by CORS, before routing
    ]
    exposed = {
        h.strip().lower() for h in response.headers["access-control-expose-headers"].split(",")
    }
    assert "x-request-id" in exposed
    assert GENERATED_ID.fullmatch(response.headers["x-request-id"])


def _formatted(formatter: logging.Formatter, message: str, error: BaseException | None) -> str:
    record = logging.LogRecord("todo_api.test", logging.ERROR, __file__, 1, "%s", (message,), None)
    if error is not None:
        record.exc_info = (type(error), error, error.__traceback__)
    return formatter.format(record)


def test_text_lines_escape_what_could_forge_another_line() -> None:
    formatter = TextFormatter(TEXT_FORMAT)
    line = _formatted(formatter, "GET /x\n2026-12-01 INFO forged\r\u2028\x1b[31m", None)
    assert "\n" not in line
    assert "\r" not in line
    assert "\u2028" not in line
    assert "\x1b" not in line
    assert line.endswith("GET /x\\u000a2026-12-01 INFO forged\\u000d\\u2028\\u001b[31m")


def test_logged_exceptions_hold_no_request_data() -> None:
    secret = "-".join(["c0ffee", "secret"])  # not in this file's source, which tracebacks quote
    try:
        try:
            TaskCreate.model_validate({"title": secret * 100})
        except ValidationError as invalid:
            raise RuntimeError("while creating") from invalid
    except RuntimeError as error:
        for formatter in (TextFormatter(TEXT_FORMAT), JsonFormatter()):
            text = _formatted(formatter, "failed", error)
            assert secret not in text
            assert "ValidationError: 1 validation errors at title" in text
            assert "RuntimeError: while creating" in text
            assert "direct cause" in text
