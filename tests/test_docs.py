"""/docs and /redoc load every script, stylesheet and icon from this service, never a CDN."""

import re
from fnmatch import fnmatch
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import httpx
import pytest
from fastapi import FastAPI

from tests.conftest import PROJECT_ROOT
from tests.helpers import assert_problem

BASE_URL = "http://testserver"
JS_TYPES = {"text/javascript", "application/javascript"}

# What each page must load, by how it is referenced, and a marker each asset really contains.
EXPECTED_ASSETS = {
    "/docs": {
        ("script", "/docs/assets/swagger-ui-bundle.js"): (JS_TYPES, b"SwaggerUIBundle"),
        ("link", "/docs/assets/swagger-ui.css"): ({"text/css"}, b".swagger-ui"),
        ("link", "/docs/assets/favicon.png"): ({"image/png"}, b"\x89PNG"),
    },
    "/redoc": {
        ("script", "/docs/assets/redoc.standalone.js"): (JS_TYPES, b"Redoc"),
        ("link", "/docs/assets/favicon.png"): ({"image/png"}, b"\x89PNG"),
    },
}


class AssetReferences(HTMLParser):
    """Collects the `src` of every <script> and the `href` of every <link>."""

    def __init__(self) -> None:
        super().__init__()
        self.references: set[tuple[str, str]] = set()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attribute = {"script": "src", "link": "href"}.get(tag)
        value = dict(attrs).get(attribute) if attribute else None
        if value is not None:
            self.references.add((tag, value))


def asset_references(page: str) -> set[tuple[str, str]]:
    parser = AssetReferences()
    parser.feed(page)
    parser.close()
    return parser.references


def media_type(response: httpx.Response) -> str:
    return response.headers["content-type"].split(";")[0].strip()


async def get_page(client: httpx.AsyncClient, path: str) -> str:
    response = await client.get(path)
    assert response.status_code == 200, response.text
    assert media_type(response) == "text/html"
    return response.text


@pytest.mark.parametrize("path", sorted(EXPECTED_ASSETS))
async def test_page_refers_to_no_other_host(client: httpx.AsyncClient, path: str) -> None:
    page = await get_page(client, path)
    # No absolute URL at all: not in an attribute, not in the inline script either.
    assert re.findall(r"(?:https?:)?//[\w.-]+", page) == []
    references = asset_references(page)
    assert references, "the page loads no script or stylesheet at all"
    for _tag, url in references:
        parts = urlsplit(urljoin(f"{BASE_URL}{path}", url))
        assert (parts.scheme, parts.netloc) == ("http", "testserver"), url
    assert "/openapi.json" in page


@pytest.mark.parametrize("path", sorted(EXPECTED_ASSETS))
async def test_every_referenced_asset_is_served(client: httpx.AsyncClient, path: str) -> None:
    expected = EXPECTED_ASSETS[path]
    references = asset_references(await get_page(client, path))
    assert references == set(expected)
    for (_tag, url), (types, marker) in expected.items():
        response = await client.get(url)
        assert response.status_code == 200, url
        assert media_type(response) in types, (url, response.headers["content-type"])
        assert marker in response.content, url


async def test_redoc_does_not_load_google_fonts(client: httpx.AsyncClient) -> None:
    page = await get_page(client, "/redoc")
    assert "fonts.googleapis.com" not in page
    assert "<redoc spec-url=" in page


async def test_swagger_ui_oauth2_redirect_page_is_served(client: httpx.AsyncClient) -> None:
    docs = await get_page(client, "/docs")
    assert "window.location.origin + '/docs/oauth2-redirect'" in docs
    redirect = await get_page(client, "/docs/oauth2-redirect")
    assert "swaggerUIRedirectOauth2" in redirect


async def test_unknown_asset_is_a_404_problem(client: httpx.AsyncClient) -> None:
    assert_problem(await client.get("/docs/assets/missing.js"), 404)


async def test_docs_are_not_in_the_openapi_document(client: httpx.AsyncClient) -> None:
    paths = (await client.get("/openapi.json")).json()["paths"]
    assert not [path for path in paths if path.startswith(("/docs", "/redoc"))]


async def test_urls_keep_the_proxy_prefix(app: FastAPI) -> None:
    """Behind a proxy that serves the app under /todo, the pages point under /todo too."""
    transport = httpx.ASGITransport(app=app, root_path="/todo")
    async with httpx.AsyncClient(transport=transport, base_url=BASE_URL) as client:
        for path, expected in EXPECTED_ASSETS.items():
            page = await get_page(client, f"/todo{path}")
            assert asset_references(page) == {(tag, f"/todo{url}") for tag, url in expected}
            assert "'/todo/openapi.json'" in page or '"/todo/openapi.json"' in page
            for _tag, url in expected:
                assert (await client.get(f"/todo{url}")).status_code == 200, url


@pytest.mark.parametrize("path", [*sorted(EXPECTED_ASSETS), "/docs/oauth2-redirect"])
async def test_pages_tell_the_browser_to_fetch_from_this_host_only(
    client: httpx.AsyncClient, path: str
) -> None:
    response = await client.get(path)
    policy = response.headers["content-security-policy"]
    directives = {name: sources for name, *sources in (part.split() for part in policy.split(";"))}
    assert directives["default-src"] == ["'self'"]
    for sources in directives.values():
        assert not [source for source in sources if "." in source or "//" in source], policy
        assert "*" not in sources


def test_the_sqlite_files_the_readme_names_are_ignored_by_git() -> None:
    """A newcomer who follows the README never sees a database file as a change to commit."""
    readme = (PROJECT_ROOT / "README.md").read_text()
    names = set(re.findall(r"[\w./-]+\.sqlite3?\b", readme))
    assert "todo.sqlite3" in names
    paths = [
        Path(name.removeprefix("sqlite:").lstrip("/")).name + suffix
        for name in names
        for suffix in ("", "-wal", "-shm", "-journal")
    ]
    patterns = [
        line
        for line in (PROJECT_ROOT / ".gitignore").read_text().splitlines()
        if line and not line.startswith("#")
    ]
    assert [path for path in paths if not any(fnmatch(path, p) for p in patterns)] == []


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def test_relative_links_in_the_docs_lead_somewhere() -> None:
    """After moving reference material out of the README, no link points at the old place."""
    documents = [PROJECT_ROOT / "README.md", PROJECT_ROOT / "CONTRIBUTING.md"]
    documents += sorted((PROJECT_ROOT / "docs").glob("*.md"))
    broken = []
    for document in documents:
        text = re.sub(r"```.*?```", "", document.read_text(), flags=re.DOTALL)
        for target in re.findall(r"\]\(([^)\s]+)\)", text):
            if re.match(r"[a-z]+:", target):
                continue  # http(s), mailto
            path, _, anchor = target.partition("#")
            linked = (document.parent / path).resolve() if path else document
            if not linked.exists():
                broken.append(f"{document.name}: {target}")
            elif anchor and linked.suffix == ".md":
                headings = re.findall(r"^#+ (.+)$", linked.read_text(), re.MULTILINE)
                if anchor not in {_slug(heading) for heading in headings}:
                    broken.append(f"{document.name}: {target}")
    assert broken == []
