"""PostgreSQL for tests: a fresh schema per test on INDEXER_TEST_DATABASE_URL (see .ci/start-postgres.sh),
or a private server that a test may stop and start (`private_postgres`).

Isolation goes through the connection's search_path (`?options=-csearch_path=...` in the URL), so the
URL works in any process: servers, workers and their children.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
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


def _pg_tool(name: str) -> str | None:
    """A PostgreSQL server program: on PATH, or in Debian's /usr/lib/postgresql/<version>/bin (newest)."""
    found = shutil.which(name)
    if found:
        return found
    versions = sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"), key=lambda p: int(p.parts[-3]))
    return str(versions[-1]) if versions else None


@dataclass
class PrivatePostgres:
    """A PostgreSQL server of one test's own (its own data directory and port), to stop and start at will."""

    data_dir: Path
    port: int
    url: str

    def _ctl(self, *args: str) -> None:
        pg_ctl = _pg_tool("pg_ctl")
        assert pg_ctl is not None
        subprocess.run(_as_server_user([pg_ctl, "-D", str(self.data_dir), "-w", *args]), check=True,
                       capture_output=True, timeout=60)

    def start(self) -> None:
        options = f"-p {self.port} -k {self.data_dir} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._ctl("-l", str(self.data_dir / "server.log"), "-o", options, "start")

    def stop(self) -> None:
        self._ctl("-m", "fast", "stop")


def _as_server_user(cmd: list[str]) -> list[str]:
    """PostgreSQL refuses to run as root: as root, run it as the `postgres` user the package creates."""
    return ["runuser", "-u", "postgres", "--", *cmd] if os.geteuid() == 0 else cmd


@contextlib.contextmanager
def private_postgres() -> Iterator[PrivatePostgres]:
    """A fresh PostgreSQL cluster on a free port, trusting local connections, removed afterwards.

    Unlike INDEXER_TEST_DATABASE_URL's server it can be stopped mid-test without disturbing other tests.
    Skips the test when PostgreSQL's server programs are not installed (see .ci/start-postgres.sh).
    """
    import pytest

    initdb = _pg_tool("initdb")
    if initdb is None or _pg_tool("pg_ctl") is None:
        pytest.skip("PostgreSQL's initdb and pg_ctl are not installed")
    base = Path(tempfile.mkdtemp(prefix="indexer-pg-"))  # under /tmp: the server user must reach it
    if os.geteuid() == 0:
        shutil.chown(base, user="postgres")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    server = PrivatePostgres(data_dir=base / "data", port=port,
                             url=f"postgresql+psycopg://indexer@127.0.0.1:{port}/postgres")
    try:
        subprocess.run(_as_server_user([initdb, "-D", str(server.data_dir), "-U", "indexer", "--auth=trust",
                                        "-E", "UTF8", "--no-sync"]),
                       check=True, capture_output=True, timeout=120)
        server.start()
        yield server
    finally:
        with contextlib.suppress(subprocess.SubprocessError):
            server.stop()
        shutil.rmtree(base, ignore_errors=True)
