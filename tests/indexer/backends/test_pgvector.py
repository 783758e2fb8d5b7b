"""pgvector: the shared checks, the query plan, the heap and graph in insertion order, halfvec storage,
pgvector's limits, and the private server's life cycle (nothing left running or on disk after close(), nor
after our process dies).
"""

from __future__ import annotations

import glob
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import psutil
import pytest

from indexer.common.errors import UserError
from tests.indexer.backends import kit

NAME = "pgvector"
LEAN = {"M": 4, "ef_construction": 16}
# halfvec keeps 11 significant bits: pgvector scores the stored and the query vectors rounded to float2
HALF_ATOL = 5e-3


def _server_processes(index: object) -> list[psutil.Process]:
    server = index._server  # type: ignore[attr-defined]
    postmaster = psutil.Process(server.pid)
    return [postmaster, *postmaster.children(recursive=True)]


def _gone(processes: list[psutil.Process]) -> bool:
    return not any(p.is_running() and p.status() != psutil.STATUS_ZOMBIE for p in processes)


def test_halfvec_storage() -> None:
    kit.check_recall_and_scores(NAME, {"storage": "halfvec"}, "ip", ef=None, score_atol=HALF_ATOL)


def test_one_build_searches_its_hnsw_index_in_insertion_order_and_close_stops_it() -> None:
    """The plan scans items_hnsw, the heap holds the rows in `order` (what the serial build's scan reads),
    ef is per search and None is 40, the index relation holds at least the vectors; close() (twice) leaves
    no server process and no scratch directory."""
    x, q = kit.clustered_data(n=3000, q=200, seed=5)
    order = np.random.default_rng(3).permutation(len(x))
    index = kit.build(NAME, LEAN, x, order, "ip")
    processes, scratch = _server_processes(index), index._server.dir  # type: ignore[attr-defined]
    try:
        assert len(processes) > 1 and os.path.isdir(scratch)
        plan = index.explain(q[0], 10)  # type: ignore[attr-defined]
        assert "Index Scan using items_hnsw" in plan, plan
        conn = index._conn  # type: ignore[attr-defined]
        heap = conn.execute("SELECT id FROM items ORDER BY ctid").fetchall()
        np.testing.assert_array_equal(np.array(heap)[:, 0], order)
        default = index.search(q, 10, None)[0]
        assert not np.array_equal(index.search(q, 10, 10)[0], default)  # ef matters on this lean graph
        np.testing.assert_array_equal(index.search(q, 10, 40)[0], default)
        np.testing.assert_array_equal(index.search(q, 10, None)[0], default)  # ef=10 did not stay behind
        assert index.nbytes() >= x.nbytes
        with pytest.raises(UserError, match="ef_search <= 1000"):
            index.search(q, 10, 1001)
        with pytest.raises(NotImplementedError):
            index.save(Path("unused"))
    finally:
        index.close()
    index.close()
    assert _gone(processes) and not os.path.exists(scratch)


def test_points_are_linked_in_the_insertion_order() -> None:
    """On a very lean graph (M=2) points linked early lose their in-links to later ones, so a point searched
    for itself (k=1, ef=1) is found far more often when it was inserted last than first. The order is a
    random permutation of the rows, so only the insertion order can make this pattern (levels are random:
    the pattern is checked, not exact answers)."""
    x, _ = kit.clustered_data(n=3000, seed=5)
    order = np.random.default_rng(11).permutation(len(x))
    index = kit.build(NAME, {"M": 2, "ef_construction": 4}, x, order, "l2")
    try:
        ids, _ = index.search(x[order], 1, 1)
    finally:
        index.close()
    found = ids[:, 0] == order
    first, last = found[: len(order) // 5].mean(), found[-len(order) // 5 :].mean()
    # pgvector draws levels from an unseeded random(): typically 0.06 against 0.3, once 0.06 against 0.25 under
    # load; with no order effect the two would be equal
    assert last > first + 0.1 and last > 2 * first, (first, last)


def test_pgvector_limits_are_checked_before_any_server_starts() -> None:
    from pydantic import ValidationError

    from indexer.backends import new_index

    with pytest.raises(ValidationError, match="ef_construction >= 2"):
        new_index(NAME, 8, "l2", params={"M": 16, "ef_construction": 20}, seed=0)
    with pytest.raises(ValidationError):
        new_index(NAME, 8, "l2", params={"M": 101, "ef_construction": 1000}, seed=0)


def test_close_leaves_no_process_and_no_directory() -> None:
    """After close() (twice) no process of the server remains and its directory is gone; as root the server
    ran as `nobody`; a build that fails (here pgvector's 2000-dimension limit) leaves nothing either."""
    from indexer.backends import new_index
    from indexer.backends.pgserver import PgServer

    server = PgServer(prefix="indexer-pgvector-")
    processes = [psutil.Process(server.pid), *psutil.Process(server.pid).children(recursive=True)]
    if os.geteuid() == 0:
        assert {p.username() for p in processes} == {"nobody"}
    server.connect().execute("SELECT 1")
    server.stop()
    server.stop()
    assert _gone(processes) and not os.path.exists(server.dir)

    before = _scratch()
    index = new_index(NAME, 2001, "l2", params={}, seed=0)
    index.close()  # never built
    with pytest.raises(Exception, match="2000 dimensions"):
        index.build(np.ones((3, 2001), dtype=np.float32), np.arange(3))
    index.close()
    index.close()
    assert _scratch() <= before


def _scratch() -> set[str]:
    return set(glob.glob(os.path.join(tempfile.gettempdir(), "indexer-pgvector-*")))


def test_the_server_dies_with_our_process() -> None:
    """SIGKILL leaves no chance to close(): the postmaster must still die (PR_SET_PDEATHSIG)."""
    script = ("import sys, time; sys.path.insert(0, sys.argv[1]);"
              "from indexer.backends.pgserver import PgServer;"
              "s = PgServer(prefix='indexer-pgvector-'); print(s.pid, s.dir, flush=True); time.sleep(60)")
    scratch = ""
    child = subprocess.Popen([sys.executable, "-c", script, os.getcwd()], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None
        pid, scratch = child.stdout.readline().split()
        postmaster = psutil.Process(int(pid))
        processes = [postmaster, *postmaster.children(recursive=True)]
        child.send_signal(signal.SIGKILL)
        child.wait()
        deadline = time.monotonic() + 10
        while not _gone(processes) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert _gone(processes)
    finally:
        child.kill()
        child.wait()
        shutil.rmtree(scratch, ignore_errors=True)  # only a live process could have removed it


@pytest.mark.parametrize("params", [{"precision": "binary"}, {"precision": "binary", "rescore": {"oversample": 2.0}},
                                    {"precision": "f16", "rescore": {"oversample": 2.0}}])
def test_a_quantized_index_is_the_one_scanned_with_or_without_rescore(params: dict) -> None:
    """The expression index (bit or halfvec over the vector column) is what the search statement scans, the
    re-ranking query's inner one too; the search without re-ranking returns the first k of the very candidates
    the rescored search re-ranks (the same scan), so each of its answers is among them."""
    x, q = kit.clustered_data(n=600, seed=5)
    index = kit.build(NAME, {**LEAN, **params}, x, np.arange(len(x)), "ip")
    try:
        plan = index.explain(q[0], 10)  # type: ignore[attr-defined]
        assert "Index Scan using items_hnsw" in plan, plan
        if "rescore" in params:
            fetch = index._statement(10, None, True)[1]  # type: ignore[attr-defined]
            assert fetch == 20
            wide, _ = index.search_unrescored(q, fetch, 40)  # type: ignore[attr-defined]
            first, _ = index.search_unrescored(q, 10, 40)  # type: ignore[attr-defined]
            rescored, _ = index.search(q, 10, 40)
            np.testing.assert_array_equal(first, wide[:, :10])
            assert all(set(r) <= set(w) for r, w in zip(rescored, wide, strict=True))
    finally:
        index.close()
