"""Bearer tokens (JWTs): which user a token proves the request comes from."""

import re
from dataclasses import dataclass

import httpx
import jwt

from todo_api.auth.jwks import JwksCache
from todo_api.settings import Settings

#: Longer than any token an auth server issues; refused before it is even decoded.
MAX_TOKEN_CHARS = 8 * 1024
_SHARED_SECRET_ALGORITHM = "HS256"
_REQUIRED_CLAIMS = ["exp", "sub"]


class InvalidTokenError(Exception):
    """The token proves nothing. `description` is safe to send: it quotes nothing from it."""

    def __init__(self, description: str = "The access token is invalid.") -> None:
        super().__init__(description)
        self.description = description


@dataclass(frozen=True)
class _Checks:
    algorithms: frozenset[str]
    issuer: str | None
    audience: str | None
    leeway: int


class TokenVerifier:
    """Checks a token's signature and claims; the algorithm comes from the key, not the token.

    An HS256 token is only ever checked against the shared secret, any other only against
    the JWKS key its `kid` names, of the kind its `alg` needs, and only for the configured
    asymmetric algorithms.
    """

    def __init__(self, settings: Settings, client: httpx.AsyncClient, subject: re.Pattern[str]):
        secret = settings.auth_jwt_secret
        self._secret = None if secret is None else secret.get_secret_value()
        self._jwks = (
            None if not settings.auth_jwks_url else JwksCache(settings.auth_jwks_url, client)
        )
        self._checks = _Checks(
            algorithms=frozenset(settings.auth_jwt_algorithms),
            issuer=settings.auth_issuer,
            audience=settings.auth_audience,
            leeway=settings.auth_leeway_seconds,
        )
        self._subject = subject

    async def subject(self, token: str) -> str:
        """The user id the token was issued to. Raises InvalidTokenError, or
        KeysUnavailableError when the keys that could check it cannot be had."""
        if len(token) > MAX_TOKEN_CHARS:
            raise InvalidTokenError()
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise InvalidTokenError() from None
        algorithm = header.get("alg")
        key: object
        if algorithm == _SHARED_SECRET_ALGORITHM and self._secret is not None:
            key = self._secret
        elif (
            isinstance(algorithm, str)
            and algorithm in self._checks.algorithms
            and self._jwks is not None
            and isinstance(header.get("kid"), str)
        ):
            found = await self._jwks.key(header["kid"], algorithm)
            if found is None:
                raise InvalidTokenError()
            key = found.key
        else:
            raise InvalidTokenError()  # `none`, an algorithm not configured, no key to use
        checks = self._checks
        try:
            claims = jwt.decode(
                token,
                key,  # type: ignore[arg-type]
                algorithms=[algorithm],
                issuer=checks.issuer,
                audience=checks.audience,
                leeway=checks.leeway,
                options={"require": _REQUIRED_CLAIMS, "verify_aud": checks.audience is not None},
            )
        except jwt.ExpiredSignatureError:
            raise InvalidTokenError("The access token has expired.") from None
        except jwt.PyJWTError:
            raise InvalidTokenError() from None
        subject = claims["sub"]
        if not isinstance(subject, str) or self._subject.fullmatch(subject) is None:
            raise InvalidTokenError()
        return subject
