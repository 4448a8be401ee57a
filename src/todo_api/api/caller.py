"""Who is calling. The only place that decides it: an auth layer replaces this module."""

from typing import Annotated

from fastapi import Depends, Path

from todo_api.db.models import USER_ID_MAX_LENGTH

USER_ID_PATTERN = rf"^[A-Za-z0-9_\-.:@|]{{1,{USER_ID_MAX_LENGTH}}}$"


async def get_caller_id(
    user_id: Annotated[
        str,
        Path(
            pattern=USER_ID_PATTERN,
            min_length=1,
            max_length=USER_ID_MAX_LENGTH,
            description="Opaque owner id: letters, digits and `_ - . : @ |`.",
            examples=["alice"],
        ),
    ],
) -> str:
    """Today the caller is whoever the path names; token verification will go here."""
    return user_id


CallerId = Annotated[str, Depends(get_caller_id)]
