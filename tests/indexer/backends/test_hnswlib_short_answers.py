"""hnswlib short answers: a sparse graph (M=2) leaves queries that reach fewer than k points.

hnswlib raises for those and leaks its result buffers on every raised call; the backend must return
what each query can reach, padded with -1, without a single raised call. Checked against hnswlib
itself: the count returned is the largest k hnswlib answers for that query.
"""

from __future__ import annotations

import numpy as np
import pytest

from indexer.backends.hnswlib_graph import read_graph
from indexer.backends.hnswlib_index import HnswlibIndex


def _unit(rng: np.random.Generator, n: int, d: int) -> np.ndarray:
    x = rng.standard_normal((n, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


class _CountingIndex:
    """Wraps an hnswlib.Index and counts knn_query calls that raised."""

    def __init__(self, inner: object) -> None:
        self.inner = inner
        self.raised = 0
        self.calls = 0

    def knn_query(self, *args: object, **kwargs: object) -> object:
        self.calls += 1
        try:
            return self.inner.knn_query(*args, **kwargs)  # type: ignore[attr-defined]
        except RuntimeError:
            self.raised += 1
            raise

    def __getattr__(self, name: str) -> object:
        return getattr(self.inner, name)


def _sparse_index(space: str, n: int = 2500, d: int = 32, seed: int = 0) -> tuple[HnswlibIndex, np.ndarray]:
    x = _unit(np.random.default_rng(seed), n, d)
    index = HnswlibIndex(d, space, M=2, ef_construction=4, seed=1)
    index.build(x, np.random.default_rng(seed + 1).permutation(n))
    return index, x


def _largest_answerable(raw: object, q: np.ndarray, upper: int) -> int:
    """Bisect the largest k for which raw hnswlib answers q (raises above it)."""
    lo, hi = 1, upper
    while lo < hi:
        mid = (lo + hi + 1) // 2
        try:
            raw.knn_query(q[None, :], k=mid)  # type: ignore[attr-defined]
            lo = mid
        except RuntimeError:
            hi = mid - 1
    return lo


@pytest.mark.parametrize("space", ["ip", "l2"])
def test_each_query_gets_everything_hnswlib_can_answer_and_no_call_raises(space: str) -> None:
    index, x = _sparse_index(space)
    queries = _unit(np.random.default_rng(5), 40, x.shape[1])
    k = len(x) - 10
    index._reach()  # read the graph before the wrapper hides the index's state
    counting = _CountingIndex(index._index)
    index._index = counting  # type: ignore[assignment]
    ids, scores = index.search(queries, k, None)
    assert counting.raised == 0 and counting.calls >= 1
    raw = counting.inner
    raw.set_ef(k)
    returned = (ids >= 0).sum(axis=1)
    assert returned.min() < k  # the graph is sparse enough to test what it should
    for qi in range(len(queries)):
        most = _largest_answerable(raw, queries[qi], k)
        assert returned[qi] == most
        got, _ = raw.knn_query(queries[qi][None, :], k=most)
        assert set(got[0].tolist()) == set(ids[qi, :most].tolist())
        assert (ids[qi, most:] == -1).all() and np.isnan(scores[qi, most:]).all()


def test_a_k_every_start_can_answer_takes_one_call() -> None:
    index, x = _sparse_index("ip", seed=3)
    safe = index._reach().safe_k
    counting = _CountingIndex(index._index)
    index._index = counting  # type: ignore[assignment]
    ids, _ = index.search(_unit(np.random.default_rng(2), 64, x.shape[1]), min(safe, 50), 60)
    assert counting.calls == 1 and counting.raised == 0
    assert (ids >= 0).all()


def test_graph_read_from_state_matches_what_was_inserted() -> None:
    index, x = _sparse_index("l2", n=800)
    graph = read_graph(index._index.__getstate__()[0], "l2")  # type: ignore[union-attr]
    assert graph.n == 800
    # the nodes the descent can visit (level >= 1, and the entry point) hold the vectors inserted under
    # their labels; layer-0-only nodes keep no copy
    upper = np.flatnonzero((graph.levels >= 1) | (np.arange(graph.n) == graph.entry_point))
    np.testing.assert_array_equal(graph._vectors[graph._vector_row[upper]], x[graph.labels[upper]])
    assert (graph._vector_row[graph.levels == 0] == -1).sum() == int((graph.levels == 0).sum()) - (
        graph.levels[graph.entry_point] == 0)
    assert len(graph._vectors) == len(upper) < graph.n
    assert graph.layer0.shape == (800, 800)
    assert (np.diff(graph.layer0.indptr) <= 4).all()  # max_M0 = 2 * M
    assert graph.levels.max() == graph.max_level


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096


def test_short_answer_searches_keep_resident_memory_flat() -> None:
    """2,000 searches that each come up short: RSS stays within 10% (a leak of k*12 bytes per raised
    call, as hnswlib 0.8.0 has, would add tens of MiB here)."""
    index, x = _sparse_index("ip", n=3000, d=64, seed=7)
    queries = _unit(np.random.default_rng(9), 2000, 64)
    k = len(x)
    for q in queries[:50]:  # warm up allocators and the reachability memo
        index.search(q[None, :], k, None)
    before = _rss_bytes()
    short = 0
    for q in queries:
        ids, _ = index.search(q[None, :], k, None)
        short += int((ids[0] < 0).any())
    after = _rss_bytes()
    assert short == len(queries)
    assert after <= before * 1.10, f"RSS grew from {before >> 20} MiB to {after >> 20} MiB"
