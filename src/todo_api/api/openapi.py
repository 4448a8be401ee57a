"""The published OpenAPI document."""

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from todo_api.api.problems import PROBLEM_MEDIA_TYPE


def build_openapi(app: FastAPI) -> dict[str, Any]:
    """FastAPI's document, with error bodies under the media type they are really sent as."""
    if app.openapi_schema is None:
        schema = get_openapi(
            title=app.title,
            version=app.version,
            description=app.description,
            routes=app.routes,
            tags=app.openapi_tags,
        )
        for operations in schema.get("paths", {}).values():
            for operation in operations.values():
                for code, response in operation.get("responses", {}).items():
                    content = response.get("content", {})
                    if code[0] in "45" and "application/json" in content:
                        content[PROBLEM_MEDIA_TYPE] = content.pop("application/json")
        if app.state.settings.auth_mode == "jwt":
            _require_bearer_tokens(schema)
        app.openapi_schema = schema
    return app.openapi_schema


BEARER_SCHEME = "bearerAuth"


def _require_bearer_tokens(schema: dict[str, Any]) -> None:
    """Declares the bearer token on every task operation, so Swagger UI can send one."""
    schema.setdefault("components", {}).setdefault("securitySchemes", {})[BEARER_SCHEME] = {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "JWT",
        "description": "A token from the auth server; its `sub` must be the path's user id.",
    }
    problem = {PROBLEM_MEDIA_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}}
    for path, operations in schema.get("paths", {}).items():
        if not path.startswith("/api/"):
            continue
        for operation in operations.values():
            operation["security"] = [{BEARER_SCHEME: []}]
            operation["responses"].setdefault(
                "401",
                {
                    "description": "No bearer token, or one that fails verification.",
                    "content": problem,
                },
            )
            operation["responses"].setdefault(
                "403",
                {"description": "The token's user is not the path's user.", "content": problem},
            )
