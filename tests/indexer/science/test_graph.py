"""Graph diagnostics: a hand-built graph, a real lean hnswlib graph checked against networkx and a
bincount of links parsed here from hnswlib's raw state, k-occurrence against a direct count, and
self-miss against exact, broken and per-point hnswlib searches."""

from __future__ import annotations

import math
from collections import Counter

import hnswlib
import networkx as nx
import numpy as np
import pytest
import scipy.sparse as sp

from indexer.backends.hnswlib_graph import read_graph, to_model_graph
from indexer.backends.hnswlib_index import HnswlibIndex
from indexer.science.graph import (
    HnswGraph,
    breakdown,
    graph_stats,
    k_occurrence,
    k_occurrence_skewness,
    lid_groups,
    on_rows,
    reachable_from,
    self_miss,
)


def _hand_graph() -> HnswGraph:
    """Two layer-0 components {0,1,2} and {3,4,5}; node 5 has only a self-link pointing to it.

    Entry point 0 (level 2), node 3 on level 1; internal ids label dataset rows 50, 20, 40, 10, 30, 60.
    """
    edges = [(0, 1), (1, 0), (1, 2), (2, 1), (3, 4), (4, 3), (5, 4), (5, 5)]
    r, c = zip(*edges, strict=True)
    layer0 = sp.csr_matrix((np.ones(len(edges)), (r, c)), shape=(6, 6))
    upper = ({0: np.array([3]), 3: np.array([0])}, {0: np.array([], dtype=np.int64)})
    return HnswGraph(layer0=layer0, upper=upper, levels=np.array([2, 0, 0, 1, 0, 0]), entry_point=0,
                     labels=np.array([50, 20, 40, 10, 30, 60]))


def test_hand_built_graph() -> None:
    s = graph_stats(_hand_graph())
    assert s.rows.tolist() == [10, 20, 30, 40, 50, 60]
    # from entry 0 only {0,1,2} = rows {50,20,40}; from {0, 3} all but node 5 (row 60)
    assert s.unreachable == 3 and s.unreachable_mask.tolist() == [True, False, True, False, False, True]
    assert s.unreachable_from_all_upper == 1
    assert s.unreachable_from_all_upper_mask.tolist() == [False, False, False, False, False, True]
    # in-links: row10 <- 4, row20 <- 0 and 2, row30 <- 3 and 5, row40 <- 1, row50 <- 1, row60: self only
    assert s.in_degrees.tolist() == [1, 2, 2, 1, 1, 0]
    assert s.zero_in_degree == 1 and s.zero_in_degree_mask.tolist() == [False] * 5 + [True]
    d = s.in_degree
    # sorted [0, 1, 1, 1, 2, 2]: p1 at position 0.05 -> 0.05, p99 at 4.95 -> 2
    assert (d.min, d.median, d.max) == (0, 1.0, 2)
    assert d.p1 == pytest.approx(0.05) and d.p99 == pytest.approx(2.0) and d.mean == pytest.approx(7 / 6)
    # mean 7/6; m2 = 102/216, m3 = -96/1296 (population moments)
    assert s.hubness == pytest.approx((-96 / 1296) / (102 / 216) ** 1.5)
    assert s.to_json()["in_degree_p99"] == pytest.approx(2.0)


def test_without_upper_levels_every_start_is_the_entry_point() -> None:
    layer0 = sp.csr_matrix((np.ones(2), ([0, 1], [1, 0])), shape=(3, 3))
    g = HnswGraph(layer0=layer0, upper=(), levels=np.zeros(3, dtype=np.int64), entry_point=1,
                  labels=np.arange(3))
    s = graph_stats(g)
    assert s.unreachable == s.unreachable_from_all_upper == 1
    assert s.unreachable_mask.tolist() == [False, False, True]


def test_graph_validates_its_parts() -> None:
    g = _hand_graph()
    with pytest.raises(ValueError):
        HnswGraph(layer0=g.layer0, upper=g.upper[:1], levels=g.levels, entry_point=0, labels=g.labels)
    with pytest.raises(ValueError):
        HnswGraph(layer0=g.layer0, upper=g.upper, levels=g.levels, entry_point=6, labels=g.labels)
    with pytest.raises(ValueError):
        HnswGraph(layer0=g.layer0, upper=g.upper, levels=g.levels, entry_point=0, labels=np.zeros(6))


def test_multi_source_reachability_matches_networkx() -> None:
    rng = np.random.default_rng(3)
    n = 300
    rows, cols = rng.integers(0, n, 500), rng.integers(0, n, 500)  # sparse: many small pieces
    adj = sp.csr_matrix((np.ones(500), (rows, cols)), shape=(n, n))
    dg = nx.DiGraph()
    dg.add_nodes_from(range(n))
    dg.add_edges_from(zip(rows.tolist(), cols.tolist(), strict=True))
    sources = [5, 17, 17, 250]
    expected = set().union(*(nx.descendants(dg, s) | {s} for s in sources))
    assert set(np.flatnonzero(reachable_from(adj, np.array(sources))).tolist()) == expected


# --- a real lean hnswlib graph -------------------------------------------------------------------------


def _raw_hnswlib_layer0(state: dict[str, object]) -> tuple[list[list[int]], list[int]]:
    """Layer-0 link lists and labels parsed byte by byte: count in the low 16 bits of each list's
    header word, then that many uint32 ids; the label a uint64 at label_offset."""
    data = np.asarray(state["data_level0"]).tobytes()
    size, at0, label_at = (int(state[k]) for k in ("size_data_per_element", "offset_level0", "label_offset"))  # type: ignore[call-overload]
    links, labels = [], []
    for i in range(int(state["cur_element_count"])):  # type: ignore[call-overload]
        base = i * size + at0
        count = int.from_bytes(data[base : base + 2], "little")
        links.append([int.from_bytes(data[base + 4 + 4 * j : base + 8 + 4 * j], "little") for j in range(count)])
        labels.append(int.from_bytes(data[i * size + label_at : i * size + label_at + 8], "little"))
    return links, labels


def _unit(rng: np.random.Generator, n: int, d: int) -> np.ndarray:
    x = rng.standard_normal((n, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


@pytest.fixture(scope="module")
def lean_hnswlib() -> tuple[HnswlibIndex, np.ndarray]:
    """2,000 x 16 with M=4, efC=10: lean enough that some points strand (asserted where it matters)."""
    x = np.random.default_rng(0).standard_normal((2000, 16)).astype(np.float32)
    index = HnswlibIndex(16, "l2", M=4, ef_construction=10, seed=1)
    index.build(x, np.random.default_rng(1).permutation(len(x)))
    return index, x


def test_hnswlib_graph_against_networkx_and_raw_links(lean_hnswlib: tuple[HnswlibIndex, np.ndarray]) -> None:
    index, x = lean_hnswlib
    assert index._index is not None
    state = index._index.__getstate__()[0]
    graph = to_model_graph(read_graph(state, "l2"))
    s = graph_stats(graph)
    assert s.unreachable > 0 and s.unreachable_from_all_upper > 0  # the case under test occurs

    links, labels = _raw_hnswlib_layer0(state)
    n = len(links)
    levels = np.asarray(state["element_levels"])[:n]
    entry = int(state["enterpoint_node"])
    dg = nx.DiGraph()
    dg.add_nodes_from(range(n))
    dg.add_edges_from((i, j) for i, out in enumerate(links) for j in out)
    from_entry = nx.descendants(dg, entry) | {entry}
    starts = set(np.flatnonzero(levels >= 1).tolist()) | {entry}
    from_any = set().union(*(nx.descendants(dg, v) | {v} for v in starts))
    rows = np.asarray(labels)
    assert set(s.rows[s.unreachable_mask].tolist()) == {labels[i] for i in range(n) if i not in from_entry}
    assert set(s.rows[s.unreachable_from_all_upper_mask].tolist()) == {
        labels[i] for i in range(n) if i not in from_any}
    degree = np.bincount(np.concatenate([np.asarray(out, dtype=np.int64) for out in links]), minlength=n)
    assert np.array_equal(s.in_degrees, degree[np.argsort(rows)])
    assert s.zero_in_degree == int((degree == 0).sum()) > 0
    assert s.in_degree.max == degree.max() and s.in_degree.median == np.median(degree)

    raw = read_graph(state, "l2")  # the adapter keeps every upper list as the reader walks it
    for level in range(1, raw.max_level + 1):
        on_level = np.flatnonzero(levels >= level)
        assert sorted(graph.upper[level - 1]) == on_level.tolist()
        for v in on_level:
            assert np.array_equal(graph.upper[level - 1][int(v)], raw.upper_neighbors(int(v), level))


# --- k-occurrence --------------------------------------------------------------------------------------


def test_k_occurrence_skewness_by_direct_count() -> None:
    rng = np.random.default_rng(7)
    n, k = 80, 5
    x = rng.standard_normal((n, 12))
    d = ((x[:, None, :] - x[None, :, :]) ** 2).sum(-1)
    np.fill_diagonal(d, np.inf)
    knn = np.argsort(d, axis=1)[:, :k]
    counts = Counter(int(j) for row in knn for j in row)
    occ = np.array([counts.get(i, 0) for i in range(n)], dtype=np.float64)
    dev = occ - occ.mean()
    expected = float(np.mean(dev**3) / np.mean(dev**2) ** 1.5)
    assert np.array_equal(k_occurrence(knn, n), occ.astype(np.int64))
    assert k_occurrence_skewness(knn, n) == pytest.approx(expected, rel=1e-12)
    assert occ.sum() == n * k
    with pytest.raises(ValueError):
        k_occurrence(np.column_stack([np.arange(n), knn[:, 1:]]), n)  # a point listed as its own neighbour


# --- self-miss -----------------------------------------------------------------------------------------


def _exact_search(base: np.ndarray, ids: np.ndarray, metric: str):  # type: ignore[no-untyped-def]
    """Brute force in float64 by numpy argsort (stable: among equal scores the lower row first)."""

    def search(q: np.ndarray, k: int, ef: int | None) -> tuple[np.ndarray, np.ndarray]:
        b, qq = base.astype(np.float64), q.astype(np.float64)
        scores = qq @ b.T if metric == "ip" else ((qq[:, None, :] - b[None, :, :]) ** 2).sum(-1)
        order = np.argsort(-scores if metric == "ip" else scores, axis=1, kind="stable")[:, :k]
        return ids[order], np.take_along_axis(scores, order, axis=1)

    return search


@pytest.mark.parametrize("metric", ["ip", "l2"])
def test_exact_search_never_misses_itself_even_behind_a_duplicate(metric: str) -> None:
    rng = np.random.default_rng(2)
    x = _unit(rng, 300, 8)
    x[200:220] = x[10:30]  # 20 duplicates, each behind its lower-row twin in the stable sort
    ids = 1000 + 3 * np.arange(len(x))
    search = _exact_search(x, ids, metric)
    top, _ = search(x, 1, None)
    assert (top[:, 0] != ids).sum() == 20  # rank 1 is the twin, not the point itself
    (res,) = self_miss(search, x, ids, [None], metric=metric)  # type: ignore[arg-type]
    assert res.missed_count == 0 and res.fraction == 0.0 and res.sampled == 300
    assert res.rows.tolist() == ids.tolist()


@pytest.mark.parametrize("metric", ["ip", "l2"])
def test_a_broken_search_misses_every_point(metric: str) -> None:
    x = _unit(np.random.default_rng(4), 200, 8)

    def wrong(q: np.ndarray, k: int, ef: int | None) -> tuple[np.ndarray, np.ndarray]:
        return np.full((len(q), k), 10**9), np.full((len(q), k), -1.0 if metric == "ip" else 4.0)

    def empty(q: np.ndarray, k: int, ef: int | None) -> tuple[np.ndarray, np.ndarray]:
        return np.full((len(q), k), -1), np.full((len(q), k), np.nan)

    for search in (wrong, empty):
        res = self_miss(search, x, None, [1, 8], metric=metric)  # type: ignore[arg-type]
        assert [r.fraction for r in res] == [1.0, 1.0] and [r.ef for r in res] == [1, 8]
        assert res[0].missed.all()


def test_sample_is_seeded_and_at_least_ten_thousand() -> None:
    n = 12_000
    x = np.zeros((n, 2), dtype=np.float32)
    x[:, 0] = 1.0 + np.arange(n)  # |x|^2 > 0, and no two points tie

    def odd_rows_miss(q: np.ndarray, k: int, ef: int | None) -> tuple[np.ndarray, np.ndarray]:
        row = (q[:, 0] - 1.0).astype(np.int64)
        got = np.where(row % 2 == 0, row, -1)
        return got[:, None], np.where(row % 2 == 0, 0.0, np.nan)[:, None]

    (a,) = self_miss(odd_rows_miss, x, None, [4], sample=10_000, seed=3, metric="l2")
    (b,) = self_miss(odd_rows_miss, x, None, [4], sample=10_000, seed=3, metric="l2")
    (c,) = self_miss(odd_rows_miss, x, None, [4], sample=10_000, seed=4, metric="l2")
    assert a.sampled == 10_000 and len(np.unique(a.rows)) == 10_000 and np.all(np.diff(a.rows) > 0)
    assert np.array_equal(a.rows, b.rows) and not np.array_equal(a.rows, c.rows)
    assert np.array_equal(a.missed, a.rows % 2 == 1)
    assert a.fraction == pytest.approx(float(np.mean(a.rows % 2 == 1)))
    with pytest.raises(ValueError):
        self_miss(odd_rows_miss, x, None, [4], sample=5_000, metric="l2")


def test_hnswlib_self_miss_equals_a_per_point_loop(lean_hnswlib: tuple[HnswlibIndex, np.ndarray]) -> None:
    index, x = lean_hnswlib
    result = self_miss(index.search, x, None, [1, 4], metric="l2")
    raw = index._index
    assert raw is not None
    assert result[0].fraction > 0
    for res, ef in zip(result, (1, 4), strict=True):
        raw.set_ef(ef)
        missed = 0
        for i in range(len(x)):
            label, dist = raw.knn_query(x[i : i + 1], k=1)
            missed += not (int(label[0, 0]) == i or dist[0, 0] <= 1e-6 * float(x[i].astype(np.float64) @ x[i]))
        assert res.missed_count == missed and res.fraction == missed / len(x)
    assert result[1].fraction <= result[0].fraction


def test_raw_hnswlib_misses_agree_with_the_graph_that_strands_them() -> None:
    """A point lost to every descent (unreachable from all upper nodes, level 0) can only be found
    as a start node, so its own search misses it at any ef."""
    x = np.random.default_rng(0).standard_normal((2000, 16)).astype(np.float32)
    raw = hnswlib.Index(space="l2", dim=16)
    raw.init_index(max_elements=len(x), M=4, ef_construction=10, random_seed=1)
    raw.add_items(x, num_threads=1)
    s = graph_stats(to_model_graph(read_graph(raw.__getstate__()[0], "l2")))
    lost = s.rows[s.unreachable_from_all_upper_mask]
    assert len(lost) > 0
    raw.set_ef(200)
    labels, _ = raw.knn_query(x[lost], k=1)
    assert not np.any(labels[:, 0] == lost)


# --- by group ------------------------------------------------------------------------------------------


def test_breakdown_counts_and_fractions_by_hand() -> None:
    groups = np.array(["a", "b", "a", "b", "c"])
    miss = np.array([True, False, True, True, False])
    degree = np.array([3.0, np.nan, 1.0, 5.0, np.nan])  # NaN: not measured
    out = {(r.group, r.measure): r for r in breakdown({"miss": miss, "deg": degree}, groups, ["a", "b", "c", "z"])}
    assert (out["a", "miss"].size, out["a", "miss"].total, out["a", "miss"].mean) == (2, 2.0, 1.0)
    assert (out["b", "miss"].total, out["b", "miss"].mean) == (1.0, 0.5)
    assert (out["b", "deg"].measured, out["b", "deg"].total, out["b", "deg"].mean) == (1, 5.0, 5.0)
    assert out["c", "deg"].measured == 0 and math.isnan(out["c", "deg"].mean)
    assert out["z", "miss"].size == 0
    assert [r.group for r in breakdown({"miss": miss}, groups)] == ["a", "b", "c"]


def test_lid_groups_and_on_rows() -> None:
    labels, names = lid_groups(np.array([1.0, 5.0, 10.0, 15.0, 25.0, np.nan]), [5, 10, 20])
    assert names == ("< 5", "[5, 10)", "[10, 20)", ">= 20", "nan")
    assert labels.tolist() == ["< 5", "[5, 10)", "[10, 20)", "[10, 20)", ">= 20", "nan"]
    laid = on_rows(np.array([30, 10, 20]), np.array([True, False, True]), np.array([10, 20, 40, 30]))
    assert laid[[0, 1, 3]].tolist() == [0.0, 1.0, 1.0] and math.isnan(laid[2])
