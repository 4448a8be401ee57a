"""The real Better Auth (npm `better-auth`, memory adapter, `jwt()` plugin) as the auth server.

Each test starts Better Auth under Node on 127.0.0.1, signs users up, takes their tokens from
`/api/auth/token` and calls this API configured with that server's JWKS, issuer and audience.
"""

import fcntl
import os
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from contextlib import AbstractAsyncContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client
from sqlalchemy.ext.asyncio import AsyncEngine

from tests.helpers import app_client, assert_problem, tasks_url
from tests.live_server import running_server
from tests.ports import free_port

SERVER_DIR = Path(__file__).parent / "better_auth"
STARTUP_SECONDS = 30.0


@pytest.fixture(scope="session")
def node_modules() -> Path:
    """Installs the pinned `better-auth` (npm ci) once per run."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        message = "Node.js and npm are needed to run the real Better Auth"
        if os.environ.get("CI", "").lower() in {"1", "true", "yes"}:
            pytest.fail(f"{message} (CI=true: failing instead of skipping)")
        pytest.skip(message)
    modules = SERVER_DIR / "node_modules"
    lock = SERVER_DIR / "package-lock.json"
    installed = modules / ".package-lock.json"
    # `make test` runs its passes at once: one installs while the others wait, and then
    # find it done (two `npm ci` in one directory remove each other's files).
    with (SERVER_DIR / ".install.lock").open("w") as install_lock:
        fcntl.flock(install_lock, fcntl.LOCK_EX)
        if not installed.exists() or installed.stat().st_mtime < lock.stat().st_mtime:
            subprocess.run(
                [npm, "ci", "--no-audit", "--no-fund"], cwd=SERVER_DIR, check=True, timeout=300
            )
    return modules


@dataclass
class BetterAuth:
    url: str

    @property
    def jwks_url(self) -> str:
        return f"{self.url}/api/auth/jwks"

    def user_and_token(self) -> tuple[str, str]:
        """Signs a new user up by email; returns their id and a token from /api/auth/token."""
        return self._signed_up_with_token("/api/auth/token")

    def server_side_token(self) -> tuple[str, str]:
        """Signs a new user up; returns their id and the token a Next.js server would get
        with `auth.api.getToken({ headers })` for the request carrying their session."""
        return self._signed_up_with_token("/server-side-token")

    def _signed_up_with_token(self, token_path: str) -> tuple[str, str]:
        # Better Auth checks the Origin of requests that carry cookies against its baseURL.
        with httpx.Client(base_url=self.url, headers={"Origin": self.url}, timeout=10) as client:
            signed_up = client.post(
                "/api/auth/sign-up/email",
                json={
                    "email": f"{uuid.uuid4().hex[:12]}@example.com",
                    "password": "correct horse battery staple",
                    "name": "Test User",
                },
            )
            assert signed_up.status_code == 200, signed_up.text
            token = client.get(token_path)
            assert token.status_code == 200, token.text
            return str(signed_up.json()["user"]["id"]), str(token.json()["token"])


@contextmanager
def better_auth(algorithm: str, log_path: Path) -> Iterator[BetterAuth]:
    port = free_port()
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            ["node", "server.mjs"],
            cwd=SERVER_DIR,
            env=os.environ | {"PORT": str(port), "JWT_ALG": algorithm},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    server = BetterAuth(f"http://127.0.0.1:{port}")
    try:
        deadline = time.monotonic() + STARTUP_SECONDS
        while "ready" not in log_path.read_text():
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"Better Auth did not start:\n{log_path.read_text()}")
            time.sleep(0.05)
        yield server
    finally:
        process.terminate()
        process.wait(timeout=10)


def api_for(database_url: str, auth: BetterAuth) -> AbstractAsyncContextManager[httpx.AsyncClient]:
    """A client of this API, checking tokens against that Better Auth's keys and names."""
    return app_client(
        database_url,
        auth_mode="jwt",
        auth_jwks_url=auth.jwks_url,
        auth_issuer=auth.url,
        auth_audience=auth.url,
    )


@pytest.mark.parametrize("algorithm", ["EdDSA", "ES256"])
async def test_better_auth_tokens_work_for_their_own_user_only(
    node_modules: Path,
    database_url: str,
    engine: AsyncEngine,
    tmp_path: Path,
    algorithm: str,
) -> None:
    with (
        better_auth(algorithm, tmp_path / "auth.log") as auth,
        better_auth(algorithm, tmp_path / "other-auth.log") as other_auth,
    ):
        alice, alice_token = auth.user_and_token()
        bob, _ = auth.user_and_token()
        stranger, stranger_token = other_auth.user_and_token()
        async with api_for(database_url, auth) as api:
            as_alice = {"Authorization": f"Bearer {alice_token}"}
            created = await api.post(tasks_url(alice), json={"title": "Buy milk"}, headers=as_alice)
            assert created.status_code == 201, created.text
            listed = await api.get(tasks_url(alice), headers=as_alice)
            assert [task["title"] for task in listed.json()] == ["Buy milk"]

            forbidden = await api.get(tasks_url(bob), headers=as_alice)
            assert assert_problem(forbidden, 403)["type"] == "urn:todo-api:forbidden"

            # The token a server component gets for its user works the same.
            carol, carol_token = auth.server_side_token()
            as_carol = {"Authorization": f"Bearer {carol_token}"}
            assert (await api.get(tasks_url(carol), headers=as_carol)).json() == []

            # Another Better Auth, with keys of its own: its tokens prove nothing here.
            as_stranger = {"Authorization": f"Bearer {stranger_token}"}
            refused = await api.get(tasks_url(stranger), headers=as_stranger)
            assert assert_problem(refused, 401)["type"] == "urn:todo-api:unauthorized"
            assert 'error="invalid_token"' in refused.headers["www-authenticate"]


def _minted_with_jose(secret: str, user_id: str) -> str:
    minted = subprocess.run(
        ["node", "mint-hs256.mjs"],
        cwd=SERVER_DIR,
        env=os.environ | {"TODO_API_JWT_SECRET": secret, "USER_ID": user_id},
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    return minted.stdout.strip()


async def test_a_token_minted_with_jose_and_the_shared_secret_works(
    node_modules: Path, database_url: str, engine: AsyncEngine
) -> None:
    """docs/auth.md's HS256 snippet (tests/better_auth/mint-hs256.mjs), against the API."""
    secret = "a-shared-secret-of-at-least-32-bytes-for-jose"
    token = _minted_with_jose(secret, "alice")
    async with app_client(database_url, auth_mode="jwt", auth_jwt_secret=secret) as api:
        as_alice = {"Authorization": f"Bearer {token}"}
        created = await api.post(tasks_url("alice"), json={"title": "HS256"}, headers=as_alice)
        assert created.status_code == 201, created.text
        assert (await api.get(tasks_url("bob"), headers=as_alice)).status_code == 403


async def test_better_auth_tokens_sign_in_to_the_mcp_endpoint(
    node_modules: Path, migrated_url: str, tmp_path: Path
) -> None:
    """An agent acting for a Better Auth user: its token is the user, for MCP as for REST."""
    with better_auth("EdDSA", tmp_path / "auth.log") as auth:
        alice, alice_token = auth.user_and_token()
        bob, _ = auth.user_and_token()
        settings = {
            "AUTH_MODE": "jwt",
            "AUTH_JWKS_URL": auth.jwks_url,
            "AUTH_ISSUER": auth.url,
            "AUTH_AUDIENCE": auth.url,
        }
        with running_server(migrated_url, tmp_path / "server.log", **settings) as (_, client):
            headers = {"Authorization": f"Bearer {alice_token}"}
            async with (
                create_mcp_http_client(headers=headers) as http,
                streamable_http_client(f"{client.base_url}/mcp", http_client=http) as streams,
                ClientSession(*streams) as session,
            ):
                await session.initialize()
                added = await session.call_tool("add_task", {"title": "From Better Auth"})
                assert not added.is_error, added.content
                forged = await session.call_tool("list_tasks", {"user_id": bob})
                assert forged.is_error
            listed = client.get(tasks_url(alice), headers=headers)
    assert [task["title"] for task in listed.json()] == ["From Better Auth"]
