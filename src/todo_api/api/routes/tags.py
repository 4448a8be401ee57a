"""The caller's tags, counted."""

from fastapi import APIRouter, Request, Response

from todo_api.api.authorized_route import AuthorizedRoute
from todo_api.api.caller import CallerId
from todo_api.api.conditional import (
    IF_NONE_MATCH,
    NOT_MODIFIED,
    content_etag,
    etag_header,
    field_list,
    none_match,
    not_modified,
)
from todo_api.api.dependencies import database_of
from todo_api.api.json_encoding import to_json
from todo_api.api.problems import problem_responses
from todo_api.api.schemas import TagCount
from todo_api.db.tags import count_tags

router = APIRouter(
    prefix="/api/{user_id}/tags",
    tags=["tasks"],
    responses=problem_responses(422, 503),
    route_class=AuthorizedRoute,
)


@router.get(
    "",
    operation_id="list_tags",
    summary="List the caller's tags with how many tasks carry each",
    response_model=list[TagCount],
    openapi_extra={"parameters": [IF_NONE_MATCH]},
    responses={
        200: {"headers": etag_header("Entity tag of this list of tags and counts.")},
        **NOT_MODIFIED,
    },
)
async def list_tags(owner: CallerId, request: Request) -> Response:
    """Sorted by name ignoring case; a tag no task carries any more is gone. One query."""
    database = database_of(request)
    counts = await count_tags(database, owner=owner)
    body = to_json([{"name": tag.name, "count": tag.count} for tag in counts])
    etag = content_etag(body)
    if not none_match(field_list(request.headers, "if-none-match"), etag):
        return not_modified(etag)
    return Response(body, headers={"ETag": etag}, media_type="application/json")
