"""The published OpenAPI document is complete enough to generate clients from, and what it
shows (examples, problem types, headers, integer widths) is what the API really does."""

import asyncio
import json
import re
import time
from collections.abc import Callable
from http import HTTPStatus
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from pydantic import BaseModel
from sqlalchemy import make_url

from tests.helpers import (
    TASK_FIELDS,
    TEST_JWT_SECRET,
    app_client,
    create,
    jwt_settings,
    tasks_url,
)
from todo_api.api import schemas
from todo_api.api.list_query import TaskListQuery
from todo_api.api.problems import PROBLEM_MEDIA_TYPE, Problem, ValidationProblem

EXPECTED_OPERATIONS = {
    ("post", "/api/{user_id}/tasks"): "create_task",
    ("get", "/api/{user_id}/tasks"): "list_tasks",
    ("get", "/api/{user_id}/tasks/stats"): "get_task_stats",
    ("post", "/api/{user_id}/tasks/complete-all"): "complete_all_tasks",
    ("delete", "/api/{user_id}/tasks/completed"): "delete_completed_tasks",
    ("get", "/api/{user_id}/tasks/{task_id}"): "read_task",
    ("put", "/api/{user_id}/tasks/{task_id}"): "replace_task",
    ("patch", "/api/{user_id}/tasks/{task_id}"): "update_task",
    ("delete", "/api/{user_id}/tasks/{task_id}"): "delete_task",
    ("patch", "/api/{user_id}/tasks/{task_id}/complete"): "toggle_task_completion",
    ("get", "/api/{user_id}/tags"): "list_tags",
    ("get", "/api/{user_id}/reminders"): "list_due_reminders",
    ("post", "/api/{user_id}/tasks/{task_id}/reminder/ack"): "acknowledge_reminder",
    ("get", "/health"): "check_liveness",
    ("get", "/health/ready"): "check_readiness",
}


@pytest.fixture
async def schema(client: httpx.AsyncClient) -> dict[str, Any]:
    response = await client.get("/openapi.json")
    assert response.status_code == 200
    document: dict[str, Any] = response.json()
    return document


def _operations(schema: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {
        (method, path): operation
        for path, item in schema["paths"].items()
        for method, operation in item.items()
    }


async def test_every_operation_has_a_stable_id_and_summary(schema: dict[str, Any]) -> None:
    operations = _operations(schema)
    assert {key: op["operationId"] for key, op in operations.items()} == EXPECTED_OPERATIONS
    for operation in operations.values():
        assert operation["summary"]


async def test_task_operations_document_their_models_and_errors(schema: dict[str, Any]) -> None:
    for (method, path), operation in _operations(schema).items():
        if not path.startswith("/api/"):
            continue
        responses = operation["responses"]
        success = next(code for code in responses if code.startswith("2"))
        if success != "204":
            assert "schema" in responses[success]["content"]["application/json"]
        errors = {"422"} | ({"404"} if "{task_id}" in path else set())
        for code in errors:
            content = responses[code]["content"]
            assert list(content) == ["application/problem+json"], (method, path, code)
        assert responses["422"]["content"]["application/problem+json"]["schema"] == {
            "$ref": "#/components/schemas/ValidationProblem"
        }


async def test_response_headers_are_documented(schema: dict[str, Any]) -> None:
    tasks = schema["paths"]["/api/{user_id}/tasks"]
    assert {"Location", "ETag", "Idempotent-Replayed"} <= set(
        tasks["post"]["responses"]["201"]["headers"]
    )
    assert {"X-Total-Count", "Link", "ETag"} <= set(tasks["get"]["responses"]["200"]["headers"])


def _header_names(operation: dict[str, Any]) -> set[str]:
    return {param["name"] for param in operation.get("parameters", []) if param["in"] == "header"}


async def test_conditional_and_idempotent_requests_are_documented(
    schema: dict[str, Any],
) -> None:
    collection = schema["paths"]["/api/{user_id}/tasks"]
    item = schema["paths"]["/api/{user_id}/tasks/{task_id}"]
    toggle = schema["paths"]["/api/{user_id}/tasks/{task_id}/complete"]

    for reader in (collection["get"], item["get"]):
        assert _header_names(reader) == {"If-None-Match"}
        not_modified = reader["responses"]["304"]
        assert "content" not in not_modified
        assert "ETag" in not_modified["headers"]
    assert "ETag" in item["get"]["responses"]["200"]["headers"]
    for writer in (item["put"], item["patch"], item["delete"], toggle["patch"]):
        assert _header_names(writer) == {"If-Match"}
        precondition_failed = writer["responses"]["412"]
        assert "ETag" in precondition_failed["headers"]
        assert list(precondition_failed["content"]) == ["application/problem+json"]
    for writer in (item["put"], item["patch"], toggle["patch"]):
        assert "ETag" in writer["responses"]["200"]["headers"]
    create = collection["post"]
    assert _header_names(create) == {"Idempotency-Key"}
    (key,) = [param for param in create["parameters"] if param["in"] == "header"]
    assert key["schema"]["maxLength"] == 255
    assert list(create["responses"]["409"]["content"]) == ["application/problem+json"]


async def test_list_parameters_are_the_fields_of_its_query_model(
    schema: dict[str, Any],
) -> None:
    parameters = _operations(schema)["get", "/api/{user_id}/tasks"]["parameters"]
    query = [parameter for parameter in parameters if parameter["in"] == "query"]
    assert [parameter["name"] for parameter in query] == list(TaskListQuery.model_fields)
    for parameter in query:
        field = TaskListQuery.model_fields[parameter["name"]]
        assert parameter["required"] is False
        assert field.description
        # offset's gains the bound that int64 hides from JavaScript.
        assert parameter["description"].startswith(field.description)
    assert [parameter["in"] for parameter in parameters] == ["path"] + ["query"] * len(query) + [
        "header"
    ]
    by_name = {parameter["name"]: parameter for parameter in query}
    assert by_name["status"]["schema"]["$ref"] == "#/components/schemas/TaskStatus"
    assert by_name["sort"]["schema"]["default"] == "-created_at"
    assert by_name["limit"]["schema"]["maximum"] == 200


async def test_every_reference_resolves(schema: dict[str, Any]) -> None:
    references = set(re.findall(r'"\$ref": "#/components/schemas/([^"]+)"', json.dumps(schema)))
    assert references
    assert references <= set(schema["components"]["schemas"])


def _descriptions(node: Any) -> list[str]:
    if isinstance(node, dict):
        found = [node["description"]] if isinstance(node.get("description"), str) else []
        return found + [text for value in node.values() for text in _descriptions(value)]
    if isinstance(node, list):
        return [text for value in node for text in _descriptions(value)]
    return []


async def test_descriptions_are_whole_sentences(schema: dict[str, Any]) -> None:
    # A string continued on the next line without parentheses is a statement of its own:
    # the description would stop mid-sentence, at a space.
    cut = [text for text in _descriptions(schema) if text != text.rstrip()]
    assert cut == []


async def test_task_schema_lists_every_field(schema: dict[str, Any]) -> None:
    task = schema["components"]["schemas"]["TaskPublic"]
    assert set(task["properties"]) == TASK_FIELDS
    # Every field is in every response, so generated clients need not treat any as optional.
    assert set(task["required"]) == set(task["properties"])
    create = schema["components"]["schemas"]["TaskCreate"]
    assert create["additionalProperties"] is False
    assert create["required"] == ["title"]


async def test_interactive_docs_are_served(client: httpx.AsyncClient) -> None:
    response = await client.get("/docs")
    assert response.status_code == 200
    assert "/openapi.json" in response.text


# What the API sends, by status: the problem types (see todo_api.api.problems and caller).
SENT_TYPES = {
    400: {"about:blank"},
    401: {"urn:todo-api:unauthorized", "urn:todo-api:token-expired"},
    403: {"urn:todo-api:forbidden"},
    404: {"urn:todo-api:task-not-found"},
    409: {"urn:todo-api:idempotency-key-in-flight", "urn:todo-api:no-reminder"},
    412: {"urn:todo-api:precondition-failed"},
    413: {"about:blank"},
    415: {"urn:todo-api:unsupported-media-type"},
    422: {"urn:todo-api:validation-error"},
    503: {
        "urn:todo-api:database-unavailable",
        "urn:todo-api:schema-not-migrated",
        "urn:todo-api:keys-unavailable",
        "urn:todo-api:database-misconfigured",
        "urn:todo-api:request-cut-off",
    },
}
# The problems sent with `Retry-After`: retrying them helps.
RETRY_AFTER_SENT = {
    "urn:todo-api:idempotency-key-in-flight",
    "urn:todo-api:database-unavailable",
    "urn:todo-api:keys-unavailable",
    "urn:todo-api:request-cut-off",
}
MAX_SAFE_INTEGER = 2**53 - 1  # JavaScript's Number.MAX_SAFE_INTEGER
SCHEMA_REF = "#/components/schemas/"
# No such task: errors that come before the lookup are provoked on it.
ABSENT_TASK_ID = "123456789"


def _model(ref: str) -> type[BaseModel]:
    model: type[BaseModel] = getattr(schemas, ref.removeprefix(SCHEMA_REF))
    return model


def _body_ref(operation: dict[str, Any]) -> str | None:
    """The component a JSON request body is (first alternative of an optional one)."""
    if "requestBody" not in operation:
        return None
    body = operation["requestBody"]["content"]["application/json"]["schema"]
    ref: str = body.get("$ref") or body["anyOf"][0]["$ref"]
    return ref


def _component(schema: dict[str, Any], ref: str) -> dict[str, Any]:
    component: dict[str, Any] = schema["components"]["schemas"][ref.removeprefix(SCHEMA_REF)]
    return component


def _request_example(schema: dict[str, Any], operation: dict[str, Any]) -> dict[str, Any] | None:
    ref = _body_ref(operation)
    if ref is None:
        return None
    example: dict[str, Any] = _component(schema, ref)["examples"][0]
    return example


def _problem_examples(response: dict[str, Any]) -> dict[str, dict[str, Any]]:
    examples: dict[str, dict[str, Any]] = response["content"][PROBLEM_MEDIA_TYPE]["examples"]
    return examples


def _errors(operation: dict[str, Any]) -> dict[int, dict[str, Any]]:
    return {
        int(code): response for code, response in operation["responses"].items() if code[0] in "45"
    }


async def test_request_examples_are_realistic_and_valid(schema: dict[str, Any]) -> None:
    bodies = 0
    for (method, path), operation in _operations(schema).items():
        ref = _body_ref(operation)
        if ref is None:
            continue
        bodies += 1
        examples = _component(schema, ref)["examples"]
        assert examples, (method, path)
        for example in examples:
            _model(ref).model_validate(example)  # raises if the example is refused
    assert bodies == 5
    create_body = schema["paths"]["/api/{user_id}/tasks"]["post"]["requestBody"]
    create_ref = create_body["content"]["application/json"]["schema"]["$ref"]
    first = _component(schema, create_ref)["examples"][0]
    assert first == {"title": "Buy milk", "description": "2 litres"}


async def test_response_examples_are_realistic_and_valid(schema: dict[str, Any]) -> None:
    for (method, path), operation in _operations(schema).items():
        if not path.startswith("/api/"):
            continue
        for code, response in operation["responses"].items():
            if not code.startswith("2") or "content" not in response:
                continue
            body = response["content"]["application/json"]["schema"]
            ref = body.get("$ref") or body["items"]["$ref"]
            examples = _component(schema, ref)["examples"]
            assert examples, (method, path, code)
            for example in examples:
                _model(ref).model_validate(example)
    task = _component(schema, "TaskPublic")["examples"][0]
    # Nulls kept, and the fields in the order the API sends them.
    assert task["completed_at"] is None
    assert list(task) == list(_component(schema, "TaskPublic")["properties"])
    assert {"description": None} in _component(schema, "TaskUpdate")["examples"]
    assert task["id"] == 1
    assert task["etag"] == '"1.1"'
    assert task["title"] == "Buy milk"
    assert task["created_at"].endswith("Z")
    assert task["updated_at"].endswith("Z")


async def test_the_task_example_is_what_creating_its_example_returns(
    client: httpx.AsyncClient, schema: dict[str, Any]
) -> None:
    create_task = schema["paths"]["/api/{user_id}/tasks"]["post"]
    response = await client.post(tasks_url("alice"), json=_request_example(schema, create_task))
    assert response.status_code == 201
    sent = response.json()
    example = _component(schema, "TaskPublic")["examples"][0]
    assert list(sent) == list(example)
    same = {"title", "description", "completed", "user_id", "completed_at"}
    assert {key: sent[key] for key in same} == {key: example[key] for key in same}
    assert sent["etag"] == f'"{sent["id"]}.1"'
    assert sent["created_at"].endswith("Z")
    assert sent["created_at"] == sent["updated_at"]


def _check_problem_examples(schema: dict[str, Any]) -> int:
    """Every error response shows, for its status, the type, title and status sent."""
    checked = 0
    for (method, path), operation in _operations(schema).items():
        for status, response in _errors(operation).items():
            where = (method, path, status)
            assert list(response["content"]) == [PROBLEM_MEDIA_TYPE], where
            examples = _problem_examples(response)
            assert examples, where
            model = ValidationProblem if status == 422 else Problem
            for name, example in examples.items():
                assert example["summary"], (*where, name)
                value = example["value"]
                model.model_validate(value)
                assert value["type"] in SENT_TYPES[status], (*where, name)
                assert value["title"] == HTTPStatus(status).phrase, (*where, name)
                assert value["status"] == status, (*where, name)
                assert value["detail"].endswith("."), (*where, name)
                if status == 422:
                    assert value["errors"], (*where, name)
                checked += 1
    return checked


async def test_every_error_response_has_examples_of_what_is_sent(schema: dict[str, Any]) -> None:
    assert _check_problem_examples(schema) > 40
    responses = _errors(schema["paths"]["/api/{user_id}/tasks/{task_id}"]["put"])
    assert set(responses) == {400, 404, 412, 413, 415, 422, 503}
    assert set(_problem_examples(responses[503])) == {
        "database-unavailable",
        "database-busy",
        "database-no-answer",
        "schema-not-migrated",
        "database-misconfigured",
        "request-cut-off",
    }


def _validation_locations(operation: dict[str, Any]) -> list[list[Any]]:
    examples = _problem_examples(operation["responses"]["422"]).values()
    return [example["value"]["errors"][0]["loc"] for example in examples]


async def test_validation_examples_name_inputs_the_operation_has(schema: dict[str, Any]) -> None:
    paths = schema["paths"]
    create_task = paths["/api/{user_id}/tasks"]["post"]
    assert _validation_locations(create_task) == [
        ["body", "title"],
        ["body", "completed"],
        ["header", "Idempotency-Key"],
        ["path", "user_id"],
    ]
    assert _validation_locations(paths["/api/{user_id}/tasks"]["get"]) == [
        ["query", "limit"],
        ["path", "user_id"],
    ]
    assert _validation_locations(paths["/api/{user_id}/tasks/{task_id}/complete"]["patch"]) == [
        ["body", "completed"],
        ["path", "task_id"],
        ["path", "user_id"],
    ]
    assert _validation_locations(paths["/api/{user_id}/tasks/stats"]["get"]) == [
        ["path", "user_id"],
    ]


def _comparable(body: dict[str, Any]) -> dict[str, Any]:
    """A problem with the numbers in its detail left out: ids and ETags differ by run."""
    return body | {"detail": re.sub(r"\d+", "N", body["detail"])}


# How to make each example of an error happen, as changes to a valid request of the operation.
Request = dict[str, Any]


async def _task_to_edit(client: httpx.AsyncClient, request: Request) -> dict[str, Any]:
    task = await create(client, "alice", title="Buy milk")
    request["path"] = request["path"].replace(ABSENT_TASK_ID, str(task["id"]))
    return task


async def _stale_etag(client: httpx.AsyncClient, request: Request) -> None:
    task = await _task_to_edit(client, request)
    request["headers"]["If-Match"] = f'"{task["id"]}.99"'


async def _unquoted_etag(client: httpx.AsyncClient, request: Request) -> None:
    task = await _task_to_edit(client, request)
    request["headers"]["If-Match"] = task["etag"].strip('"')


async def _reused_key(client: httpx.AsyncClient, request: Request) -> None:
    request["headers"]["Idempotency-Key"] = "buy-milk-once"
    first = await client.post(request["path"], json=request["json"], headers=request["headers"])
    assert first.status_code == 201, first.text
    request["json"] = request["json"] | {"title": "Buy bread"}


def _change(**changes: Callable[[Request], None]) -> Any:
    async def apply(client: httpx.AsyncClient, request: Request) -> None:
        for change in changes.values():
            change(request)

    return apply


def _utf16(request: Request) -> None:
    request["content"] = json.dumps(request.pop("json")).encode("utf-16")
    request["headers"]["Content-Type"] = "application/json"


def _text(request: Request) -> None:
    request.pop("json")
    request["content"] = b"Buy milk"
    request["headers"]["Content-Type"] = "text/plain"


PROVOKE = {
    "not-utf8-json": _change(body=_utf16),
    "task-not-found": _change(),
    "precondition-failed": _stale_etag,
    "unquoted-etag": _unquoted_etag,
    "body-too-large": _change(body=lambda r: r.update(json={"title": "x" * 70_000})),
    "not-json": _change(body=_text),
    "invalid-body": _change(body=lambda r: r.update(json=r["json"] | {"title": ""})),
    "invalid-completed": _change(body=lambda r: r.update(json=r["json"] | {"completed": "yes"})),
    "invalid-task-id": _change(
        path=lambda r: r.update(path=r["path"].replace(ABSENT_TASK_ID, "abc"))
    ),
    "invalid-query": _change(query=lambda r: r.update(params={"limit": 500})),
    "idempotency-key-reused": _reused_key,
    "invalid-user-id": _change(path=lambda r: r.update(path=r["path"].replace("alice", "a" * 129))),
}


def _valid_request(schema: dict[str, Any], method: str, path: str) -> Request:
    operation = schema["paths"][path][method]
    request: Request = {
        "method": method.upper(),
        "path": path.format(user_id="alice", task_id=ABSENT_TASK_ID),
        "headers": {},
    }
    body = _request_example(schema, operation)
    if body is not None:
        request["json"] = body
    return request


async def _send(client: httpx.AsyncClient, request: Request) -> httpx.Response:
    return await client.request(
        request["method"],
        request["path"],
        headers=request["headers"],
        params=request.get("params"),
        json=request.get("json"),
        content=request.get("content"),
    )


async def test_error_examples_are_what_the_api_sends(
    client: httpx.AsyncClient, schema: dict[str, Any]
) -> None:
    """Each example of a 4xx, made to happen on its operation: the same body comes back."""
    compared = 0
    for (method, path), operation in _operations(schema).items():
        for status, response in _errors(operation).items():
            if status in {409, 503}:  # a request in flight, a database down: further below
                continue
            for name, example in _problem_examples(response).items():
                request = _valid_request(schema, method, path)
                await PROVOKE[name](client, request)
                sent = await _send(client, request)
                where = (method, path, name)
                assert sent.status_code == status, (*where, sent.text)
                assert sent.headers["content-type"] == PROBLEM_MEDIA_TYPE, where
                assert _comparable(sent.json()) == _comparable(example["value"]), where
                compared += 1
    assert compared > 30


async def _assert_503_examples_are_sent(client: httpx.AsyncClient, problem_type: str) -> None:
    schema = (await client.get("/openapi.json")).json()
    operations = {
        where: operation
        for where, operation in _operations(schema).items()
        if "503" in operation["responses"]
    }
    # At once: behind PgBouncer each refused login can wait out its server_login_retry.
    responses = await asyncio.gather(
        *(_send(client, _valid_request(schema, method, path)) for method, path in operations)
    )
    for ((method, path), operation), sent in zip(operations.items(), responses, strict=True):
        examples = _problem_examples(operation["responses"]["503"]).values()
        where = (method, path, sent.text)
        assert sent.status_code == 503, where
        body = sent.json()
        assert body["type"] == problem_type, where
        assert _comparable(body) in [_comparable(example["value"]) for example in examples], where
        assert ("retry-after" in sent.headers) == (problem_type in RETRY_AFTER_SENT), where


async def test_503_examples_are_what_a_database_down_sends(
    offline_client: httpx.AsyncClient,
) -> None:
    await _assert_503_examples_are_sent(offline_client, "urn:todo-api:database-unavailable")


async def test_503_examples_are_what_an_unmigrated_database_sends(
    new_database: Callable[[], str],
) -> None:
    async with app_client(new_database()) as client:
        await _assert_503_examples_are_sent(client, "urn:todo-api:schema-not-migrated")


async def test_503_examples_are_what_a_misconfigured_database_sends(
    database_url: str, tmp_path: Path
) -> None:
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite":
        refused = f"sqlite:///{tmp_path / 'no-such-directory' / 'todo.sqlite3'}"
    else:
        refused = url.set(database="no_such_database").render_as_string(hide_password=False)
    # Behind PgBouncer, logins after a refused one wait for its server_login_retry.
    async with app_client(refused, db_connect_timeout=2) as client:
        await _assert_503_examples_are_sent(client, "urn:todo-api:database-misconfigured")


async def test_token_errors_are_documented_as_sent(database_url: str) -> None:
    # With a key set to fetch, 503 can also mean its keys cannot be had.
    settings = jwt_settings() | {"auth_jwks_url": "http://127.0.0.1:9/jwks.json"}
    async with app_client(database_url, **settings) as client:
        schema = (await client.get("/openapi.json")).json()
        _check_problem_examples(schema)
        token = jwt.encode(
            {"sub": "bob", "exp": int(time.time()) + 600}, TEST_JWT_SECRET, algorithm="HS256"
        )
        no_token = await client.get(tasks_url("alice"))
        bobs_token = await client.get(
            tasks_url("alice"), headers={"Authorization": f"Bearer {token}"}
        )
    for (method, path), operation in _operations(schema).items():
        if not path.startswith("/api/"):
            assert {"401", "403"}.isdisjoint(operation["responses"]), (method, path)
            continue
        responses = operation["responses"]
        assert "WWW-Authenticate" in responses["401"]["headers"]
        unauthorized = _problem_examples(responses["401"])["missing-token"]["value"]
        assert no_token.json() == unauthorized
        forbidden = _problem_examples(responses["403"])["another-user"]["value"]
        assert bobs_token.json() == forbidden
        keys = _problem_examples(responses["503"])["keys-unavailable"]["value"]
        assert keys["type"] == "urn:todo-api:keys-unavailable"


async def test_retry_after_is_declared_where_it_is_sent(schema: dict[str, Any]) -> None:
    declared = 0
    for (method, path), operation in _operations(schema).items():
        for status, response in _errors(operation).items():
            retried = any(
                example["value"]["type"] in RETRY_AFTER_SENT
                for example in _problem_examples(response).values()
            )
            headers = response.get("headers", {})
            assert ("Retry-After" in headers) == retried, (method, path, status)
            if retried:
                assert headers["Retry-After"]["schema"] == {"type": "integer", "minimum": 1}
                declared += 1
    create_task = schema["paths"]["/api/{user_id}/tasks"]["post"]["responses"]
    assert "Retry-After" in create_task["409"]["headers"]
    assert "Retry-After" in schema["paths"]["/health/ready"]["get"]["responses"]["503"]["headers"]
    # Every task, tag and reminder operation's 503, the create's 409, readiness' 503.
    assert declared == 15


def _integer_schemas(node: Any, where: str = "") -> list[tuple[str, dict[str, Any]]]:
    """Every integer schema in the document, with where it is."""
    if isinstance(node, list):
        # Parameters by name, other items by position.
        return [
            found
            for index, item in enumerate(node)
            for found in _integer_schemas(item, f"{where}/{_name(item, index)}")
        ]
    if not isinstance(node, dict):
        return []
    found = [(where, node)] if node.get("type") == "integer" else []
    for key, value in node.items():
        if key not in {"example", "examples"}:  # data, not schemas
            found += _integer_schemas(value, f"{where}/{key}")
    return found


def _name(item: Any, index: int) -> str:
    return str(item.get("name", index)) if isinstance(item, dict) else str(index)


async def test_64_bit_integers_are_published_as_int64(
    client: httpx.AsyncClient, schema: dict[str, Any]
) -> None:
    raw = (await client.get("/openapi.json")).text
    # No number a JavaScript parser would round (2^63 - 1 may appear inside a description).
    assert re.search(r"[:,\[]\s*-?\d{16,}", raw) is None
    integers = _integer_schemas(schema)
    for where, integer in integers:
        # A bound JavaScript cannot hold exactly is never published as a number.
        for bound in ("maximum", "minimum", "exclusiveMaximum", "exclusiveMinimum"):
            assert abs(integer.get(bound, 0)) <= MAX_SAFE_INTEGER, (where, integer)
    int64 = {where for where, integer in integers if integer.get("format") == "int64"}
    item = "/paths//api/{user_id}/tasks/{task_id}"
    assert {
        f"{item}/get/parameters/task_id/schema",
        f"{item}/put/parameters/task_id/schema",
        f"{item}/complete/patch/parameters/task_id/schema",
        "/paths//api/{user_id}/tasks/get/parameters/offset/schema",
        "/paths//api/{user_id}/tasks/get/responses/200/headers/X-Total-Count/schema",
        "/components/schemas/TaskPublic/properties/id",
        "/components/schemas/TaskStats/properties/total",
        "/components/schemas/BulkUpdateResult/properties/updated",
        "/components/schemas/BulkDeleteResult/properties/deleted",
    } <= int64
    offset = next(
        param
        for param in schema["paths"]["/api/{user_id}/tasks"]["get"]["parameters"]
        if param["name"] == "offset"
    )
    assert offset["schema"]["minimum"] == 0
    assert "9223372036854775807" in offset["description"]
