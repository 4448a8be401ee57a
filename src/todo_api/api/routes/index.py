"""`GET /`: where a person or a client finds the documentation and the API."""

from fastapi import APIRouter, Request
from pydantic import BaseModel

from todo_api import __version__
from todo_api.api.docs import DOCS_URL, REDOC_URL

router = APIRouter()


class Index(BaseModel):
    name: str
    version: str
    docs: str
    redoc: str
    openapi: str
    health: str
    tasks: str


@router.get("/", include_in_schema=False)
async def index(request: Request) -> Index:
    # Not the Host a client sent: without PUBLIC_BASE_URL, paths on this server.
    base = request.app.state.settings.public_base_url or request.scope.get("root_path", "")
    return Index(
        name="Todo API",
        version=__version__,
        docs=f"{base}{DOCS_URL}",
        redoc=f"{base}{REDOC_URL}",
        openapi=f"{base}{request.app.openapi_url}",
        health=f"{base}/health",
        tasks=f"{base}/api/{{user_id}}/tasks",  # an RFC 6570 URI template
    )
