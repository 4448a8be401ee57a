"""Who is calling: the one place that decides it.

With AUTH_MODE=none the path's user id is the caller. With AUTH_MODE=jwt the caller is the
`sub` of a verified bearer token, and a path naming anyone else is refused.
"""

import re
from typing import Annotated

from fastapi import Depends, Path, Request
from pydantic import AfterValidator
from pydantic_core import PydanticCustomError

from todo_api.api.problems import USER_ID_RULE, ProblemError
from todo_api.auth.jwks import KeysUnavailableError
from todo_api.auth.tokens import InvalidTokenError, TokenVerifier
from todo_api.db.models import USER_ID_MAX_LENGTH

REALM = 'Bearer realm="todo-api"'
KEYS_RETRY_AFTER_SECONDS = 5

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


SUBJECT = re.compile(USER_ID_PATTERN)


class UnauthorizedError(ProblemError):
    """401: no usable credentials. RFC 6750 §3 says how in `WWW-Authenticate`; an expired
    token has a type of its own, so that a frontend knows a refresh will do."""

    def __init__(
        self, detail: str, token_error: str | None = None, *, expired: bool = False
    ) -> None:
        challenge = REALM
        if token_error is not None:
            challenge += f', error="invalid_token", error_description="{token_error}"'
        super().__init__(
            401,
            detail,
            type_="urn:todo-api:token-expired" if expired else "urn:todo-api:unauthorized",
            headers={"WWW-Authenticate": challenge},
        )


class ForbiddenError(ProblemError):
    def __init__(self) -> None:
        super().__init__(
            403,
            "The access token belongs to another user than the one in this URL.",
            type_="urn:todo-api:forbidden",
        )


class KeysUnavailableProblemError(ProblemError):
    def __init__(self) -> None:
        super().__init__(
            503,
            "The keys that verify access tokens cannot be fetched right now; retry shortly.",
            type_="urn:todo-api:keys-unavailable",
            headers={"Retry-After": str(KEYS_RETRY_AFTER_SECONDS)},
        )


def _bearer_token(request: Request) -> str:
    lines = request.headers.getlist("authorization")
    scheme, _, token = lines[0].partition(" ") if len(lines) == 1 else ("", "", "")
    token = token.strip(" ")
    if scheme.lower() != "bearer" or not token or " " in token:
        raise UnauthorizedError("Send `Authorization: Bearer <token>` with a token for this API.")
    return token


async def authorize(request: Request) -> None:
    """401, 403 or 503 unless the request may act for the user in its path.

    Runs before the request's body or parameters are read, so that a caller without a
    token learns nothing about what else was wrong.
    """
    verifier: TokenVerifier | None = request.app.state.token_verifier
    if verifier is None:
        return
    try:
        subject = await verifier.subject(_bearer_token(request))
    except InvalidTokenError as invalid:
        raise UnauthorizedError(
            invalid.description, invalid.description, expired=invalid.expired
        ) from None
    except KeysUnavailableError:
        raise KeysUnavailableProblemError() from None
    if subject != request.path_params.get("user_id"):
        raise ForbiddenError()
    request.state.caller = subject


def _user_id(value: str) -> str:
    # Checked here rather than as the Path's `pattern`, whose message would be the regex.
    if SUBJECT.fullmatch(value) is None:
        raise PydanticCustomError("user_id", USER_ID_RULE)
    return value


async def get_caller_id(
    request: Request,
    user_id: Annotated[
        str,
        Path(
            description="Opaque owner id: letters, digits and `_ - . : @ |`, but not `.` or `..`.",
            examples=["alice"],
            json_schema_extra={
                "pattern": USER_ID_PATTERN,
                "minLength": 1,
                "maxLength": USER_ID_MAX_LENGTH,
            },
        ),
        AfterValidator(_user_id),
    ],
) -> str:
    """The caller; with tokens, `authorize` has already proved the path names them."""
    verified = getattr(request.state, "caller", None)
    if request.app.state.token_verifier is not None and verified != user_id:
        raise ForbiddenError()
    return user_id


CallerId = Annotated[str, Depends(get_caller_id)]
