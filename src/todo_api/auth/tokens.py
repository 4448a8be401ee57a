"""Bearer tokens (JWTs): which user a token proves the request comes from."""

import datetime as dt
import math
import re
import time
from dataclasses import dataclass
from typing import Any

import httpx
import jwt

from todo_api.auth.jwks import JwksCache, NoUsableKeyError
from todo_api.auth.refusals import RefusalLog, quoted
from todo_api.settings import Settings

#: Longer than any token an auth server issues; refused before it is even decoded.
MAX_TOKEN_CHARS = 8 * 1024
_SHARED_SECRET_ALGORITHM = "HS256"
_REQUIRED_CLAIMS = ["exp", "sub"]
_TIME_CLAIMS = ("exp", "nbf", "iat")
#: `typ` values (RFC 7519 §5.1, RFC 9068 §2.1; compared without case) a token may carry,
#: besides none: any other says the JWT is meant for something else (RFC 8725 §3.11).
_ACCEPTED_TYPES = frozenset({"jwt", "application/jwt", "at+jwt", "application/at+jwt"})
#: Tokens verified and remembered at once. A frontend sends the same token for its whole
#: lifetime (15 minutes with Better Auth), and checking an EdDSA signature costs about as much
#: CPU as a sixth of a read; only tokens that passed every check are remembered.
MAX_REMEMBERED_TOKENS = 4096
INVALID = "The access token is invalid."
EXPIRED = "The access token has expired."


class InvalidTokenError(Exception):
    """The token proves nothing. `description` is safe to send: it quotes nothing from it;
    `reason` says what was wrong, with the values compared, for the server's log only."""

    def __init__(self, reason: str, description: str = INVALID) -> None:
        super().__init__(description)
        self.description = description
        self.reason = reason

    @property
    def expired(self) -> bool:
        return self.description == EXPIRED


@dataclass(frozen=True)
class _Checks:
    algorithms: frozenset[str]
    issuer: str | None
    audience: str | None
    leeway: int


@dataclass(frozen=True)
class _Remembered:
    subject: str
    usable_from: float  # time.time() seconds
    usable_until: float
    kid: str | None  # the JWKS key that verified it; None for the shared secret


class TokenVerifier:
    """Checks a token's signature and claims; the algorithm comes from the key, not the token.

    An HS256 token is only ever checked against the shared secret, any other only against
    the JWKS key its `kid` names, of the kind its `alg` needs, and only for the configured
    asymmetric algorithms. Each refusal is logged with its reason (rate-limited).
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
        self._verified: dict[str, _Remembered] = {}
        self._refusals = RefusalLog()

    async def subject(self, token: str) -> str:
        """The user id the token was issued to. Raises InvalidTokenError, or
        KeysUnavailableError when the keys that could check it cannot be had."""
        remembered = self._verified.get(token)
        if remembered is not None:
            if remembered.usable_from <= time.time() < remembered.usable_until and (
                remembered.kid is None or self._jwks is None or self._jwks.holds(remembered.kid)
            ):
                return remembered.subject
            del self._verified[token]
        try:
            return await self._verify(token)
        except InvalidTokenError as refused:
            self._refusals.refused(refused.reason)
            raise

    async def _verify(self, token: str) -> str:
        if len(token) > MAX_TOKEN_CHARS:
            raise InvalidTokenError(f"longer than {MAX_TOKEN_CHARS} characters ({len(token)})")
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise InvalidTokenError(f"not a JWT ({quoted(str(exc))})") from None
        token_type = header.get("typ")
        if token_type is not None and (
            not isinstance(token_type, str) or token_type.lower() not in _ACCEPTED_TYPES
        ):
            raise InvalidTokenError(f"typ is {quoted(token_type)}, not JWT or at+jwt")
        algorithm, kid = header.get("alg"), header.get("kid")
        key: object
        if algorithm == _SHARED_SECRET_ALGORITHM and self._secret is not None:
            key, kid = self._secret, None
        elif (
            isinstance(algorithm, str)
            and algorithm in self._checks.algorithms
            and self._jwks is not None
            and isinstance(kid, str)
        ):
            try:
                key = (await self._jwks.key(kid, algorithm)).key
            except NoUsableKeyError as exc:
                raise InvalidTokenError(str(exc)) from None
        else:
            raise InvalidTokenError(self._no_key_for(algorithm, kid))
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
        except jwt.PyJWTError as exc:
            raise self._refusal(exc, token, kid) from None
        for name in _TIME_CLAIMS:
            # PyJWT takes "9999999999" (a string) for a number; RFC 7519 §2 does not.
            value = claims.get(name)
            if name in claims and (not isinstance(value, int | float) or isinstance(value, bool)):
                raise InvalidTokenError(f"{name} is {quoted(value)}, not a number")
        subject = claims["sub"]
        if not isinstance(subject, str) or self._subject.fullmatch(subject) is None:
            raise InvalidTokenError(f"sub {quoted(subject)} is not a user id this API accepts")
        self._remember(token, subject, claims, kid)
        return subject

    def _no_key_for(self, algorithm: object, kid: object) -> str:
        if algorithm == _SHARED_SECRET_ALGORITHM:
            return "alg is HS256, but AUTH_JWT_SECRET is not set"
        if not isinstance(algorithm, str) or algorithm not in self._checks.algorithms:
            accepted = sorted(self._checks.algorithms) + (["HS256"] if self._secret else [])
            return f"alg is {quoted(algorithm)}; accepted: {', '.join(accepted)}"
        if self._jwks is None:
            return f"alg is {algorithm}, which needs AUTH_JWKS_URL, and it is not set"
        return f"kid is {quoted(kid)}: a token checked against the JWKS names its key"

    def _refusal(self, exc: jwt.PyJWTError, token: str, kid: str | None) -> InvalidTokenError:
        """What PyJWT refused, with the values it compared."""
        checks = self._checks
        if isinstance(exc, jwt.InvalidSignatureError):
            by = "AUTH_JWT_SECRET" if kid is None else f"the key {quoted(kid)}"
            return InvalidTokenError(f"its signature does not verify with {by}")
        if isinstance(exc, jwt.MissingRequiredClaimError):
            return InvalidTokenError(f"it has no {exc.claim} claim")
        received = _unverified_claims(token)
        now = time.time()
        if isinstance(exc, jwt.ExpiredSignatureError):
            expired = _seconds(received.get("exp"))
            ago = "" if expired is None else f", {now - expired:.0f} s ago"
            return InvalidTokenError(
                f"it expired at {_instant(expired)}{ago} (leeway {checks.leeway} s)", EXPIRED
            )
        if isinstance(exc, jwt.ImmatureSignatureError):
            times = [_seconds(received.get(name)) for name in ("nbf", "iat")]
            starts = max((seconds for seconds in times if seconds is not None), default=None)
            ahead = "" if starts is None else f", {starts - now:.0f} s from now"
            return InvalidTokenError(
                f"it is not valid before {_instant(starts)}{ahead} (leeway {checks.leeway} s)"
            )
        if isinstance(exc, jwt.InvalidIssuerError):
            return InvalidTokenError(
                f"iss is {quoted(received.get('iss'))}; AUTH_ISSUER is {quoted(checks.issuer)}"
            )
        if isinstance(exc, jwt.InvalidAudienceError):
            return InvalidTokenError(
                f"aud is {quoted(received.get('aud'))}; AUTH_AUDIENCE is {quoted(checks.audience)}"
            )
        return InvalidTokenError(f"{type(exc).__name__}: {quoted(str(exc))}")

    def _remember(self, token: str, subject: str, claims: dict[str, Any], kid: str | None) -> None:
        """Keeps a verified token until it expires, and only while the key that verified it
        is in a fresh key set: a key the auth server removes must stop working as the JWKS
        docs say."""
        leeway = self._checks.leeway
        not_before = claims.get("nbf")
        usable_from = float(not_before) - leeway if not_before is not None else -math.inf
        if len(self._verified) >= MAX_REMEMBERED_TOKENS:
            del self._verified[next(iter(self._verified))]  # the oldest
        self._verified[token] = _Remembered(
            subject, usable_from, float(claims["exp"]) + leeway, kid
        )


def _unverified_claims(token: str) -> dict[str, Any]:
    """The claims of a token already refused, to say in the log what it carried."""
    try:
        claims: dict[str, Any] = jwt.decode(token, options={"verify_signature": False})
    except jwt.PyJWTError:
        return {}
    return claims


def _seconds(value: object) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _instant(seconds: float | None) -> str:
    if seconds is None:
        return "an unreadable time"
    try:
        return dt.datetime.fromtimestamp(seconds, dt.UTC).isoformat(timespec="seconds")
    except (OverflowError, OSError, ValueError):
        return quoted(seconds)
