"""Optional API key: with INDEXER_API_KEY set, every route but /health needs X-API-Key."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.app.apiharness import Server, make_spec, start_thread_server

KEY = "s3cret-key"
PROTECTED = [
    ("GET", "/datasets"), ("GET", "/experiments"), ("GET", "/experiments/abc"),
    ("POST", "/experiments/abc/cancel"), ("GET", "/experiments/abc/report"), ("GET", "/indexes"),
    ("POST", "/indexes/abc/search"), ("POST", "/indexes/abc/evaluate"), ("GET", "/indexes/abc/queries/0"),
    ("GET", "/indexes/abc/queries/0/measures"),
    ("GET", "/experiments/abc/compare/def"), ("GET", "/specs/examples"), ("POST", "/specs/validate"),
]
# the workbench's pages and files: no data in them (their scripts fetch it with the key), so no key
OPEN_PAGES = ["/", "/pages/new", "/pages/experiments/abc", "/pages/experiments/abc/explore",
              "/pages/compare?a=abc&b=def", "/static/workbench/workbench.js"]


@pytest.fixture(scope="module")
def keyed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = start_thread_server(tmp_path_factory.mktemp("api-keyed"), api_key=KEY)
    yield srv
    srv.stop()


def test_health_needs_no_key(keyed: Server) -> None:
    assert httpx.get(f"{keyed.url}/health").status_code == 200


@pytest.mark.parametrize(("method", "path"), PROTECTED)
def test_missing_key_is_401(keyed: Server, method: str, path: str) -> None:
    r = httpx.request(method, f"{keyed.url}{path}")
    assert r.status_code == 401, r.text
    assert "X-API-Key" in r.json()["detail"]


@pytest.mark.parametrize(("method", "path"), PROTECTED)
def test_wrong_key_is_401(keyed: Server, method: str, path: str) -> None:
    r = httpx.request(method, f"{keyed.url}{path}", headers={"X-API-Key": "nope"})
    assert r.status_code == 401


@pytest.mark.parametrize("path", OPEN_PAGES)
def test_pages_need_no_key_and_hold_no_data(keyed: Server, path: str) -> None:
    with keyed.client(headers={"X-API-Key": KEY}) as c:
        c.post("/experiments", json=make_spec("keyed page secret", seeds=[5]))
    r = httpx.get(f"{keyed.url}{path}")
    assert r.status_code == 200 and "keyed page secret" not in r.text


def test_right_key_passes(keyed: Server) -> None:
    with keyed.client(headers={"X-API-Key": KEY}) as c:
        assert c.get("/experiments").status_code == 200
        assert c.get("/").status_code == 200
        r = c.post("/experiments", json=make_spec("keyed"))
        assert r.status_code == 202, r.text
        assert c.get(f"/experiments/{r.json()['id']}").status_code == 200


def test_no_key_configured_means_open(client: httpx.Client) -> None:
    assert client.get("/experiments").status_code == 200


def test_empty_key_means_open(tmp_path_factory: pytest.TempPathFactory) -> None:
    """compose passes INDEXER_API_KEY='' when it is unset: that must not lock every route."""
    srv = start_thread_server(tmp_path_factory.mktemp("api-empty-key"), api_key="")
    try:
        assert httpx.get(f"{srv.url}/experiments").status_code == 200
    finally:
        srv.stop()
