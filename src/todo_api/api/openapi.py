"""The published OpenAPI document."""

import copy
from collections.abc import Iterator
from typing import Annotated, Any

from fastapi import FastAPI, Query
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute
from pydantic import BaseModel

from todo_api.api import schemas
from todo_api.api.caller import ForbiddenError, KeysUnavailableProblemError, UnauthorizedError
from todo_api.api.list_query import TaskListQuery
from todo_api.api.problems import PROBLEM_MEDIA_TYPE, problem_example
from todo_api.settings import Settings

# The largest integer a JavaScript number holds exactly (Number.MAX_SAFE_INTEGER): JSON.parse
# reads 9223372036854775807 as 9223372036854775808, and Swagger UI shows it as
# 9223372036854776000.
MAX_SAFE_INTEGER = 2**53 - 1
INT64_MAX = 2**63 - 1
_SCHEMA_REF = "#/components/schemas/"
# Operations that validate their query parameters as one model, by operationId.
_QUERY_MODELS: dict[str, type[BaseModel]] = {"list_tasks": TaskListQuery}


def build_openapi(app: FastAPI) -> dict[str, Any]:
    """FastAPI's document, with error bodies under the media type they are really sent as,
    64-bit integers published as such, and each operation's examples fitted to it."""
    if app.openapi_schema is None:
        schema = get_openapi(
            title=app.title,
            version=app.version,
            description=app.description,
            routes=app.routes,
            tags=app.openapi_tags,
        )
        for operation in _operations(schema):
            model = _QUERY_MODELS.get(operation.get("operationId", ""))
            if model is not None:
                _publish_query_model(schema, operation, model)
            for code, response in operation.get("responses", {}).items():
                content = response.get("content", {})
                if code[0] in "45" and "application/json" in content:
                    content[PROBLEM_MEDIA_TYPE] = content.pop("application/json")
            _keep_applicable_validation_examples(schema, operation)
            for param in operation.get("parameters", []):
                # Swagger UI fills "Try it out" from the parameter's example, not the schema's.
                if "example" not in param and param.get("schema", {}).get("examples"):
                    param["example"] = param["schema"]["examples"][0]
        _restore_declared_examples(schema)
        _publish_int64(schema)
        settings: Settings = app.state.settings
        if settings.auth_mode == "jwt":
            _require_bearer_tokens(schema, fetches_keys=settings.auth_jwks_url is not None)
        app.openapi_schema = schema
    return app.openapi_schema


def _operations(schema: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for operations in schema.get("paths", {}).values():
        yield from operations.values()


def _publish_query_model(
    schema: dict[str, Any], operation: dict[str, Any], model: type[BaseModel]
) -> None:
    """The model's fields as the operation's query parameters, after its path parameters,
    exactly as FastAPI publishes a model declared with `Query()`, with the component schemas
    they refer to."""

    async def endpoint(query: Annotated[model, Query()]) -> None:  # type: ignore[valid-type]
        """Never called: FastAPI only reads its signature."""

    document = get_openapi(title="", version="", routes=[APIRoute("/", endpoint)])
    published = document["paths"]["/"]["get"]["parameters"]
    parameters = operation.setdefault("parameters", [])
    after_path = sum(1 for parameter in parameters if parameter["in"] == "path")
    parameters[after_path:after_path] = published
    components = document.get("components", {}).get("schemas", {})
    known = schema.setdefault("components", {}).setdefault("schemas", {})
    for name in _references(published):
        known.setdefault(name, components[name])
    # In FastAPI's order: by name.
    schema["components"]["schemas"] = dict(sorted(known.items()))


def _references(node: Any) -> Iterator[str]:
    """The component schemas a part of the document refers to."""
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith(_SCHEMA_REF):
            yield ref.removeprefix(_SCHEMA_REF)
        for value in node.values():
            yield from _references(value)
    elif isinstance(node, list):
        for value in node:
            yield from _references(value)


def _body_fields(schema: dict[str, Any], operation: dict[str, Any]) -> set[str]:
    """The top-level fields of an operation's JSON body (of each alternative, if several)."""
    content = operation.get("requestBody", {}).get("content", {})
    body = content.get("application/json", {}).get("schema", {})
    fields: set[str] = set()
    for option in [body, *body.get("anyOf", [])]:
        ref = option.get("$ref", "")
        if ref.startswith(_SCHEMA_REF):
            model = schema["components"]["schemas"][ref.removeprefix(_SCHEMA_REF)]
            fields |= set(model.get("properties", {}))
    return fields


def _keep_applicable_validation_examples(schema: dict[str, Any], operation: dict[str, Any]) -> None:
    """Only the 422 examples whose error is in an input this operation has.

    `problem_responses` offers one per kind of input; an empty title is no example for a
    GET, nor for a body that has no title.
    """
    content = operation.get("responses", {}).get("422", {}).get("content", {})
    examples = content.get(PROBLEM_MEDIA_TYPE, {}).get("examples")
    if not examples:
        return
    inputs = {(param["in"], param["name"]) for param in operation.get("parameters", [])}
    inputs |= {("body", field) for field in _body_fields(schema, operation)}
    content[PROBLEM_MEDIA_TYPE]["examples"] = {
        name: example
        for name, example in examples.items()
        if tuple(example["value"]["errors"][0]["loc"][:2]) in inputs
    }


def _restore_declared_examples(schema: dict[str, Any]) -> None:
    """The body models' examples exactly as `todo_api.api.schemas` declares them.

    FastAPI leaves every null out of the document, the examples' too (a new task's
    `completed_at`, a PATCH that clears the description), and Pydantic sorts their keys.
    """
    components = schema.get("components", {}).get("schemas", {})
    for name, model in vars(schemas).items():
        if name not in components or not (isinstance(model, type) and issubclass(model, BaseModel)):
            continue
        extra = model.model_config.get("json_schema_extra")
        if isinstance(extra, dict) and "examples" in extra:
            components[name]["examples"] = copy.deepcopy(extra["examples"])


def _publish_int64(node: Any) -> None:
    """Integer bounds that JavaScript would round become `format: int64`.

    A `maximum` of 2^63 - 1 is dropped and stated in words: the format says the same, and
    schema-driven tools (Schemathesis, generators) read the bound from it.
    """
    if isinstance(node, list):
        for item in node:
            _publish_int64(item)
        return
    if not isinstance(node, dict):
        return
    if node.get("in") in {"path", "query", "header"} and _widen(node.get("schema", {})):
        node["description"] = node["schema"]["description"]
    _widen(node)
    for key, value in node.items():
        if key not in {"example", "examples"}:  # data, not schemas
            _publish_int64(value)


def _widen(schema: dict[str, Any]) -> bool:
    """Publishes an integer schema bounded by 2^63 - 1 as int64; whether it was one."""
    maximum = schema.get("maximum")
    if schema.get("type") != "integer" or not isinstance(maximum, int):
        return False
    if maximum <= MAX_SAFE_INTEGER:
        return False
    if maximum != INT64_MAX or schema.get("minimum", 0) < -INT64_MAX - 1:
        raise ValueError(f"{schema!r}: a bound over 2^53 that is not int64's cannot be published")
    del schema["maximum"]
    schema["format"] = "int64"
    range_words = f"At most {INT64_MAX} (2^63 - 1)."
    schema["description"] = f"{schema.get('description', '')} {range_words}".lstrip()
    return True


BEARER_SCHEME = "bearerAuth"


def _require_bearer_tokens(schema: dict[str, Any], *, fetches_keys: bool) -> None:
    """Declares the bearer token on every task operation, so Swagger UI can send one."""
    schema.setdefault("components", {}).setdefault("securitySchemes", {})[BEARER_SCHEME] = {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "JWT",
        "description": "A token from the auth server; its `sub` must be the path's user id.",
    }
    unauthorized = {
        "missing-token": problem_example(
            UnauthorizedError("Send `Authorization: Bearer <token>` with a token for this API."),
            "No bearer token",
        ),
        "expired-token": problem_example(
            UnauthorizedError("The access token has expired.", expired=True),
            "A token past its `exp`: refresh it and retry",
        ),
    }
    forbidden = {"another-user": problem_example(ForbiddenError(), "Alice's token, Bob's tasks")}
    keys_unavailable = problem_example(
        KeysUnavailableProblemError(), "The auth server's keys (JWKS) cannot be fetched"
    )
    for path, operations in schema.get("paths", {}).items():
        if not path.startswith("/api/"):
            continue
        for operation in operations.values():
            operation["security"] = [{BEARER_SCHEME: []}]
            responses = operation["responses"]
            responses.setdefault(
                "401",
                {
                    "description": "No bearer token, or one that fails verification.",
                    "headers": {
                        "WWW-Authenticate": {
                            "description": "The `Bearer` challenge (RFC 6750 §3).",
                            "schema": {"type": "string"},
                        }
                    },
                    "content": _problem_content(unauthorized),
                },
            )
            responses.setdefault(
                "403",
                {
                    "description": "The token's user is not the path's user.",
                    "content": _problem_content(forbidden),
                },
            )
            if fetches_keys:
                unavailable = responses["503"]["content"][PROBLEM_MEDIA_TYPE]["examples"]
                unavailable["keys-unavailable"] = keys_unavailable


def _problem_content(examples: dict[str, Any]) -> dict[str, Any]:
    return {
        PROBLEM_MEDIA_TYPE: {
            "schema": {"$ref": f"{_SCHEMA_REF}Problem"},
            "examples": examples,
        }
    }
