"""A real browser renders /docs and /redoc from the running server without touching any other host.

Debian's headless `chromium` is driven over the DevTools protocol on a pipe
(`--remote-debugging-pipe`), with nothing but the standard library. The page's own requests are
recorded from its Network events, which leave out the browser's background traffic (update
checks and the like) that no page causes. Every host other than loopback goes to a proxy
port where nothing listens, so a page that needs the internet fails here as it would offline.

Without chromium the tests are skipped; with CI=true they fail instead, because CI installs it
(`scripts/ensure-chromium.sh`).
"""

import base64
import json
import os
import select
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import httpx
import jwt
import pytest
from alembic import command

from tests.conftest import alembic_config
from tests.helpers import TEST_JWT_SECRET, local_http_server, tasks_url
from tests.live_server import running_server
from tests.ports import free_port

# Bounds on waiting, not speed targets: the passes run at once on two cores, and a browser
# that has just started can take many seconds to open its first page under that load.
CALL_TIMEOUT_SECONDS = 30.0
RENDER_TIMEOUT_SECONDS = 30.0
QUIET_SECONDS = 0.5  # no request in flight for this long counts as settled
EXIT_TIMEOUT_SECONDS = 5.0
WIDTH, HEIGHT = 1280, 1600

LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1"}
# Schemes whose "requests" never reach the network.
LOCAL_SCHEMES = {"data", "blob", "about"}
# Nothing listens on the discard port, so anything sent through this proxy fails at once.
DEAD_PROXY = "http://127.0.0.1:9"

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--disable-dev-shm-usage",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    f"--proxy-server={DEAD_PROXY}",  # loopback always bypasses the proxy
    f"--window-size={WIDTH},{HEIGHT}",
    "--remote-debugging-pipe",
]

# The operations each page must show once it has fetched and rendered /openapi.json.
SUMMARIES = [
    "List the caller's tasks",
    "Create a task",
    "Read one task",
    "Replace a task",
    "Update some fields of a task",
    "Delete a task",
    "Toggle or set a task's completion",
    "Liveness: the process answers",
]


def is_ci() -> bool:
    return os.environ.get("CI", "").lower() in {"1", "true", "yes"}


@pytest.fixture(scope="session")
def chromium() -> str:
    path = shutil.which(os.environ.get("CHROMIUM", "chromium"))
    if path is None:
        message = (
            "chromium is not installed: `apt-get install chromium` as root, or "
            "`make test INSTALL_CHROMIUM=1`"
        )
        if is_ci():
            pytest.fail(f"{message} (CI=true: failing instead of skipping)")
        pytest.skip(message)
    return path


@pytest.fixture(scope="module")
def server_url(
    chromium: str, new_database: Callable[[], str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """`python -m todo_api` on a fresh migrated database; its base URL."""
    database_url = new_database()
    command.upgrade(alembic_config(database_url), "head")
    log_path = tmp_path_factory.mktemp("docs-server") / "server.log"
    with running_server(database_url, log_path) as (_process, client):
        yield str(client.base_url).rstrip("/")


@dataclass
class Request:
    url: str
    status: int | None = None
    error: str | None = None
    blocked: str | None = None  # why the browser refused to send it, e.g. "csp"
    done: bool = False

    @property
    def local(self) -> bool:
        parts = urlsplit(self.url)
        return parts.scheme in LOCAL_SCHEMES or parts.hostname in LOCAL_HOSTS

    @property
    def networked(self) -> bool:
        return urlsplit(self.url).scheme in {"http", "https", "ws", "wss"}


@dataclass
class Page:
    """One tab: the requests it made, by DevTools request id, in order."""

    session_id: str
    target_id: str
    requests: dict[str, Request] = field(default_factory=dict)
    exceptions: list[str] = field(default_factory=list)  # uncaught in the page's scripts
    last_activity: float = field(default_factory=time.monotonic)

    def record(self, method: str, params: dict[str, Any]) -> None:
        self.last_activity = time.monotonic()
        request_id = str(params.get("requestId", ""))
        if method == "Runtime.exceptionThrown":
            details = params["exceptionDetails"]
            self.exceptions.append(details.get("exception", {}).get("description", details["text"]))
            return
        if method == "Network.requestWillBeSent":
            redirect = params.get("redirectResponse")
            if redirect is not None and request_id in self.requests:
                # A redirect reuses the request id: file the finished hop under its own key.
                hop = self.requests.pop(request_id)
                hop.status, hop.done = redirect["status"], True
                self.requests[f"{request_id}/{len(self.requests)}"] = hop
            self.requests[request_id] = Request(url=params["request"]["url"])
            return
        request = self.requests.get(request_id)
        if request is None:
            return
        if method == "Network.responseReceived":
            request.status = params["response"]["status"]
        elif method == "Network.loadingFinished":
            request.done = True
        elif method == "Network.loadingFailed":
            request.error = params["errorText"]
            request.blocked = params.get("blockedReason")
            request.done = True

    def settled(self) -> bool:
        quiet = time.monotonic() - self.last_activity >= QUIET_SECONDS
        in_flight = [r for r in self.requests.values() if r.networked and not r.done]
        return quiet and not in_flight

    def sent_off_host(self) -> list[str]:
        """URLs on other hosts that the browser tried to fetch (not refused up front)."""
        return [r.url for r in self.requests.values() if not r.local and r.blocked is None]

    def blocked(self) -> list[str]:
        return [r.url for r in self.requests.values() if r.blocked is not None]

    def write_log(self, path: Path) -> None:
        lines = [
            f"{r.status or '-'} {r.blocked or r.error or ''} {r.url}"
            for r in self.requests.values()
        ]
        path.write_text("\n".join(lines) + "\n")


class DevTools:
    """A minimal DevTools protocol client: NUL-separated JSON on two pipes."""

    def __init__(self, to_browser: int, from_browser: int) -> None:
        self.to_browser = to_browser
        self.from_browser = from_browser
        self.buffer = bytearray()
        self.last_id = 0
        self.pages: dict[str, Page] = {}
        #: The browser context new pages open in: one per test, so none sees another's state.
        self.context_id: str | None = None

    def _receive(self, deadline: float) -> dict[str, Any] | None:
        """The next message, or None once `deadline` passes."""
        while (end := self.buffer.find(b"\0")) < 0:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            readable, _, _ = select.select([self.from_browser], [], [], remaining)
            if readable:
                chunk = os.read(self.from_browser, 1 << 20)
                if not chunk:
                    raise ConnectionError("chromium closed the DevTools pipe")
                self.buffer += chunk
        message: dict[str, Any] = json.loads(self.buffer[:end])
        del self.buffer[: end + 1]
        return message

    def _dispatch(self, message: dict[str, Any]) -> None:
        page = self.pages.get(message.get("sessionId", ""))
        if page is not None and "method" in message:
            page.record(message["method"], message.get("params", {}))

    def call(
        self, method: str, params: dict[str, Any] | None = None, session_id: str | None = None
    ) -> dict[str, Any]:
        self.last_id += 1
        command: dict[str, Any] = {"id": self.last_id, "method": method, "params": params or {}}
        if session_id is not None:
            command["sessionId"] = session_id
        os.write(self.to_browser, json.dumps(command).encode() + b"\0")
        deadline = time.monotonic() + CALL_TIMEOUT_SECONDS
        while (message := self._receive(deadline)) is not None:
            if message.get("id") != self.last_id:
                self._dispatch(message)
            elif "error" in message:
                raise RuntimeError(f"{method} failed: {message['error']}")
            else:
                result: dict[str, Any] = message["result"]
                return result
        raise TimeoutError(f"no answer to {method} within {CALL_TIMEOUT_SECONDS} s")

    def pump(self, seconds: float) -> None:
        """Takes in events for `seconds`."""
        deadline = time.monotonic() + seconds
        while (message := self._receive(deadline)) is not None:
            self._dispatch(message)

    def open_page(self) -> Page:
        target: dict[str, Any] = {"url": "about:blank"}
        if self.context_id is not None:
            target["browserContextId"] = self.context_id
        target_id = self.call("Target.createTarget", target)["targetId"]
        attached = self.call("Target.attachToTarget", {"targetId": target_id, "flatten": True})
        page = Page(session_id=attached["sessionId"], target_id=target_id)
        self.pages[page.session_id] = page
        for method in ("Network.enable", "Page.enable", "Runtime.enable"):
            self.call(method, session_id=page.session_id)
        self.call(
            "Emulation.setDeviceMetricsOverride",
            {"width": WIDTH, "height": HEIGHT, "deviceScaleFactor": 1, "mobile": False},
            page.session_id,
        )
        return page

    def evaluate(self, page: Page, expression: str) -> Any:
        result = self.call(
            "Runtime.evaluate",
            {"expression": expression, "returnByValue": True},
            page.session_id,
        )
        return result["result"].get("value")

    def load(self, page: Page, url: str, until: Callable[[str], bool]) -> str:
        """Navigates, waits until `until(visible text)` and the network is quiet; the text."""
        self.call("Page.navigate", {"url": url}, page.session_id)
        deadline = time.monotonic() + RENDER_TIMEOUT_SECONDS
        text = ""
        while time.monotonic() < deadline:
            self.pump(0.1)
            text = self.evaluate(page, "document.body ? document.body.innerText : ''") or ""
            if until(text) and page.settled():
                return text
        return text

    def screenshot(self, page: Page, clip: dict[str, float] | None = None) -> bytes:
        """The page as a PNG, or the part of it in `clip` (page coordinates, within the window).

        Headless Chromium draws no frame for a tab in the background, and a capture waits for
        one: the tab is brought to the front first. Capturing beyond the window would resize
        the page and wait for a frame of the new size, so a clip must lie within the window.
        """
        self.call("Target.activateTarget", {"targetId": page.target_id})
        params: dict[str, Any] = {"format": "png"}
        if clip is not None:
            params["clip"] = {**clip, "scale": 1}
        data = self.call("Page.captureScreenshot", params, page.session_id)["data"]
        png = base64.b64decode(data)
        assert png.startswith(b"\x89PNG")
        return png


@pytest.fixture(scope="module")
def _chromium(chromium: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevTools]:
    """One browser for the module: starting one costs about a second of a busy core."""
    tmp_path = tmp_path_factory.mktemp("chromium")
    to_browser_read, to_browser = os.pipe()
    from_browser, from_browser_write = os.pipe()
    with (tmp_path / "chromium.log").open("wb") as log:
        # The browser reads commands on fd 3 and writes answers on fd 4.
        process = subprocess.Popen(
            [
                *("sh", "-c", 'exec "$0" "$@" 3<&0 4>&1 0</dev/null 1>&2', chromium),
                *CHROMIUM_FLAGS,
                f"--user-data-dir={tmp_path / 'profile'}",
            ],
            stdin=to_browser_read,
            stdout=from_browser_write,
            stderr=log,
            start_new_session=True,
        )
    os.close(to_browser_read)
    os.close(from_browser_write)
    devtools = DevTools(to_browser, from_browser)
    try:
        yield devtools
    finally:
        try:
            devtools.call("Browser.close")
            process.wait(timeout=EXIT_TIMEOUT_SECONDS)
        except (OSError, RuntimeError, TimeoutError, subprocess.TimeoutExpired):
            pass
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)  # its own group: the browser and its helpers
            process.wait(timeout=EXIT_TIMEOUT_SECONDS)
        os.close(to_browser)
        os.close(from_browser)


@pytest.fixture
def browser(_chromium: DevTools) -> Iterator[DevTools]:
    """The module's browser in a fresh context of its own (cookies, cache, storage)."""
    context = _chromium.call("Target.createBrowserContext", {"disposeOnDetach": True})
    _chromium.context_id = context["browserContextId"]
    try:
        yield _chromium
    finally:
        _chromium.context_id = None
        _chromium.pages.clear()
        _chromium.call(
            "Target.disposeBrowserContext", {"browserContextId": context["browserContextId"]}
        )


def shows_every_operation(text: str) -> bool:
    return all(summary in text for summary in SUMMARIES)


@pytest.mark.parametrize("path", ["/docs", "/redoc"])
def test_docs_render_offline_from_the_server_alone(
    browser: DevTools, server_url: str, path: str, tmp_path: Path
) -> None:
    page = browser.open_page()
    text = browser.load(page, f"{server_url}{path}", until=shows_every_operation)
    page.write_log(tmp_path / "requests.log")
    (tmp_path / "page.png").write_bytes(browser.screenshot(page))

    assert page.sent_off_host() == []
    # The pages' Content-Security-Policy may refuse other hosts (ReDoc's CDN logo), never ours.
    refused = [r for r in page.requests.values() if r.blocked is not None]
    assert [(r.url, r.blocked) for r in refused if r.local or r.blocked != "csp"] == []
    missing = [summary for summary in SUMMARIES if summary not in text]
    assert missing == [], f"not rendered: {missing}; screenshot in {tmp_path}"
    assert page.exceptions == []
    paths = {urlsplit(r.url).path for r in page.requests.values() if r.local}
    assert {path, "/openapi.json"} <= paths
    failed = [r for r in page.requests.values() if r.local and (r.error or (r.status or 0) >= 400)]
    assert failed == []
    assert (tmp_path / "page.png").read_bytes().startswith(b"\x89PNG")


def test_swagger_ui_lists_every_operation_id(browser: DevTools, server_url: str) -> None:
    page = browser.open_page()
    browser.load(page, f"{server_url}/docs", until=shows_every_operation)
    ids = browser.evaluate(
        page, "Array.from(document.querySelectorAll('.opblock')).map(block => block.id)"
    )
    operation_ids = {block_id.rsplit("-", 1)[-1] for block_id in ids}
    document = httpx.get(f"{server_url}/openapi.json", timeout=10).json()
    published = {op["operationId"] for item in document["paths"].values() for op in item.values()}
    assert {"create_task", "list_tasks", "toggle_task_completion", "check_readiness"} <= published
    assert operation_ids == published
    assert len(ids) == len(published)


# What "Try it out" starts from, and the screenshot the README can show of it.
CREATE_EXAMPLE = ['"title": "Buy milk"', '"description": "2 litres"']
CREATE_SCREENSHOT = Path(__file__).resolve().parents[1] / "docs" / "swagger-create.png"
# Each button is clicked once: clicking again while Swagger UI renders would close it again.
EXPAND = """(() => {{
  const block = document.getElementById("operations-tasks-{operation}");
  if (!block) return "";
  if (!block.dataset.opened) {{
    block.dataset.opened = "yes";
    const summary =
      block.querySelector(".opblock-summary-control") || block.querySelector(".opblock-summary");
    if (!block.classList.contains("is-open")) summary.click();
  }}
  const tryOut = block.querySelector(".try-out__btn");
  if ({try_out} && tryOut && !block.dataset.tried) {{
    block.dataset.tried = "yes";
    if (tryOut.textContent.trim() === "Try it out") tryOut.click();
  }}
  return block.innerText;
}})()"""
BODY_TEXT = """(() => {
  const body = document.querySelector("#operations-tasks-create_task textarea.body-param__text");
  return body ? body.value : "";
})()"""


def _expanded(browser: DevTools, page: Page, operation: str, *, try_out: bool = False) -> str:
    """Opens an operation (and its "Try it out"); its text once rendered."""
    script = EXPAND.format(operation=operation, try_out=str(try_out).lower())
    deadline = time.monotonic() + RENDER_TIMEOUT_SECONDS
    text = ""
    while time.monotonic() < deadline:
        text = browser.evaluate(page, script) or ""
        if "Responses" in text and (not try_out or "Execute" in text):
            break
        browser.pump(0.1)
    return str(text)


def test_try_it_out_starts_from_a_realistic_task(
    browser: DevTools, server_url: str, tmp_path: Path
) -> None:
    """The create operation's body, responses and errors show what the API really takes and
    sends, not text generated from patterns; a screenshot of it goes to docs/ on request."""
    page = browser.open_page()
    browser.load(page, f"{server_url}/docs#/tasks/create_task", until=shows_every_operation)
    text = _expanded(browser, page, "create_task", try_out=True)
    body = browser.evaluate(page, BODY_TEXT)
    assert all(field in body for field in CREATE_EXAMPLE), body
    assert json.loads(body) == {"title": "Buy milk", "description": "2 litres"}
    # The responses: the created task, then a problem per status with its real type.
    for shown in [
        '"etag": "\\"1.1\\""',
        "urn:todo-api:validation-error",
        "String should have at least 1 character",
        "urn:todo-api:idempotency-key-in-flight",
        "urn:todo-api:database-unavailable",
        "Retry-After",
    ]:
        assert shown in text, shown
    assert '"title": "string"' not in text
    assert '"status": 0' not in text

    browser.evaluate(
        page, 'document.getElementById("operations-tasks-create_task").scrollIntoView()'
    )
    browser.pump(0.3)  # scrolled and drawn before the block is measured
    block = browser.evaluate(
        page,
        """(() => {
          const block = document.getElementById("operations-tasks-create_task");
          const top = block.getBoundingClientRect().top + window.scrollY;
          const request = block.querySelector(".opblock-section-request-body");
          const bottom = request.getBoundingClientRect().bottom + window.scrollY;
          const height = bottom - top + 24;
          const inWindow = top - window.scrollY;  // scrollY is rounded to whole pixels
          const shown = inWindow > -1 && inWindow + height < innerHeight + 1;
          return {top: top, height: height, shown: shown};
        })()""",
    )
    assert block["shown"], block  # in the window: see DevTools.screenshot
    clip = {"x": 0, "y": block["top"], "width": WIDTH, "height": block["height"]}
    png = browser.screenshot(page, clip)
    (tmp_path / "swagger-create.png").write_bytes(png)
    if os.environ.get("UPDATE_DOCS_SCREENSHOTS") == "1":
        CREATE_SCREENSHOT.write_bytes(png)
    assert page.exceptions == []


def test_swagger_ui_shows_64_bit_ids_unrounded(browser: DevTools, server_url: str) -> None:
    page = browser.open_page()
    browser.load(page, f"{server_url}/docs#/tasks/read_task", until=shows_every_operation)
    text = _expanded(browser, page, "read_task")
    assert "integer($int64)" in text
    assert "9223372036854775807" in text  # the range, in words
    assert "9223372036854776000" not in text
    listing = _expanded(browser, page, "list_tasks")
    assert "offset" in listing
    assert "integer($int64)" in listing
    assert "9223372036854776000" not in listing


def test_recorder_sees_and_blocks_other_hosts(browser: DevTools) -> None:
    """The checks above can fail: a page that wants a CDN is caught, and gets nothing."""
    page = browser.open_page()
    html = '<link rel="stylesheet" href="http://cdn.example.com/x.css"><p>hello</p>'
    text = browser.load(page, f"data:text/html,{quote(html)}", until=lambda t: "hello" in t)
    assert "hello" in text
    assert page.sent_off_host() == ["http://cdn.example.com/x.css"]
    (request,) = [r for r in page.requests.values() if not r.local]
    assert request.error is not None  # the dead proxy: nothing reached the internet
    assert request.status is None


# A frontend on another origin: it sends credentials and a bearer token, as Better Auth
# frontends do, and writes what came back into the page. The script sits in an explicit body:
# in the head, a fast answer could arrive before the parser has made `document.body`.
FRONTEND_PAGE = """<!doctype html><title>frontend</title><body><script>
fetch("{api}/api/alice/tasks", {{
  method: "POST",
  credentials: "include",
  headers: {{"Authorization": "Bearer {token}", "Content-Type": "application/json"}},
  body: JSON.stringify({{title: "from the browser"}}),
}})
  .then(r => r.json().then(b => {{ show(r.status + ":" + b.title); }}))
  .catch(e => {{ show("blocked:" + e.name); }});
function show(result) {{ document.body.innerText = "result:" + result; }}
</script>"""


def frontend(page: str, port: int = 0) -> AbstractContextManager[str]:
    """Serves `page` at / on a port of its own (another origin than the API's); its origin."""
    return local_http_server(lambda: (200, "text/html; charset=utf-8", page.encode()), port)


def test_a_listed_origin_calls_the_api_with_credentials_and_an_unlisted_one_is_blocked(
    browser: DevTools, migrated_url: str, tmp_path: Path
) -> None:
    token = jwt.encode(
        {"sub": "alice", "exp": int(time.time()) + 600}, TEST_JWT_SECRET, algorithm="HS256"
    )
    listed_port = free_port()
    listed_origin = f"http://127.0.0.1:{listed_port}"
    with running_server(
        migrated_url,
        tmp_path / "server.log",
        AUTH_MODE="jwt",
        AUTH_JWT_SECRET=TEST_JWT_SECRET,
        CORS_ORIGINS=listed_origin,
    ) as (_process, api):
        page_html = FRONTEND_PAGE.format(api=str(api.base_url).rstrip("/"), token=token)
        with frontend(page_html) as unlisted_origin:
            page = browser.open_page()
            text = browser.load(page, unlisted_origin, until=lambda t: t.startswith("result:"))
            assert text == "result:blocked:TypeError"
        with frontend(page_html, listed_port):
            page = browser.open_page()
            text = browser.load(page, listed_origin, until=lambda t: t.startswith("result:"))
            assert text == "result:201:from the browser"
        stored = api.get(tasks_url("alice"), headers={"Authorization": f"Bearer {token}"})
    assert [task["title"] for task in stored.json()] == ["from the browser"]
