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


async def verified_subject(request: Request) -> str | None:
    """With tokens, the `sub` of the request's verified bearer token (else 401, or 503 when
    the keys cannot be had); without them (AUTH_MODE=none), None: nothing is verified."""
    verifier: TokenVerifier | None = request.app.state.token_verifier
    if verifier is None:
        return None
    try:
        return await verifier.subject(_bearer_token(request))
    except InvalidTokenError as invalid:
        raise UnauthorizedError(
            invalid.description, invalid.description, expired=invalid.expired
        ) from None
    except KeysUnavailableError:
        raise KeysUnavailableProblemError() from None


async def authorize(request: Request) -> None:
    """401, 403 or 503 unless the request may act for the user in its path.

    Runs before the request's body or parameters are read, so that a caller without a
    token learns nothing about what else was wrong.
    """
    subject = await verified_subject(request)
    if subject is None:
        return
    if subject != request.path_params.get("user_id"):
        raise ForbiddenError()
    request.state.caller = subject


class ToolCallerError(Exception):
    """A tool call that names no user it may act for; the message says so to the model."""


MISMATCHED_USER = "forbidden: user_id does not match the signed-in user"


def tool_caller(verified: str | None, user_id: str | None, *, signed_in: bool) -> str:
    """Whom an MCP tool call acts for. With tokens (`signed_in`), the `sub` that
    `verified_subject` proved for the request, which a `user_id` argument may only repeat;
    without them, the `user_id` argument, like the path's user id in REST."""
    if signed_in:
        if verified is None:  # the endpoint verifies before any tool runs; never guess
            raise ToolCallerError("not signed in: send the bearer token with the request")
        if user_id is not None and user_id != verified:
            raise ToolCallerError(MISMATCHED_USER)
        return verified
    if user_id is None:
        raise ToolCallerError(
            "user_id is required: without sign-in (AUTH_MODE=none) it names the user"
        )
    if SUBJECT.fullmatch(user_id) is None:
        raise ToolCallerError(f"invalid user_id: {USER_ID_RULE}")
    return user_id


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
