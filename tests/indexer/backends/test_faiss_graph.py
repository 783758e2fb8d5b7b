"""The faiss HNSW graph reader, against faiss's own arrays read here, and the diagnostics on it against
networkx and a bincount of those arrays."""

from __future__ import annotations

import faiss
import networkx as nx
import numpy as np
import pytest

from indexer.backends.faiss_graph import faiss_hnsw_graph
from indexer.backends.faiss_hnsw import FaissHnswIndex
from indexer.science.graph import graph_stats, self_miss


@pytest.fixture(scope="module")
def lean_faiss() -> tuple[FaissHnswIndex, np.ndarray]:
    """2,000 x 16, M=4, efC=10, inserted in a shuffled order: some points strand."""
    x = np.random.default_rng(0).standard_normal((2000, 16)).astype(np.float32)
    index = FaissHnswIndex(16, "l2", M=4, ef_construction=10, seed=1)
    index.build(x, np.random.default_rng(1).permutation(len(x)))
    return index, x


def _raw(index: FaissHnswIndex) -> dict[str, np.ndarray]:
    h = index._index.hnsw
    return {name: faiss.vector_to_array(getattr(h, name)).astype(np.int64)
            for name in ("neighbors", "offsets", "levels", "cum_nneighbor_per_level")}


def _raw_links(raw: dict[str, np.ndarray], node: int, level: int) -> list[int]:
    start = raw["offsets"][node] + raw["cum_nneighbor_per_level"][level]
    stop = raw["offsets"][node] + raw["cum_nneighbor_per_level"][level + 1]
    return [int(v) for v in raw["neighbors"][start:stop] if v >= 0]


def test_reader_matches_faiss_arrays(lean_faiss: tuple[FaissHnswIndex, np.ndarray]) -> None:
    index, _ = lean_faiss
    order = index._order
    assert order is not None
    raw = _raw(index)
    graph = faiss_hnsw_graph(index)
    n = graph.n
    assert n == 2000 and np.array_equal(graph.labels, order)
    assert graph.entry_point == index._index.hnsw.entry_point
    assert np.array_equal(graph.levels, raw["levels"] - 1)  # faiss counts levels from 1
    assert graph.max_level == index._index.hnsw.max_level > 0
    for i in range(n):
        got = graph.layer0.indices[graph.layer0.indptr[i] : graph.layer0.indptr[i + 1]]
        # the same links in the same order, in dataset numbering too
        assert order[got].tolist() == [int(order[v]) for v in _raw_links(raw, i, 0)]
    for level in range(1, graph.max_level + 1):
        on_level = np.flatnonzero(raw["levels"] > level)
        assert sorted(graph.upper[level - 1]) == on_level.tolist()
        for v in on_level:
            assert graph.upper[level - 1][int(v)].tolist() == _raw_links(raw, int(v), level)


def test_diagnostics_against_networkx_and_bincount(lean_faiss: tuple[FaissHnswIndex, np.ndarray]) -> None:
    index, _ = lean_faiss
    order = index._order
    assert order is not None
    raw = _raw(index)
    n = len(order)
    s = graph_stats(faiss_hnsw_graph(index))
    assert s.unreachable > 0 and s.unreachable_from_all_upper > 0

    links = [_raw_links(raw, i, 0) for i in range(n)]
    dg = nx.DiGraph()
    dg.add_nodes_from(range(n))
    dg.add_edges_from((i, j) for i, out in enumerate(links) for j in out)
    entry = int(index._index.hnsw.entry_point)
    from_entry = nx.descendants(dg, entry) | {entry}
    starts = set(np.flatnonzero(raw["levels"] >= 2).tolist()) | {entry}
    from_any = set().union(*(nx.descendants(dg, v) | {v} for v in starts))
    assert set(s.rows[s.unreachable_mask].tolist()) == {int(order[i]) for i in range(n) if i not in from_entry}
    assert set(s.rows[s.unreachable_from_all_upper_mask].tolist()) == {
        int(order[i]) for i in range(n) if i not in from_any}

    degree = np.bincount(np.concatenate([np.asarray(out, dtype=np.int64) for out in links]), minlength=n)
    assert np.array_equal(s.in_degrees, degree[np.argsort(order)])
    assert s.zero_in_degree == int((degree == 0).sum())
    assert (s.in_degree.min, s.in_degree.max) == (degree.min(), degree.max())
    assert s.in_degree.p99 == pytest.approx(np.percentile(degree, 99))


def test_faiss_self_miss_equals_a_per_point_loop(lean_faiss: tuple[FaissHnswIndex, np.ndarray]) -> None:
    index, x = lean_faiss
    order = index._order
    assert order is not None
    (res,) = self_miss(index.search, x, None, [1], metric="l2")
    assert res.fraction > 0
    inner = index._index
    params = faiss.SearchParametersHNSW(efSearch=1)  # type: ignore[attr-defined]
    missed = 0
    for i in range(len(x)):
        dist, got = inner.search(x[i : i + 1], 1, params=params)
        row = int(order[got[0, 0]]) if got[0, 0] >= 0 else -1
        missed += not (row == i or dist[0, 0] <= 1e-6 * float(x[i].astype(np.float64) @ x[i]))
    assert res.missed_count == missed
