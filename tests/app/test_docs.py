"""/docs and /redoc with no network: pages that load only the app's own files, served, and rendering."""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from html.parser import HTMLParser

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from app.docs import ASSETS_URL, install_docs
from tests.app.apiharness import Server

PAGES = ("/docs", "/redoc", "/docs/oauth2-redirect")
CONTENT_TYPES = {".js": ("text/javascript", "application/javascript"), ".css": ("text/css",),
                 ".png": ("image/png",)}
# an absolute or protocol-relative URL: any of them would be another host (the app's own are relative)
ABSOLUTE_URL = re.compile(r"(?:https?:)?//[\w.-]+", re.IGNORECASE)


class _Refs(HTMLParser):
    """Every URL a page makes the browser load: script src, link href, and ReDoc's spec-url."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if value and (tag, name) in {("script", "src"), ("link", "href"), ("redoc", "spec-url")}:
                self.urls.append(value)


def referenced(html: str) -> list[str]:
    parser = _Refs()
    parser.feed(html)
    return parser.urls


@pytest.mark.parametrize("page", PAGES)
def test_pages_reference_no_other_host(sqlite_server: Server, page: str) -> None:
    r = httpx.get(f"{sqlite_server.url}{page}")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert ABSOLUTE_URL.findall(r.text) == []
    assert all(url.startswith("/") for url in referenced(r.text))


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_every_referenced_file_is_served(sqlite_server: Server, page: str) -> None:
    html = httpx.get(f"{sqlite_server.url}{page}").text
    urls = referenced(html)
    assets = [u for u in urls if u.startswith(f"{ASSETS_URL}/")]
    # the page's script and, for Swagger UI, its stylesheet are ours (not FastAPI's CDN defaults)
    assert any(u.endswith(".js") for u in assets), urls
    if page == "/docs":
        assert f"{ASSETS_URL}/swagger-ui.css" in assets
        assert "url: '/openapi.json'" in html
    else:
        assert "/openapi.json" in urls
    for url in assets:
        r = httpx.get(f"{sqlite_server.url}{url}")
        assert r.status_code == 200, url
        suffix = url[url.rindex("."):]
        assert r.headers["content-type"].split(";")[0] in CONTENT_TYPES[suffix], (url, r.headers)
        assert len(r.content) > 1_000, url
    assert httpx.get(f"{sqlite_server.url}/openapi.json").status_code == 200


def test_docs_are_not_in_the_schema(sqlite_server: Server) -> None:
    paths = httpx.get(f"{sqlite_server.url}/openapi.json").json()["paths"]
    assert not [p for p in paths if p.startswith(("/docs", "/redoc", "/static"))]


def test_urls_carry_the_proxy_prefix() -> None:
    """Behind a proxy that strips a prefix (root_path), the pages ask for the prefixed files."""
    app = FastAPI(docs_url=None, redoc_url=None)
    install_docs(app)
    client = TestClient(app, root_path="/api")
    docs = client.get("/api/docs").text
    assert f'src="/api{ASSETS_URL}/swagger-ui-bundle.js"' in docs
    assert "url: '/api/openapi.json'" in docs and "'/api/docs/oauth2-redirect'" in docs
    assert f'src="/api{ASSETS_URL}/redoc.standalone.js"' in client.get("/api/redoc").text
    assert client.get(f"/api{ASSETS_URL}/swagger-ui-bundle.js").status_code == 200


def test_refuses_an_app_with_the_cdn_pages() -> None:
    with pytest.raises(ValueError, match="docs_url=None"):
        install_docs(FastAPI())


# ---------------------------------------------------------------- rendered by a browser

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def _dump_dom(url: str) -> subprocess.CompletedProcess[str]:
    """The DOM after scripts ran, with every host but the loopback unresolvable: the page must not need them."""
    assert CHROMIUM is not None
    with tempfile.TemporaryDirectory(prefix="chromium-") as profile:
        return subprocess.run(
            [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
             "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage",
             "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1", f"--user-data-dir={profile}",
             "--virtual-time-budget=5000", "--dump-dom", url],
            capture_output=True, text=True, timeout=90,
        )


@pytest.mark.e2e
@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed")
def test_swagger_ui_renders_the_operations(sqlite_server: Server) -> None:
    done = _dump_dom(f"{sqlite_server.url}/docs")
    dom = done.stdout
    assert 'class="swagger-ui' in dom, done.stderr[-2000:]
    # one block per operation, with its path: the spec was fetched and rendered
    assert "opblock" in dom and 'data-path="/experiments"' in dom, dom[-2000:]
    assert 'data-path="/indexes/{index_id}/search"' in dom


@pytest.mark.e2e
@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed")
def test_redoc_renders_the_operations(sqlite_server: Server) -> None:
    done = _dump_dom(f"{sqlite_server.url}/redoc")
    dom = done.stdout
    assert "/experiments" in dom and "/indexes/{index_id}/search" in dom, (dom[-2000:], done.stderr[-2000:])
    assert "indexer" in dom
