"""Store fixtures: every test runs on SQLite and, when INDEXER_TEST_DATABASE_URL is set, on PostgreSQL.

PostgreSQL isolation: each test gets its own schema, selected through the connection's search_path
(`?options=-csearch_path=...` in the URL), so tests never see each other's rows and the URL still works
in other processes (workers, their children). Start a server with `.ci/start-postgres.sh`.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from indexer.service.store import Store
from indexer.settings import Settings
from tests.pg import PG_URL, pg_schema_url


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database (no tables) for this test only."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'data' / 'indexer.db'}"
        return
    if not PG_URL:
        pytest.skip("set INDEXER_TEST_DATABASE_URL (see .ci/start-postgres.sh) to test PostgreSQL")
    with pg_schema_url() as url:
        yield url


@pytest.fixture
def store(db_url: str) -> Iterator[Store]:
    """A migrated store on a clean database."""
    s = Store(db_url)
    s.migrate()
    yield s
    s.close()


@pytest.fixture
def settings(db_url: str, tmp_path: Path) -> Settings:
    """Worker settings on the test database, with a short lease so lost workers are noticed quickly."""
    return Settings(data_dir=tmp_path / "data", database_url=db_url, job_lease_seconds=1.5, job_max_attempts=3)
