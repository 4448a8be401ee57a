"""AUTH_MODE=jwt: only a verified token's `sub` is the caller, and only for its own path.

Keys are made here and served as a JWKS by a real HTTP server on 127.0.0.1; no network.
"""

import asyncio
import functools
import hashlib
import hmac
import json
import logging
import os
import random
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm
from pydantic import ValidationError
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.helpers import (
    Answer,
    app_client,
    assert_problem,
    local_http_server,
    task_url,
    tasks_url,
)
from todo_api.app import create_app
from todo_api.auth import jwks, refusals
from todo_api.settings import Settings

ISSUER = "http://localhost:3000"
AUDIENCE = "http://localhost:3000"
SECRET = "a-shared-secret-of-at-least-32-bytes!"
REALM = 'Bearer realm="todo-api"'


@dataclass
class SigningKey:
    kid: str
    algorithm: str
    private: Any

    def jwk(self) -> dict[str, Any]:
        public = self.private.public_key()
        if self.algorithm == "EdDSA":
            data = OKPAlgorithm.to_jwk(public, as_dict=True)
        elif self.algorithm.startswith("ES"):
            data = ECAlgorithm.to_jwk(public, as_dict=True)
        else:
            data = RSAAlgorithm.to_jwk(public, as_dict=True)
        return {**data, "kid": self.kid}


def ed25519_key(kid: str = "ed-1") -> SigningKey:
    return SigningKey(kid, "EdDSA", ed25519.Ed25519PrivateKey.generate())


def es256_key(kid: str = "es-1") -> SigningKey:
    return SigningKey(kid, "ES256", ec.generate_private_key(ec.SECP256R1()))


def rs256_key(kid: str = "rs-1") -> SigningKey:
    return SigningKey(kid, "RS256", rsa.generate_private_key(public_exponent=65537, key_size=2048))


@dataclass
class KeyServer:
    """A JWKS at `url`; tests change `keys`, take it `down` and count `fetches`."""

    keys: list[SigningKey]
    url: str = ""
    down: bool = False
    fetches: int = 0
    extra: list[dict[str, Any]] = field(default_factory=list)


@functools.cache
def _published_keys() -> tuple[SigningKey, ...]:
    # Made once: an RSA key takes a while to generate.
    return (ed25519_key(), es256_key(), rs256_key())


@pytest.fixture
def key_server() -> Iterator[KeyServer]:
    server_state = KeyServer(keys=list(_published_keys()))

    def respond() -> Answer:
        server_state.fetches += 1
        if server_state.down:
            return 503, "text/plain", b""
        keys = [key.jwk() for key in server_state.keys] + server_state.extra
        return 200, "application/json", json.dumps({"keys": keys}).encode()

    with local_http_server(respond) as base:
        server_state.url = f"{base}/api/auth/jwks"
        yield server_state


def claims(sub: Any = "alice", **overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    # A jti of its own: two tokens made in the same second still differ, so a test that
    # needs a token checked afresh is not answered from the verified-token memory.
    standard = {"sub": sub, "iat": now, "exp": now + 900, "iss": ISSUER, "aud": AUDIENCE}
    return standard | {"jti": uuid.uuid4().hex} | overrides


def sign(key: SigningKey, payload: dict[str, Any] | None = None, **header: Any) -> str:
    headers = {"kid": key.kid, **header}
    algorithm = headers.pop("alg", key.algorithm)
    return jwt.encode(payload or claims(), key.private, algorithm=algorithm, headers=headers)


def hs256(payload: dict[str, Any] | None = None, secret: str | bytes = SECRET) -> str:
    return jwt.encode(payload or claims(), secret, algorithm="HS256")


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def jwt_client(
    database_url: str, **settings: Any
) -> AbstractAsyncContextManager[httpx.AsyncClient]:
    """A client of an app with AUTH_MODE=jwt: this file's secret, issuer and audience."""
    options: dict[str, Any] = {
        "auth_mode": "jwt",
        "auth_jwt_secret": SECRET,
        "auth_issuer": ISSUER,
        "auth_audience": AUDIENCE,
    }
    return app_client(database_url, **(options | settings))


@pytest.fixture
async def api(
    database_url: str, engine: AsyncEngine, key_server: KeyServer
) -> AsyncIterator[httpx.AsyncClient]:
    async with jwt_client(database_url, auth_jwks_url=key_server.url) as client:
        yield client


async def _count_tasks(engine: AsyncEngine) -> int:
    async with engine.connect() as connection:
        return int((await connection.execute(text("SELECT count(*) FROM tasks"))).scalar_one())


def assert_unauthorized(
    response: httpx.Response, *, invalid_token: bool, expired: bool = False
) -> None:
    body = assert_problem(response, 401)
    expected = "urn:todo-api:token-expired" if expired else "urn:todo-api:unauthorized"
    assert body["type"] == expected
    challenge = response.headers["www-authenticate"]
    if invalid_token:
        assert challenge.startswith(f'{REALM}, error="invalid_token", error_description="')
    else:
        assert challenge == REALM


@pytest.mark.parametrize("make_key", [ed25519_key, es256_key, rs256_key])
async def test_a_token_from_the_jwks_makes_its_subject_the_caller(
    api: httpx.AsyncClient, key_server: KeyServer, make_key: Any
) -> None:
    key = make_key()
    key_server.keys = [key]
    token = bearer(sign(key))
    created = await api.post(tasks_url("alice"), json={"title": "mine"}, headers=token)
    assert created.status_code == 201, created.text
    listed = await api.get(tasks_url("alice"), headers=token)
    assert [task["title"] for task in listed.json()] == ["mine"]


async def test_a_shared_secret_token_makes_its_subject_the_caller(
    api: httpx.AsyncClient,
) -> None:
    response = await api.get(tasks_url("alice"), headers=bearer(hs256()))
    assert response.status_code == 200, response.text


@pytest.mark.parametrize(
    "authorization",
    [None, "", "Bearer", "Bearer ", "Basic YWxpY2U6cHc=", "bearer a b", "Token abc", "Bearer\tx"],
)
async def test_missing_or_malformed_authorization_is_401(
    api: httpx.AsyncClient, authorization: str | None
) -> None:
    headers = {} if authorization is None else {"Authorization": authorization}
    response = await api.get(tasks_url("alice"), headers=headers)
    assert_unauthorized(response, invalid_token=False)


async def test_two_authorization_headers_are_401(api: httpx.AsyncClient) -> None:
    token = f"Bearer {hs256()}"
    response = await api.get(
        tasks_url("alice"), headers=[("Authorization", token), ("Authorization", token)]
    )
    assert_unauthorized(response, invalid_token=False)


def _forged_tokens(key_server: KeyServer) -> dict[str, tuple[str, str]]:
    """Each forged or broken token, and what the server's log must say of it."""
    ed, es, rs = key_server.keys
    now = int(time.time())
    no_exp = claims()
    del no_exp["exp"]
    no_sub = claims()
    del no_sub["sub"]
    no_iss = claims()
    del no_iss["iss"]
    no_aud = claims()
    del no_aud["aud"]
    good = sign(ed)
    head, payload, signature = good.split(".")
    other_payload = jwt.utils.base64url_encode(json.dumps(claims("mallory")).encode()).decode()
    public_pem = rs.private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    unsigned = jwt.utils.base64url_encode(json.dumps({"alg": "none", "kid": ed.kid}).encode())
    signed_by_ed = "signature does not verify with the key 'ed-1'"
    return {
        "alg none": (
            f"{unsigned.decode()}.{payload}.",
            "alg is 'none'; accepted: ES256, EdDSA, RS256, HS256",
        ),
        "HS256 signed with the public key": (
            hmac_token_with(public_pem),
            "signature does not verify with AUTH_JWT_SECRET",
        ),
        "HS256 with another secret": (
            hs256(secret="another-secret-that-is-32-bytes-long!"),
            "signature does not verify with AUTH_JWT_SECRET",
        ),
        "ES256 claimed for the Ed25519 key": (
            _retag(good, "ES256"),
            "kid 'ed-1' is a OKP Ed25519 key; the token's alg is 'ES256'",
        ),
        "EdDSA claimed for the EC key": (
            _retag(sign(es), "EdDSA"),
            "kid 'es-1' is a EC P-256 key; the token's alg is 'EdDSA'",
        ),
        "RS256 key but not configured alg": (sign(rs, alg="RS512"), "alg is 'RS512'"),
        "typ of another use": (sign(ed, typ="dpop+jwt"), "typ is 'dpop+jwt', not JWT"),
        "expired": (sign(ed, claims(exp=now - 120, iat=now - 1000)), "it expired at 20"),
        "exp as a string": (
            sign(ed, claims(exp=str(now + 900))),
            f"exp is '{now + 900}', not a number",
        ),
        "iat as a string": (sign(ed, claims(iat=str(now))), f"iat is '{now}', not a number"),
        "no exp": (sign(ed, no_exp), "it has no exp claim"),
        "nbf in the future": (sign(ed, claims(nbf=now + 600)), "it is not valid before 20"),
        "wrong issuer": (
            sign(ed, claims(iss="http://evil.example")),
            "iss is 'http://evil.example'; AUTH_ISSUER is 'http://localhost:3000'",
        ),
        "no issuer": (sign(ed, no_iss), "it has no iss claim"),
        "wrong audience": (
            sign(ed, claims(aud="http://other.example")),
            "aud is 'http://other.example'; AUTH_AUDIENCE is 'http://localhost:3000'",
        ),
        "no audience": (sign(ed, no_aud), "it has no aud claim"),
        "no sub": (sign(ed, no_sub), "it has no sub claim"),
        "sub not a user id": (sign(ed, claims(sub="..")), "sub '..' is not a user id"),
        "sub not a string": (sign(ed, claims(sub=42)), "ubject must be a string"),
        "tampered payload": (f"{head}.{other_payload}.{signature}", signed_by_ed),
        "unknown kid": (
            sign(ed25519_key("never-published")),
            "kid 'never-published' is not in the key set at http://127.0.0.1:",
        ),
        "not a JWT": ("not.a.jwt", "not a JWT"),
        "garbage": ("x" * 100, "not a JWT"),
    }


def _retag(token: str, algorithm: str) -> str:
    """The same token with another `alg` in its header (its signature no longer fits)."""
    head, payload, signature = token.split(".")
    header = json.loads(jwt.utils.base64url_decode(head))
    header["alg"] = algorithm
    new_head = jwt.utils.base64url_encode(json.dumps(header).encode()).decode()
    return f"{new_head}.{payload}.{signature}"


def hmac_token_with(secret: bytes) -> str:
    """An HS256 token whose "secret" is the RSA public key, made without PyJWT's guard."""
    head = jwt.utils.base64url_encode(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    body = jwt.utils.base64url_encode(json.dumps(claims()).encode())
    signing_input = head + b"." + body
    mac = hmac.new(secret, signing_input, hashlib.sha256).digest()
    return (signing_input + b"." + jwt.utils.base64url_encode(mac)).decode()


async def test_every_forged_or_broken_token_is_401_and_says_nothing_of_it(
    api: httpx.AsyncClient,
    key_server: KeyServer,
    engine: AsyncEngine,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The client learns nothing; the server's log says why, with what was compared."""
    monkeypatch.setattr(refusals, "LOGGED_PER_MINUTE", 1000)
    caplog.set_level(logging.INFO, logger="todo_api.auth")
    for name, (token, reason) in _forged_tokens(key_server).items():
        caplog.clear()
        response = await api.post(tasks_url("alice"), json={"title": "x"}, headers=bearer(token))
        assert response.status_code == 401, (name, response.text)
        assert_unauthorized(response, invalid_token=True, expired=name == "expired")
        assert token not in response.text
        assert token not in response.headers["www-authenticate"]
        [line] = [record.getMessage() for record in caplog.records]
        assert line.startswith("Access token refused: "), (name, line)
        assert reason in line, (name, line)
        signature = token.rsplit(".", 1)[-1]
        assert token not in line, name
        assert not signature or signature not in line, name
    assert await _count_tasks(engine) == 0


async def test_expiry_allows_the_configured_leeway(
    api: httpx.AsyncClient, key_server: KeyServer
) -> None:
    now = int(time.time())
    within = sign(key_server.keys[0], claims(exp=now - 10, iat=now - 900))
    assert (await api.get(tasks_url("alice"), headers=bearer(within))).status_code == 200
    past = sign(key_server.keys[0], claims(exp=now - 45, iat=now - 900))
    response = await api.get(tasks_url("alice"), headers=bearer(past))
    assert_unauthorized(response, invalid_token=True, expired=True)
    assert "expired" in response.headers["www-authenticate"]


async def test_another_users_path_is_403_on_every_operation_and_nothing_changes(
    api: httpx.AsyncClient, key_server: KeyServer, engine: AsyncEngine
) -> None:
    bob = bearer(sign(key_server.keys[0], claims("bob")))
    bobs = await api.post(tasks_url("bob"), json={"title": "bob's"}, headers=bob)
    assert bobs.status_code == 201
    alice = bearer(sign(key_server.keys[0]))
    task = task_url("bob", bobs.json()["id"])
    for method, url, body in [
        ("GET", tasks_url("bob"), None),
        ("POST", tasks_url("bob"), {"title": "planted"}),
        ("GET", f"{tasks_url('bob')}/stats", None),
        ("GET", "/api/bob/tags", None),
        ("PATCH", task, {"tags": ["planted"]}),
        ("POST", f"{tasks_url('bob')}/complete-all", {"completed": True}),
        ("DELETE", f"{tasks_url('bob')}/completed", None),
        ("GET", task, None),
        ("PUT", task, {"title": "hijacked"}),
        ("PATCH", task, {"title": "hijacked"}),
        ("PATCH", f"{task}/complete", None),
        ("DELETE", task, None),
    ]:
        response = await api.request(method, url, json=body, headers=alice)
        body_ = assert_problem(response, 403)
        assert body_["type"] == "urn:todo-api:forbidden"
    assert await _count_tasks(engine) == 1
    still = await api.get(task, headers=bob)
    assert still.json()["title"] == "bob's"
    assert still.json()["completed"] is False


async def test_another_users_task_through_your_own_path_is_404(
    api: httpx.AsyncClient, key_server: KeyServer
) -> None:
    bob = bearer(sign(key_server.keys[0], claims("bob")))
    bobs = (await api.post(tasks_url("bob"), json={"title": "b"}, headers=bob)).json()
    alice = bearer(sign(key_server.keys[0]))
    response = await api.get(task_url("alice", bobs["id"]), headers=alice)
    assert_problem(response, 404)


async def test_authentication_comes_before_body_and_parameter_checks(
    api: httpx.AsyncClient,
) -> None:
    for response in [
        await api.post(
            tasks_url("alice"), content=b"{not json", headers={"Content-Type": "application/json"}
        ),
        await api.post(tasks_url("alice"), json={"title": ""}),
        await api.get(tasks_url("alice"), params={"limit": "many"}),
        await api.get(task_url("alice", "not-a-number")),
        await api.get(task_url("%2e%2e", 1)),  # a user id the path rules refuse
    ]:
        assert_unauthorized(response, invalid_token=False)


async def test_a_20_kb_token_is_refused_not_a_500(api: httpx.AsyncClient) -> None:
    response = await api.get(tasks_url("alice"), headers=bearer("a" * 20_000))
    assert response.status_code in {401, 431}, response.text
    medium = await api.get(tasks_url("alice"), headers=bearer("a" * 9_000))
    assert_unauthorized(medium, invalid_token=True)


async def test_public_endpoints_need_no_token(api: httpx.AsyncClient) -> None:
    for path in ("/health", "/health/ready", "/openapi.json", "/docs", "/redoc"):
        assert (await api.get(path)).status_code == 200, path


async def test_openapi_declares_the_bearer_scheme_on_task_operations(
    api: httpx.AsyncClient,
) -> None:
    document = (await api.get("/openapi.json")).json()
    scheme = document["components"]["securitySchemes"]["bearerAuth"]
    assert (scheme["type"], scheme["scheme"]) == ("http", "bearer")
    for path, operations in document["paths"].items():
        for operation in operations.values():
            if path.startswith("/api/"):
                assert operation["security"] == [{"bearerAuth": []}]
                assert {"401", "403"} <= set(operation["responses"])
            else:
                assert "security" not in operation


async def test_unknown_kids_are_refetched_at_most_once_per_interval(
    api: httpx.AsyncClient, key_server: KeyServer
) -> None:
    ok = await api.get(tasks_url("alice"), headers=bearer(sign(key_server.keys[0])))
    assert ok.status_code == 200
    fetches = key_server.fetches
    started = time.monotonic()
    for _ in range(50):
        stranger = ed25519_key(f"kid-{random.getrandbits(64)}")
        response = await api.get(tasks_url("alice"), headers=bearer(sign(stranger)))
        assert_unauthorized(response, invalid_token=True)
    intervals = (time.monotonic() - started) / jwks.MIN_SECONDS_BETWEEN_FETCHES
    assert key_server.fetches - fetches <= 1 + int(intervals)  # 1 unless the machine crawls


async def test_a_newly_published_key_is_accepted_and_a_removed_one_refused(
    api: httpx.AsyncClient, key_server: KeyServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(jwks, "MIN_SECONDS_BETWEEN_FETCHES", 0.05)
    old = key_server.keys[0]
    assert (await api.get(tasks_url("alice"), headers=bearer(sign(old)))).status_code == 200
    new = ed25519_key("ed-2")
    key_server.keys = [new]
    await asyncio.sleep(0.1)
    assert (await api.get(tasks_url("alice"), headers=bearer(sign(new)))).status_code == 200
    # The old key is gone from the set just fetched.
    assert_unauthorized(
        await api.get(tasks_url("alice"), headers=bearer(sign(old))), invalid_token=True
    )


async def test_keys_already_fetched_keep_working_while_the_jwks_is_down(
    api: httpx.AsyncClient, key_server: KeyServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    token = bearer(sign(key_server.keys[0]))
    assert (await api.get(tasks_url("alice"), headers=token)).status_code == 200
    key_server.down = True
    monkeypatch.setattr(jwks, "KEY_SET_LIFETIME_SECONDS", 0.0)  # every request refetches
    monkeypatch.setattr(jwks, "MIN_SECONDS_BETWEEN_FETCHES", 0.0)
    for _ in range(3):
        fresh = bearer(sign(key_server.keys[0]))  # not yet verified: needs the keys
        assert (await api.get(tasks_url("alice"), headers=fresh)).status_code == 200
    assert key_server.fetches >= 3


async def test_no_keys_ever_and_the_jwks_down_is_503(
    database_url: str, engine: AsyncEngine, key_server: KeyServer
) -> None:
    key_server.down = True
    async with jwt_client(database_url, auth_jwks_url=key_server.url) as client:
        started = time.monotonic()
        response = await client.get(tasks_url("alice"), headers=bearer(sign(key_server.keys[0])))
        assert time.monotonic() - started < jwks.FETCH_TIMEOUT_SECONDS + 1
        body = assert_problem(response, 503)
        assert body["type"] == "urn:todo-api:keys-unavailable"
        assert int(response.headers["retry-after"]) > 0
        # A shared-secret token needs no key set.
        assert (await client.get(tasks_url("alice"), headers=bearer(hs256()))).status_code == 200


async def test_without_a_secret_hs256_is_refused_and_without_a_jwks_asymmetric_is(
    database_url: str, engine: AsyncEngine, key_server: KeyServer
) -> None:
    async with jwt_client(
        database_url, auth_jwks_url=key_server.url, auth_jwt_secret=None
    ) as jwks_only:
        assert_unauthorized(
            await jwks_only.get(tasks_url("alice"), headers=bearer(hs256())), invalid_token=True
        )
    async with jwt_client(database_url) as secret_only:
        token = bearer(sign(key_server.keys[0]))
        assert_unauthorized(
            await secret_only.get(tasks_url("alice"), headers=token), invalid_token=True
        )
        assert key_server.fetches == 0


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"auth_mode": "jwt"}, "AUTH_MODE=jwt needs AUTH_JWKS_URL or AUTH_JWT_SECRET"),
        ({"auth_mode": "jwt", "auth_jwt_secret": "short"}, "at least 32 bytes"),
        ({"auth_jwt_algorithms": "EdDSA,HS256"}, "AUTH_JWT_ALGORITHMS"),
        ({"auth_jwt_algorithms": "none"}, "AUTH_JWT_ALGORITHMS"),
    ],
)
def test_impossible_auth_settings_stop_the_start(settings: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        Settings(_env_file=None, **settings)


def test_auth_settings_are_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AUTH_MODE", "jwt")
    monkeypatch.setenv("AUTH_JWKS_URL", "http://localhost:3000/api/auth/jwks")
    monkeypatch.setenv("AUTH_JWT_ALGORITHMS", "EdDSA, ES512")
    monkeypatch.setenv("AUTH_LEEWAY_SECONDS", "5")
    settings = Settings(_env_file=None)
    assert settings.auth_jwt_algorithms == ["EdDSA", "ES512"]
    assert settings.auth_leeway_seconds == 5
    assert settings.auth_jwt_secret is None


async def test_without_tokens_the_start_warns_that_anyone_can_act_as_anyone(
    database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    app = create_app(Settings(_env_file=None, database_url=database_url))
    with caplog.at_level(logging.WARNING, logger="todo_api.app"):
        async with app.router.lifespan_context(app):
            pass
    warnings = [r.getMessage() for r in caplog.records if r.name == "todo_api.app"]
    assert len(warnings) == 1
    assert "AUTH_MODE=none" in warnings[0]
    assert "any user" in warnings[0]


@pytest.mark.parametrize(
    ("origins", "credentials"), [(["https://app.example.com"], "true"), (["*"], None)]
)
async def test_cors_allows_credentials_for_listed_origins_only(
    database_url: str, origins: list[str], credentials: str | None
) -> None:
    async with app_client(database_url, cors_origins=origins) as client:
        preflight = await client.options(
            tasks_url("alice"),
            headers={
                "Origin": "https://app.example.com",
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "authorization, content-type",
            },
        )
    assert preflight.status_code == 200
    assert preflight.headers.get("access-control-allow-credentials") == credentials
    assert "authorization" in preflight.headers["access-control-allow-headers"].lower()
    if credentials:
        assert preflight.headers["access-control-allow-origin"] == "https://app.example.com"


def test_the_server_names_each_invalid_setting_in_one_line_without_its_value(
    tmp_path: Path,
) -> None:
    env = os.environ | {
        "AUTH_MODE": "jwt",
        "AUTH_JWT_SECRET": "too-short-c0ffee",
        "AUTH_JWT_ALGORITHMS": "HS256",
    }
    result = subprocess.run(
        [sys.executable, "-m", "todo_api"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 2, result.stderr
    assert lines[0].startswith("todo_api: invalid AUTH_JWT_SECRET: ")
    assert lines[1].startswith("todo_api: invalid AUTH_JWT_ALGORITHMS: ")
    assert "c0ffee" not in result.stderr


async def test_a_remembered_token_still_expires(
    database_url: str, engine: AsyncEngine, key_server: KeyServer
) -> None:
    async with jwt_client(
        database_url, auth_jwks_url=key_server.url, auth_leeway_seconds=0
    ) as client:
        expires = int(time.time()) + 2  # at least a second ahead, whatever the fraction now
        token = bearer(sign(key_server.keys[0], claims(exp=expires)))
        assert (await client.get(tasks_url("alice"), headers=token)).status_code == 200
        assert (await client.get(tasks_url("alice"), headers=token)).status_code == 200
        await asyncio.sleep(expires - time.time() + 0.1)
        response = await client.get(tasks_url("alice"), headers=token)
        assert_unauthorized(response, invalid_token=True, expired=True)
        assert "expired" in response.headers["www-authenticate"]


async def test_a_remembered_token_stops_working_once_its_key_is_removed(
    api: httpx.AsyncClient, key_server: KeyServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(jwks, "KEY_SET_LIFETIME_SECONDS", 0.2)
    monkeypatch.setattr(jwks, "MIN_SECONDS_BETWEEN_FETCHES", 0.05)
    token = bearer(sign(key_server.keys[0]))
    assert (await api.get(tasks_url("alice"), headers=token)).status_code == 200
    key_server.keys = [ed25519_key("ed-2")]
    await asyncio.sleep(0.3)
    assert_unauthorized(await api.get(tasks_url("alice"), headers=token), invalid_token=True)


async def test_a_remembered_token_is_forgotten_once_its_key_set_is_stale(
    api: httpx.AsyncClient, key_server: KeyServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Verified late in the key set's lifetime, a token must not outlive that lifetime: the
    key set is fetched again, and a key removed since no longer vouches for it."""
    monkeypatch.setattr(jwks, "KEY_SET_LIFETIME_SECONDS", 1.0)
    monkeypatch.setattr(jwks, "MIN_SECONDS_BETWEEN_FETCHES", 0.05)
    first = bearer(sign(key_server.keys[0]))
    assert (await api.get(tasks_url("alice"), headers=first)).status_code == 200  # fetched
    await asyncio.sleep(0.5)  # half a second of slack before the key set is fetched again
    late = bearer(sign(key_server.keys[0]))
    assert (await api.get(tasks_url("alice"), headers=late)).status_code == 200  # remembered
    key_server.keys = [ed25519_key("ed-2")]
    await asyncio.sleep(0.7)  # the key set is 1.2 s old, the token remembered 0.7 s ago
    assert_unauthorized(await api.get(tasks_url("alice"), headers=late), invalid_token=True)


async def test_a_refresh_that_drops_a_key_forgets_the_tokens_it_verified(
    api: httpx.AsyncClient, key_server: KeyServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(jwks, "MIN_SECONDS_BETWEEN_FETCHES", 0.05)
    old = bearer(sign(key_server.keys[0]))
    assert (await api.get(tasks_url("alice"), headers=old)).status_code == 200
    rotated = ed25519_key("ed-2")
    key_server.keys = [rotated]
    await asyncio.sleep(0.1)
    # A token with the new kid makes the key set be fetched again at once...
    new = bearer(sign(rotated))
    assert (await api.get(tasks_url("alice"), headers=new)).status_code == 200
    # ...and the old key is gone from it, so the token it verified is refused at once.
    assert_unauthorized(await api.get(tasks_url("alice"), headers=old), invalid_token=True)


@pytest.mark.parametrize("typ", ["JWT", "jwt", "at+jwt", "application/at+jwt", None])
async def test_tokens_typed_as_jwts_or_untyped_are_accepted(
    api: httpx.AsyncClient, key_server: KeyServer, typ: str | None
) -> None:
    token = sign(key_server.keys[0], typ=typ)
    assert (jwt.get_unverified_header(token).get("typ")) == typ
    assert (await api.get(tasks_url("alice"), headers=bearer(token))).status_code == 200


@pytest.mark.parametrize(
    "published_as", [{"use": "enc"}, {"key_ops": ["encrypt"]}, {"key_ops": "verify"}]
)
async def test_keys_not_published_for_verifying_signatures_are_ignored(
    api: httpx.AsyncClient,
    key_server: KeyServer,
    published_as: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(jwks, "MIN_SECONDS_BETWEEN_FETCHES", 0.05)
    key = ed25519_key("not-for-signatures")
    key_server.keys = []
    key_server.extra = [key.jwk() | published_as]
    response = await api.get(tasks_url("alice"), headers=bearer(sign(key)))
    assert_unauthorized(response, invalid_token=True)
    key_server.extra = [key.jwk() | {"use": "sig", "key_ops": ["verify"]}]
    await asyncio.sleep(jwks.MIN_SECONDS_BETWEEN_FETCHES)
    assert (await api.get(tasks_url("alice"), headers=bearer(sign(key)))).status_code == 200


async def test_refusals_are_logged_at_most_so_many_a_minute(
    api: httpx.AsyncClient, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(refusals, "_MINUTE", 0.5)
    caplog.set_level(logging.INFO, logger="todo_api.auth")
    for _ in range(refusals.LOGGED_PER_MINUTE + 5):
        await api.get(tasks_url("alice"), headers=bearer("not.a.jwt"))
    assert len(caplog.records) == refusals.LOGGED_PER_MINUTE
    caplog.clear()
    await asyncio.sleep(0.5)
    await api.get(tasks_url("alice"), headers=bearer("not.a.jwt"))
    [record] = caplog.records
    assert record.getMessage().endswith("(5 more refused before this one were not logged)")


async def test_a_browser_can_read_why_a_cross_origin_request_was_refused(
    database_url: str, engine: AsyncEngine
) -> None:
    """A frontend on another origin reads WWW-Authenticate and the problem's type to decide
    to refresh its token."""
    origin = "http://localhost:3000"
    async with jwt_client(database_url, cors_origins=[origin]) as client:
        now = int(time.time())
        expired = hs256(claims(exp=now - 120, iat=now - 1000))
        response = await client.get(
            tasks_url("alice"), headers=bearer(expired) | {"Origin": origin}
        )
    assert_unauthorized(response, invalid_token=True, expired=True)
    assert response.headers["access-control-allow-origin"] == origin
    exposed = {
        name.strip().lower()
        for name in response.headers["access-control-expose-headers"].split(",")
    }
    assert "www-authenticate" in exposed
