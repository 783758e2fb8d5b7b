"""GET /health: liveness and store reachability."""

from __future__ import annotations

import httpx
import pytest


def test_health_reports_store(client: httpx.Client) -> None:
    r = client.get("/health")
    assert r.status_code == 200
    assert r.json() == {"status": "ok", "store": True}


def test_openapi_lists_fixed_paths(client: httpx.Client) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    for path in ("/health", "/datasets", "/experiments", "/experiments/{experiment_id}",
                 "/experiments/{experiment_id}/cancel", "/experiments/{experiment_id}/report",
                 "/indexes", "/indexes/{index_id}/search", "/indexes/{index_id}/evaluate", "/"):
        assert path in paths, path


def test_unknown_route_is_404(client: httpx.Client) -> None:
    assert client.get("/nope").status_code == 404


@pytest.mark.parametrize(("method", "path", "allow"), [
    ("OPTIONS", "/experiments", "GET, POST"), ("DELETE", "/indexes/abc/search", "POST"), ("PUT", "/", "GET"),
    ("POST", "/experiments/abc", "GET"), ("GET", "/experiments/abc/cancel", "POST"),
])
def test_a_wrong_method_is_405_naming_every_method_of_the_path(
    client: httpx.Client, method: str, path: str, allow: str
) -> None:
    r = client.request(method, path)
    assert r.status_code == 405 and r.headers["allow"] == allow
    assert r.json() == {"detail": "Method Not Allowed"}
