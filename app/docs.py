"""The API's documentation pages, /docs (Swagger UI) and /redoc (ReDoc), with no network.

FastAPI's own pages load their scripts from a CDN, so without internet they are blank. These are the
same pages (FastAPI's HTML builders) pointing at copies the app serves itself: the `static/` files of
the fastapi-offline package (swagger-ui-dist's bundle and stylesheet, redoc's standalone bundle, a
favicon). Only the files are used; the app is built as usual and calls `install_docs(app)`.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

DOCS_URL = "/docs"
REDOC_URL = "/redoc"
ASSETS_URL = "/static/docs"


def assets_dir() -> Path:
    """The directory of Swagger UI and ReDoc files that fastapi-offline installs."""
    return Path(str(files("fastapi_offline") / "static"))


def install_docs(app: FastAPI) -> None:
    """Serve /docs, its OAuth2 redirect and /redoc from assets under /static/docs.

    The app must be made with `docs_url=None, redoc_url=None` (else FastAPI's CDN pages take the routes).
    """
    if app.docs_url is not None or app.redoc_url is not None:
        raise ValueError("make the app with docs_url=None and redoc_url=None before install_docs")
    openapi_url = app.openapi_url
    if openapi_url is None:
        return  # no schema, nothing to document
    app.mount(ASSETS_URL, StaticFiles(directory=assets_dir()), name="docs-assets")
    oauth2_redirect_url = app.swagger_ui_oauth2_redirect_url

    # under a proxy prefix (root_path) every URL the pages load must carry it, as in FastAPI's own pages
    def prefix(request: Request) -> str:
        return str(request.scope.get("root_path", "")).rstrip("/")

    def urls(request: Request, page: str, favicon_arg: str) -> dict[str, str]:
        """The arguments both pages share: the schema, the title and the favicon, under the prefix."""
        root = prefix(request)
        return {"openapi_url": root + openapi_url, "title": f"{app.title} - {page}",
                favicon_arg: f"{root}{ASSETS_URL}/favicon.png"}

    @app.get(DOCS_URL, include_in_schema=False)
    async def swagger_ui(request: Request) -> HTMLResponse:
        assets = prefix(request) + ASSETS_URL
        return get_swagger_ui_html(
            **urls(request, "Swagger UI", "swagger_favicon_url"), swagger_js_url=f"{assets}/swagger-ui-bundle.js",
            swagger_css_url=f"{assets}/swagger-ui.css",
            oauth2_redirect_url=prefix(request) + oauth2_redirect_url if oauth2_redirect_url else None,
            init_oauth=app.swagger_ui_init_oauth, swagger_ui_parameters=app.swagger_ui_parameters,
        )

    if oauth2_redirect_url:

        @app.get(oauth2_redirect_url, include_in_schema=False)
        async def swagger_ui_redirect() -> HTMLResponse:
            return get_swagger_ui_oauth2_redirect_html()

    @app.get(REDOC_URL, include_in_schema=False)
    async def redoc(request: Request) -> HTMLResponse:
        return get_redoc_html(
            **urls(request, "ReDoc", "redoc_favicon_url"), redoc_js_url=f"{prefix(request)}{ASSETS_URL}/redoc.standalone.js",
            with_google_fonts=False,  # a stylesheet from fonts.googleapis.com; ReDoc falls back to system fonts
        )
