"""The README's examples, then docs/errors.md's, run in order against a real server, so
neither can drift.

The convention (CONTRIBUTING.md, "README examples", says the same for README writers):

- An example is a ```sh block whose first line starts with `curl `. The block is one command
  (it may go on over several lines ending in `\\`). It is run with bash, with the README's base
  URL, http://127.0.0.1:8000, replaced by the test server's.
- The fenced block right after it (only blank lines in between) is what the command prints:
  ```http for `curl -i` (the status line, the headers worth showing, a blank line, the body),
  ```json for a body alone. An ```http block without a body means the response has none.
- The status line must be exact. Each header shown must be in the response (names ignore
  case) with exactly that value, where `…` stands for any text (a list page's ETag, which
  hashes timestamps). Headers not shown are not checked.
- The body is compared as parsed JSON, exactly, except that in a field whose name ends in `_at`
  any ISO 8601 timestamp stands for any timestamp (`null` must still be `null`).
- Every example runs in order on one fresh, migrated database of the backend under test, so
  ids, counts and ETags follow from the examples before it. The server has the default
  settings, whatever the environment exports.
- A ```sh block with a `curl` command that cannot run as written (it needs a token, or other
  settings than the defaults) is preceded by a `<!-- not run: why -->` line; it is skipped, and
  so is the output block after it. Any other ```sh block with `curl` that is not an example
  fails the test, so that none goes unchecked by mistake. Other ```sh blocks (`make run`,
  `export ...`) are never run.
"""

import json
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.live_server import running_server
from todo_api.settings import Settings

PROJECT_ROOT = Path(__file__).resolve().parents[1]
README = PROJECT_ROOT / "README.md"
#: Run in this order on one server and one database: docs/errors.md goes on from the README.
DOCUMENTS = [README, PROJECT_ROOT / "docs" / "errors.md"]
README_BASE_URL = "http://127.0.0.1:8000"
COMMAND_TIMEOUT_SECONDS = 30
NOT_RUN_MARKER = "<!-- not run:"
ANY_TEXT = "…"

_FENCE = re.compile(r"^(?P<indent> *)```(?P<info>[\w+-]*)\s*$")
_TIMESTAMP = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?(Z|[+-]\d{2}:\d{2})$")
_CURL_LINE = re.compile(r"^\s*curl\s", re.MULTILINE)


@dataclass(frozen=True)
class Block:
    """A fenced code block: its info string, its text, the README line it starts on, and
    the text between the previous block and this one."""

    info: str
    text: str
    line: int
    before: str


@dataclass(frozen=True)
class Example:
    command: str
    where: str  # file:line
    output_kind: str  # "http" or "json"
    expected: str


def fenced_blocks(markdown: str) -> Iterator[Block]:
    lines = markdown.splitlines()
    between: list[str] = []
    index = 0
    while index < len(lines):
        opening = _FENCE.match(lines[index])
        if opening is None:
            between.append(lines[index])
            index += 1
            continue
        indent = len(opening["indent"])
        body: list[str] = []
        index += 1
        while index < len(lines) and lines[index].strip() != "```":
            body.append(lines[index][indent:] if lines[index][:indent].isspace() else lines[index])
            index += 1
        start = index - len(body)  # 1-based line of the opening fence
        yield Block(opening["info"], "\n".join(body), start, "\n".join(between))
        between = []
        index += 1  # the closing fence


def readme_examples(markdown: str, name: str = "README.md") -> list[Example]:
    """A document's examples, in order; refuses a curl block that is neither run nor marked."""
    blocks = list(fenced_blocks(markdown))
    examples = []
    for position, block in enumerate(blocks):
        if block.info != "sh" or not _CURL_LINE.search(block.text):
            continue
        following = blocks[position + 1] if position + 1 < len(blocks) else None
        is_example = (
            block.text.startswith("curl ")
            and following is not None
            and following.info in {"http", "json"}
            and not following.before.strip()
        )
        marked = NOT_RUN_MARKER in (block.before.strip().splitlines() or [""])[-1]
        if marked:
            continue
        if is_example:
            assert following is not None
            if len(_CURL_LINE.findall(block.text)) != 1:
                pytest.fail(f"{name}:{block.line}: an example holds one curl command")
            where = f"{name}:{block.line}"
            examples.append(Example(block.text, where, following.info, following.text))
        else:
            pytest.fail(
                f"{name}:{block.line}: a ```sh block with curl that is not an example "
                "(first line `curl ...`, then an ```http or ```json block) and not marked "
                f"`{NOT_RUN_MARKER} ... -->` on the line before it"
            )
    return examples


@dataclass(frozen=True)
class HttpOutput:
    status_line: str
    headers: list[tuple[str, str]]
    body: str


def parse_http(text: str) -> HttpOutput:
    """`curl -i` output (CRLF) or a README ```http block (LF): status, headers, body."""
    text = text.replace("\r\n", "\n")
    head, _, body = text.partition("\n\n")
    # Interim responses (100 Continue) come first; the final one is last.
    while body.startswith("HTTP/") and re.match(r"HTTP/\S+ 1\d\d\b", head):
        head, _, body = body.partition("\n\n")
    status_line, *header_lines = head.splitlines()
    headers = []
    for line in header_lines:
        name, colon, value = line.partition(":")
        assert colon, f"not a header line: {line!r}"
        headers.append((name.strip().lower(), value.strip()))
    return HttpOutput(status_line.strip(), headers, body.strip())


def header_matches(expected: str, actual: str) -> bool:
    """Exact, except that `…` in the README's value stands for any non-empty text."""
    pattern = ".+".join(re.escape(part) for part in expected.split(ANY_TEXT))
    return re.fullmatch(pattern, actual) is not None


def normalised(expected: Any, actual: Any) -> Any:
    """`actual` with each `*_at` timestamp replaced by the README's, where both are one."""
    if isinstance(expected, dict) and isinstance(actual, dict):
        result = {}
        for key, value in actual.items():
            shown = expected.get(key)
            both_timestamps = all(
                isinstance(v, str) and _TIMESTAMP.match(v) for v in (shown, value)
            )
            if key.endswith("_at") and both_timestamps:
                result[key] = shown
            else:
                result[key] = normalised(shown, value)
        return result
    if isinstance(expected, list) and isinstance(actual, list):
        return [normalised(e, a) for e, a in zip(expected, actual, strict=False)] + actual[
            len(expected) :
        ]
    return actual


def _json(text: str, what: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise AssertionError(f"{what} is not JSON ({exc}):\n{text}") from None


def body_mismatch(expected: str, actual: str) -> str | None:
    if not expected.strip():
        return None if not actual.strip() else f"expected no body, got:\n{actual}"
    shown = _json(expected, "the README's body")
    got = normalised(shown, _json(actual, "the response body"))
    if got == shown:
        return None
    return (
        f"body differs.\nREADME:\n{json.dumps(shown, indent=2, ensure_ascii=False)}\n"
        f"actual (timestamps normalised):\n{json.dumps(got, indent=2, ensure_ascii=False)}"
    )


def output_mismatch(kind: str, expected: str, actual: str) -> str | None:
    """Why `actual` (what the command printed) is not what the README shows, or None."""
    if kind == "json":
        return body_mismatch(expected, actual)
    shown, got = parse_http(expected), parse_http(actual)
    if shown.status_line != got.status_line:
        return f"status line: README {shown.status_line!r}, actual {got.status_line!r}"
    for name, value in shown.headers:
        values = [v for n, v in got.headers if n == name]
        if not values:
            return f"header {name!r} is missing; the response has {[n for n, _ in got.headers]}"
        if not any(header_matches(value, v) for v in values):
            return f"header {name}: README {value!r}, actual {values!r}"
    return body_mismatch(shown.body, got.body)


def run_example(example: Example, base_url: str) -> str:
    command = example.command.replace(README_BASE_URL, base_url)
    finished = subprocess.run(
        ["bash", "-c", command],
        capture_output=True,
        timeout=COMMAND_TIMEOUT_SECONDS,
        check=False,
    )
    assert finished.returncode == 0, (
        f"{example.where}: exit status {finished.returncode}\n"
        f"{finished.stderr.decode(errors='replace')}"
    )
    return finished.stdout.decode().replace(base_url, README_BASE_URL)


def _require_curl() -> None:
    if shutil.which("curl") is None:
        message = "curl is not installed"
        if os.environ.get("CI", "").lower() in {"1", "true", "yes"}:
            pytest.fail(f"{message} (CI=true: failing instead of skipping)")
        pytest.skip(message)


@pytest.fixture
def default_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    """The server gets the README's defaults, whatever settings this shell exports."""
    for name in Settings.model_fields:
        monkeypatch.delenv(name.upper(), raising=False)


@pytest.mark.usefixtures("default_settings")
def test_readme_examples_answer_as_shown(migrated_url: str, tmp_path: Path) -> None:
    examples = [
        example
        for document in DOCUMENTS
        for example in readme_examples(
            document.read_text(encoding="utf-8"), str(document.relative_to(PROJECT_ROOT))
        )
    ]
    assert len(examples) >= 25, f"only {len(examples)} examples found in {DOCUMENTS}"
    _require_curl()
    log_path = tmp_path / "server.log"
    with running_server(migrated_url, log_path) as (_process, client):
        base_url = f"http://127.0.0.1:{client.base_url.port}"
        for example in examples:
            actual = run_example(example, base_url)
            mismatch = output_mismatch(example.output_kind, example.expected, actual)
            if mismatch is not None:
                pytest.fail(
                    f"{example.where}: the example's output is not what the document "
                    f"shows: {mismatch}\n\ncommand:\n{example.command}\n\nprinted:\n{actual}"
                )


# The checker itself: it must refuse what differs, or the test above proves nothing.

_SHOWN = """HTTP/1.1 201 Created
content-type: application/json
etag: "1.1"
link: <http://127.0.0.1:8000/api/alice/tasks?offset=2>; …

{"id": 1, "completed_at": null, "created_at": "2026-12-02T10:00:00.000000Z"}"""
_PRINTED = (
    "HTTP/1.1 201 Created\r\nDate: Wed, 02 Dec 2026 10:00:00 GMT\r\n"
    'Content-Type: application/json\r\nETag: "1.1"\r\n'
    'Link: <http://127.0.0.1:8000/api/alice/tasks?offset=2>; rel="next"\r\n\r\n'
    '{"id":1,"completed_at":null,"created_at":"2026-12-02T11:22:33.456789Z"}'
)


def test_checker_accepts_what_the_readme_shows() -> None:
    assert output_mismatch("http", _SHOWN, _PRINTED) is None


@pytest.mark.parametrize(
    ("printed", "complaint"),
    [
        (_PRINTED.replace("201 Created", "200 OK"), "status line"),
        (_PRINTED.replace('"1.1"', '"1.2"'), "header etag"),
        (_PRINTED.replace("ETag:", "X-ETag:"), "'etag' is missing"),
        (_PRINTED.replace('"id":1', '"id":2'), "body differs"),
        (_PRINTED.replace('"completed_at":null', '"completed_at":"2026-12-02T11:22:33Z"'), "body"),
        (_PRINTED.replace('"2026-12-02T11:22:33.456789Z"', "null"), "body differs"),
        (_PRINTED.replace('"2026-12-02T11:22:33.456789Z"', '"yesterday"'), "body differs"),
        (_PRINTED + "x", "not JSON"),
    ],
)
def test_checker_refuses_what_differs(printed: str, complaint: str) -> None:
    try:
        mismatch = output_mismatch("http", _SHOWN, printed)
    except AssertionError as error:
        mismatch = str(error)
    assert mismatch is not None
    assert complaint in mismatch


def test_an_unmarked_curl_block_without_output_is_refused() -> None:
    markdown = "Text.\n\n```sh\ncurl http://127.0.0.1:8000/health\n```\n"
    with pytest.raises(pytest.fail.Exception, match="not an example"):
        readme_examples(markdown)
    marked = "<!-- not run: needs a token -->\n" + markdown.removeprefix("Text.\n\n")
    assert readme_examples(marked) == []
