"""The published OpenAPI document is complete enough to generate clients from."""

from typing import Any

import httpx
import pytest

from tests.helpers import TASK_FIELDS

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
