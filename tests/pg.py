"""PostgreSQL for tests: a fresh schema per test on INDEXER_TEST_DATABASE_URL (see .ci/start-postgres.sh).

Isolation goes through the connection's search_path (`?options=-csearch_path=...` in the URL), so the
URL works in any process: servers, workers and their children.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator
from urllib.parse import quote

PG_URL = os.environ.get("INDEXER_TEST_DATABASE_URL")


@contextlib.contextmanager
def pg_schema_url() -> Iterator[str]:
    """A URL on INDEXER_TEST_DATABASE_URL's database whose search_path is a fresh schema, dropped after
    (the convention of tests/indexer: the URL works in any process, server or worker)."""
    import sqlalchemy as sa

    assert PG_URL, "INDEXER_TEST_DATABASE_URL is not set"
    schema = f"apitest_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(PG_URL)
    try:
        with admin.begin() as conn:
            conn.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
        sep = "&" if "?" in PG_URL else "?"
        yield f"{PG_URL}{sep}options={quote(f'-csearch_path={schema}')}"
    finally:
        with admin.begin() as conn:
            conn.exec_driver_sql(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        admin.dispose()
