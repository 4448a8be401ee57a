"""Bearer tokens (JWTs): which user a token proves the request comes from."""

import math
import re
import time
from dataclasses import dataclass

import httpx
import jwt

from todo_api.auth import jwks
from todo_api.auth.jwks import JwksCache
from todo_api.settings import Settings

#: Longer than any token an auth server issues; refused before it is even decoded.
MAX_TOKEN_CHARS = 8 * 1024
_SHARED_SECRET_ALGORITHM = "HS256"
_REQUIRED_CLAIMS = ["exp", "sub"]
#: Tokens verified and remembered at once. A frontend sends the same token for its whole
#: lifetime (15 minutes with Better Auth), and checking an EdDSA signature costs about as much
#: CPU as a sixth of a read; only tokens that passed every check are remembered.
MAX_REMEMBERED_TOKENS = 4096


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
        # token -> (subject, usable from, usable until), both in time.time() seconds.
        self._verified: dict[str, tuple[str, float, float]] = {}

    async def subject(self, token: str) -> str:
        """The user id the token was issued to. Raises InvalidTokenError, or
        KeysUnavailableError when the keys that could check it cannot be had."""
        remembered = self._verified.get(token)
        if remembered is not None:
            subject, usable_from, usable_until = remembered
            if usable_from <= time.time() < usable_until:
                return subject
            del self._verified[token]
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
        self._remember(token, subject, claims)
        return subject

    def _remember(self, token: str, subject: str, claims: dict[str, object]) -> None:
        """Keeps a verified token until it expires, but no longer than the key set is
        trusted: a key the auth server removes must stop working as the JWKS docs say."""
        leeway = self._checks.leeway
        now = time.time()
        expires = claims["exp"]
        not_before = claims.get("nbf")
        usable_until = min(
            float(expires) + leeway if isinstance(expires, int | float) else now,
            now + jwks.KEY_SET_LIFETIME_SECONDS,
        )
        usable_from = (
            float(not_before) - leeway if isinstance(not_before, int | float) else -math.inf
        )
        if len(self._verified) >= MAX_REMEMBERED_TOKENS:
            del self._verified[next(iter(self._verified))]  # the oldest
        self._verified[token] = (subject, usable_from, usable_until)
