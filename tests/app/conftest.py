"""Real servers for the API tests: uvicorn in a subprocess on 127.0.0.1, each with its own data dir.

Servers are session-scoped (starting one costs about a second). Tests that need built indexes use
`built`, which submits a tiny synthetic spec over HTTP and runs the real worker once in a subprocess.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.app.apiharness import (
    PG_URL,
    TINY_SPEC,
    Server,
    own_server,
    pg_schema_url,
    run_worker_once,
    start_server,
)


@pytest.fixture(scope="session")
def sqlite_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = start_server(tmp_path_factory.mktemp("api-data"))
    yield srv
    srv.stop()


@pytest.fixture(scope="session")
def pg_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """The same server on PostgreSQL (a schema of its own), when INDEXER_TEST_DATABASE_URL is set."""
    if not PG_URL:
        pytest.skip("set INDEXER_TEST_DATABASE_URL (see .ci/start-postgres.sh) to test PostgreSQL")
    with pg_schema_url() as url:
        srv = start_server(tmp_path_factory.mktemp("api-pg-data"), database_url=url)
        yield srv
        srv.stop()


@pytest.fixture(scope="session", params=["sqlite", "postgresql"])
def server(request: pytest.FixtureRequest) -> Server:
    """Route tests run against SQLite and, when configured, PostgreSQL."""
    return request.getfixturevalue(f"{'pg' if request.param == 'postgresql' else 'sqlite'}_server")


@pytest.fixture()
def client(server: Server) -> Iterator[httpx.Client]:
    with server.client() as c:
        yield c


@pytest.fixture(scope="session")
def index_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server of its own for built indexes: its queue holds only what the worker should run."""
    with own_server(tmp_path_factory.mktemp("api-index-data")) as srv:
        yield srv


@pytest.fixture()
def index_client(index_server: Server) -> Iterator[httpx.Client]:
    with index_server.client() as c:
        yield c


@pytest.fixture(scope="session")
def built(index_server: Server) -> dict[str, Any]:
    """The tiny spec, run to completion by the worker: {"experiment": ..., "indexes": [...]}."""
    server = index_server
    with server.client() as c:
        r = c.post("/experiments", json=TINY_SPEC)
        assert r.status_code in (200, 202), r.text
        exp_id = r.json()["id"]
        done = run_worker_once(server)
        exp = c.get(f"/experiments/{exp_id}").json()
        assert exp["status"] == "succeeded", f"{exp}\nworker stderr:\n{done.stderr[-4000:]}"
        indexes = [i for i in c.get("/indexes", params={"limit": 500}).json()["items"] if i["experiment_id"] == exp_id]
    assert indexes, "the worker recorded no indexes"
    return {"experiment": exp, "indexes": indexes}


@pytest.fixture(scope="session")
def hnsw_index(built: dict[str, Any]) -> dict[str, Any]:
    return next(i for i in built["indexes"] if i["backend"] == "hnswlib")


@pytest.fixture(scope="session")
def loaded(index_server: Server, hnsw_index: dict[str, Any]) -> Any:
    """The same index opened in the test process, for direct answers to compare with."""
    from indexer.service.artifacts import open_index
    from indexer.service.store import Store

    store = Store(f"sqlite:///{(index_server.data_dir / 'indexer.db').resolve()}")
    view = store.get_index(hnsw_index["id"])
    assert view is not None
    return open_index(index_server.data_dir / view.path, data_dir=index_server.data_dir)
