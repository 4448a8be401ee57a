"""Swagger UI at /docs and ReDoc at /redoc, with every script, stylesheet and icon served here.

FastAPI's built-in pages load their JavaScript and CSS from a CDN (and ReDoc its fonts from
Google), so they stay blank without internet access. These pages use the same HTML, but the
assets come from the pinned `fastapi-offline` package, served under `ASSETS_URL`. No page
refers to another host.
"""

from importlib.resources import files
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.openapi.docs import (
    get_redoc_html,
    get_swagger_ui_html,
    get_swagger_ui_oauth2_redirect_html,
)
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

DOCS_URL = "/docs"
OAUTH2_REDIRECT_URL = "/docs/oauth2-redirect"
REDOC_URL = "/redoc"
ASSETS_URL = "/docs/assets"

# swagger-ui-bundle.js, swagger-ui.css, redoc.standalone.js and favicon.png.
ASSETS_DIR = Path(str(files("fastapi_offline").joinpath("static")))
SWAGGER_JS = "swagger-ui-bundle.js"
SWAGGER_CSS = "swagger-ui.css"
REDOC_JS = "redoc.standalone.js"
FAVICON = "favicon.png"

# Swagger UI's default validatorUrl points at validator.swagger.io. The BaseLayout that FastAPI
# uses shows no validator badge, but switching it off makes sure it never calls out.
SWAGGER_UI_PARAMETERS: dict[str, Any] = {"validatorUrl": None}

# Sent with the three pages: the browser itself refuses to fetch anything from another host.
# ReDoc's sidebar footer always loads the Redocly logo from its CDN; this stops that request
# before it leaves (the footer then shows text only). Both UIs need inline scripts and styles,
# Swagger UI data: images, and ReDoc a worker from a blob: URL for its search.
CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self' 'unsafe-inline'",
        "style-src 'self' 'unsafe-inline'",
        "img-src 'self' data:",
        "font-src 'self' data:",
        "worker-src 'self' blob:",
        "connect-src 'self'",
        "base-uri 'self'",
        "form-action 'self'",
    ]
)


def _root_path(request: Request) -> str:
    """The prefix the app is mounted under (behind a proxy), without a trailing slash."""
    return str(request.scope.get("root_path", "")).rstrip("/")


def _same_host_only(response: HTMLResponse) -> HTMLResponse:
    response.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
    return response


def install_docs(app: FastAPI) -> None:
    """Serves the assets and registers /docs, /docs/oauth2-redirect and /redoc on `app`.

    Create `app` with `docs_url=None, redoc_url=None` so that FastAPI's CDN pages are not
    registered as well.
    """
    openapi_url = app.openapi_url
    if openapi_url is None:
        return  # no document to show
    app.mount(ASSETS_URL, StaticFiles(directory=ASSETS_DIR), name="docs-assets")
    app.swagger_ui_oauth2_redirect_url = OAUTH2_REDIRECT_URL
    swagger_ui_parameters = SWAGGER_UI_PARAMETERS | (app.swagger_ui_parameters or {})

    @app.get(DOCS_URL, include_in_schema=False)
    async def swagger_ui(request: Request) -> HTMLResponse:
        root = _root_path(request)
        html = get_swagger_ui_html(
            openapi_url=f"{root}{openapi_url}",
            title=f"{app.title} - Swagger UI",
            swagger_js_url=f"{root}{ASSETS_URL}/{SWAGGER_JS}",
            swagger_css_url=f"{root}{ASSETS_URL}/{SWAGGER_CSS}",
            swagger_favicon_url=f"{root}{ASSETS_URL}/{FAVICON}",
            oauth2_redirect_url=f"{root}{OAUTH2_REDIRECT_URL}",
            init_oauth=app.swagger_ui_init_oauth,
            swagger_ui_parameters=swagger_ui_parameters,
        )
        return _same_host_only(html)

    @app.get(OAUTH2_REDIRECT_URL, include_in_schema=False)
    async def swagger_ui_oauth2_redirect() -> HTMLResponse:
        return _same_host_only(get_swagger_ui_oauth2_redirect_html())

    @app.get(REDOC_URL, include_in_schema=False)
    async def redoc(request: Request) -> HTMLResponse:
        root = _root_path(request)
        html = get_redoc_html(
            openapi_url=f"{root}{openapi_url}",
            title=f"{app.title} - ReDoc",
            redoc_js_url=f"{root}{ASSETS_URL}/{REDOC_JS}",
            redoc_favicon_url=f"{root}{ASSETS_URL}/{FAVICON}",
            with_google_fonts=False,
        )
        return _same_host_only(html)
