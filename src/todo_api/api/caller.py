"""Who is calling. The only place that decides it: an auth layer replaces this module."""

from typing import Annotated

from fastapi import Depends, Path

from todo_api.db.models import USER_ID_MAX_LENGTH

_ID_CHAR = r"[A-Za-z0-9_\-.:@|]"
_NOT_DOT = r"[A-Za-z0-9_\-:@|]"
# `.` and `..` are dot segments: clients and proxies resolve /api/../tasks to /tasks
# (RFC 3986 5.2.4), so such an id would name URLs nobody can reach. Pydantic checks the
# pattern with Rust's regex engine, which has no lookahead, so the alternatives split ids by
# how they start: not a dot; a dot and a non-dot; two dots and at least one more character.
USER_ID_PATTERN = (
    rf"^(?:{_NOT_DOT}{_ID_CHAR}{{0,{USER_ID_MAX_LENGTH - 1}}}"
    rf"|\.{_NOT_DOT}{_ID_CHAR}{{0,{USER_ID_MAX_LENGTH - 2}}}"
    rf"|\.\.{_ID_CHAR}{{1,{USER_ID_MAX_LENGTH - 2}}})$"
)


async def get_caller_id(
    user_id: Annotated[
        str,
        Path(
            pattern=USER_ID_PATTERN,
            min_length=1,
            max_length=USER_ID_MAX_LENGTH,
            description="Opaque owner id: letters, digits and `_ - . : @ |`, but not `.` or `..`.",
            examples=["alice"],
        ),
    ],
) -> str:
    """Today the caller is whoever the path names; token verification will go here."""
    return user_id


CallerId = Annotated[str, Depends(get_caller_id)]
