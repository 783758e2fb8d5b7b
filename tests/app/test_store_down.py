"""A store that stops answering while the API runs: every route that needs it is 503 with the API's JSON
error body (never a 500 in plain text), /health says so too, and the API recovers once the store is back.

A real PostgreSQL of this test's own (tests/pg.py `private_postgres`), stopped mid-test; the server is a
real uvicorn in a subprocess.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.app.apiharness import Server, make_spec, start_server
from tests.pg import PrivatePostgres, private_postgres

STORE_DOWN = {"detail": "the store is unreachable or busy: retry later"}

NEEDS_THE_STORE: list[tuple[str, str, Any]] = [
    ("GET", "/experiments", None),
    ("POST", "/experiments", make_spec("store-down")),
    ("GET", "/experiments/abc", None),
    ("POST", "/experiments/abc/cancel", None),
    ("GET", "/experiments/abc/report", None),
    ("GET", "/experiments/abc/neighbors/x.npy", None),
    ("GET", "/experiments/abc/compare/def", None),
    ("GET", "/indexes", None),
    ("GET", "/indexes/abc", None),
    ("POST", "/indexes/abc/search", {"vectors": [[1.0]]}),
    ("POST", "/indexes/abc/evaluate", {}),
]


@pytest.fixture(scope="module")
def pg_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[PrivatePostgres, Server]]:
    with private_postgres() as pg:
        srv = start_server(tmp_path_factory.mktemp("api-store-down"), database_url=pg.url)
        try:
            yield pg, srv
        finally:
            srv.stop()


def test_routes_are_503_json_while_the_store_is_down(pg_api: tuple[PrivatePostgres, Server]) -> None:
    pg, srv = pg_api
    with srv.client() as c:
        assert c.get("/experiments").status_code == 200
        pg.stop()
        try:
            for method, path, body in NEEDS_THE_STORE:
                r = c.request(method, path, json=body)
                assert r.status_code == 503, (method, path, r.status_code, r.text[:500])
                assert r.headers["content-type"] == "application/json", (method, path)
                assert r.json() == STORE_DOWN and r.headers["retry-after"] == "5", (method, path)
            health = c.get("/health")
            assert health.status_code == 503 and health.json() == {"status": "degraded", "store": False}
        finally:
            pg.start()
        assert c.get("/experiments").status_code == 200
        assert c.get("/health").status_code == 200
