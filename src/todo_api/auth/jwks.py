"""The auth server's public keys (a JWKS), fetched without blocking and cached."""

import asyncio
import logging
import time
from dataclasses import dataclass, field
from typing import Any

import httpx
from jwt import PyJWK
from jwt.exceptions import PyJWKError

from todo_api.auth.refusals import quoted

logger = logging.getLogger(__name__)

#: How long a fetched key set is trusted before it is fetched again: a key the auth server
#: removed stops working at most this long after.
KEY_SET_LIFETIME_SECONDS = 300.0
#: At most one fetch per this many seconds, however many tokens name an unknown `kid`: a key
#: newly published is picked up within it, random `kid`s cannot turn into a flood of fetches.
MIN_SECONDS_BETWEEN_FETCHES = 5.0
FETCH_TIMEOUT_SECONDS = 3.0
#: A key set larger than this is no key set of an auth server.
MAX_KEY_SET_BYTES = 256 * 1024


class KeysUnavailableError(Exception):
    """No key set was ever obtained, and the JWKS cannot be fetched now."""


class NoUsableKeyError(Exception):
    """The key set has no key that may check this token; the message says why, for the
    server's log (it names the key ids published, never a key)."""


# The algorithms each kind of published key can verify: a token's `alg` must fit its key.
_ALGORITHMS_BY_KEY: dict[tuple[Any, Any], set[str]] = {
    ("OKP", "Ed25519"): {"EdDSA"},
    ("EC", "P-256"): {"ES256"},
    ("EC", "P-384"): {"ES384"},
    ("EC", "P-521"): {"ES512"},
    ("RSA", None): {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512"},
}


def _fits(algorithm: str, entry: dict[str, Any]) -> bool:
    """Whether a token signed with `algorithm` may be checked against this JWK."""
    if "alg" in entry and entry["alg"] != algorithm:
        return False
    kind = (entry.get("kty"), entry.get("crv") if entry.get("kty") != "RSA" else None)
    return algorithm in _ALGORITHMS_BY_KEY.get(kind, set())


@dataclass
class _Fetched:
    entries: dict[str, dict[str, Any]] = field(default_factory=dict)
    at: float | None = None
    # Keys parsed for one algorithm each, as tokens ask for them.
    parsed: dict[tuple[str, str], PyJWK] = field(default_factory=dict)


class JwksCache:
    """Signing keys by `kid`; refreshed when stale or asked for a `kid` it does not know."""

    def __init__(self, url: str, client: httpx.AsyncClient) -> None:
        self.url = url
        self.client = client
        self._fetched = _Fetched()
        self._last_attempt = -MIN_SECONDS_BETWEEN_FETCHES
        self._lock = asyncio.Lock()

    async def key(self, kid: str, algorithm: str) -> PyJWK:
        """The key with this id for a token signed with `algorithm`.

        NoUsableKeyError when there is none, or when the key is of another kind than
        `algorithm` needs: the algorithm is decided by the key and the configuration, never
        by the token alone.
        """
        fetched = self._fetched
        fresh = fetched.at is not None and time.monotonic() - fetched.at < KEY_SET_LIFETIME_SECONDS
        if not fresh or kid not in fetched.entries:
            await self._refresh()
            fetched = self._fetched
        if fetched.at is None:
            raise KeysUnavailableError(self.url)
        entry = fetched.entries.get(kid)
        if entry is None:
            published = ", ".join(repr(known) for known in sorted(fetched.entries)[:10])
            raise NoUsableKeyError(
                f"kid {quoted(kid)} is not in the key set at {self.url} "
                f"(it has {published or 'no signing keys'})"
            )
        if not _fits(algorithm, entry):
            kind = " ".join(str(entry[name]) for name in ("kty", "crv", "alg") if name in entry)
            raise NoUsableKeyError(
                f"kid {quoted(kid)} is a {kind} key; the token's alg is {quoted(algorithm)}"
            )
        parsed = fetched.parsed.get((kid, algorithm))
        if parsed is None:
            try:
                parsed = PyJWK(entry, algorithm)
            except PyJWKError:
                raise NoUsableKeyError(
                    f"kid {quoted(kid)} cannot be read as a {algorithm} key"
                ) from None
            fetched.parsed[(kid, algorithm)] = parsed
        return parsed

    def holds(self, kid: str) -> bool:
        """Whether the key set, fetched less than KEY_SET_LIFETIME_SECONDS ago, has `kid`:
        a token verified with a key removed since must be verified again."""
        fetched = self._fetched
        return (
            fetched.at is not None
            and time.monotonic() - fetched.at < KEY_SET_LIFETIME_SECONDS
            and kid in fetched.entries
        )

    async def _refresh(self) -> None:
        async with self._lock:
            # Whoever waited for the lock finds the fetch just made by the one before.
            if time.monotonic() - self._last_attempt < MIN_SECONDS_BETWEEN_FETCHES:
                return
            self._last_attempt = time.monotonic()
            try:
                keys = await self._fetch()
            except (httpx.HTTPError, ValueError) as exc:
                # The keys already held keep working until a fetch succeeds.
                logger.warning("Could not fetch the JWKS at %s: %s", self.url, type(exc).__name__)
                return
            self._fetched = _Fetched(entries=keys, at=time.monotonic())

    async def _fetch(self) -> dict[str, dict[str, Any]]:
        response = await self.client.get(self.url, timeout=FETCH_TIMEOUT_SECONDS)
        response.raise_for_status()
        if len(response.content) > MAX_KEY_SET_BYTES:
            raise ValueError("key set too large")
        document: Any = response.json()
        keys = {}
        for entry in document.get("keys", []) if isinstance(document, dict) else []:
            # Only asymmetric keys with an id: a symmetric key in a public document would let
            # anyone who reads it sign tokens. And only keys published for signatures
            # (RFC 7517 §4.2, §4.3): an encryption key does not vouch for a token.
            if not isinstance(entry, dict) or entry.get("kty") not in ("OKP", "EC", "RSA"):
                continue
            if entry.get("use", "sig") != "sig":
                continue
            operations = entry.get("key_ops")
            if operations is not None and (
                not isinstance(operations, list) or "verify" not in operations
            ):
                continue
            kid = entry.get("kid")
            if isinstance(kid, str):
                keys[kid] = entry
        return keys
