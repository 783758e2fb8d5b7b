"""The API's start-up log holds no library chatter that reads as an error: faiss's loader reports each build it
falls back from ("Could not load library with AVX512 support due to: ModuleNotFoundError") at INFO, while the
app's own modules import faiss, so it is quieted before any of them loads (app/__init__.py)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.app.apiharness import REPO, server_env, start_server

IMPORT_THE_APP_UNDER_AN_INFO_LOG = """
import logging, sys
logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
import app.main
assert "faiss" in sys.modules, "the app no longer imports faiss at start: this test checks nothing"
logging.getLogger("faiss.loader").warning("a loader warning still shows")
"""


def test_importing_the_app_logs_nothing_from_faiss_below_a_warning(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-c", IMPORT_THE_APP_UNDER_AN_INFO_LOG], cwd=REPO, capture_output=True,
                          text=True, env=server_env(tmp_path), timeout=120)
    assert proc.returncode == 0, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if "faiss" in line]
    assert lines == ["WARNING faiss.loader: a loader warning still shows"], proc.stderr


def test_indexer_serve_starts_without_faiss_loader_lines(tmp_path: Path) -> None:
    srv = start_server(tmp_path / "data", cli=True)  # `indexer serve`: an INFO log, as deployed
    srv.stop()
    assert srv.log is not None
    log = srv.log.read_text()
    assert "Uvicorn running" in log or "Application startup complete" in log, log  # its INFO lines do show
    assert "faiss" not in log and "Could not load library" not in log, log
