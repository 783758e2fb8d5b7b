"""Filtered search: filtered_knn against an independent numpy brute force, each filter kind keeps
the fraction it states, and violations counts exactly what was planted."""

from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pytest

from indexer.science import filters as F
from indexer.science.filters import (
    FilterSet,
    cluster_filters,
    column_filters,
    filtered_knn,
    label_filters,
    random_filters,
    range_filters,
    violations,
)
from indexer.science.groundtruth import prepare_vectors

N, D, Q, K = 300, 8, 24, 10


def _gauss(n: int, d: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, d)).astype(np.float32)


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray]:
    return _gauss(N, D, 0), _gauss(Q, D, 1)


def _brute(base: np.ndarray, queries: np.ndarray, allowed: np.ndarray, k: int,
           metric: str) -> tuple[np.ndarray, np.ndarray]:
    """Full float64 score matrix, disallowed points pushed to the worst end, stable argsort."""
    b, qv = base.astype(np.float64), queries.astype(np.float64)
    if metric == "cosine":
        b = b / np.linalg.norm(b, axis=1, keepdims=True)
        qv = qv / np.linalg.norm(qv, axis=1, keepdims=True)
    if metric == "l2":
        s = ((qv[:, None, :] - b[None, :, :]) ** 2).sum(axis=2)
        key = np.where(allowed, s, np.inf)
    else:
        s = qv @ b.T
        key = np.where(allowed, -s, np.inf)
    order = np.argsort(key, axis=1, kind="stable")[:, :k]
    passed = np.take_along_axis(allowed, order, axis=1)
    ids = np.where(passed, order, -1)
    return ids, np.where(passed, np.take_along_axis(s, order, axis=1), np.nan)


def _per_query(fs: FilterSet) -> np.ndarray:
    return np.stack([fs.allowed(i) for i in range(fs.q)]) if fs.q else np.zeros((0, fs.n), bool)


def _filter_cases(base: np.ndarray, queries: np.ndarray) -> dict[str, FilterSet]:
    rng = np.random.default_rng(7)
    column = rng.integers(0, 5, size=len(base))
    allowed: list[list[int]] = [[int(rng.integers(0, 5))] for _ in range(len(queries))]
    allowed[0], allowed[1], allowed[2] = [], [9], [0, 1, 2, 3, 4]  # nothing, an absent value, everything
    return {
        "random-all": random_filters(len(base), len(queries), 1.0, seed=1),
        "random-0.3": random_filters(len(base), len(queries), 0.3, seed=1),
        "random-few": random_filters(len(base), len(queries), 0.02, seed=1),  # ~6 kept < k
        "range-0.1": range_filters(len(base), len(queries), 0.1, seed=2),
        "range-tiny": range_filters(len(base), len(queries), 0.01, seed=2),  # 3 kept < k
        "column": column_filters(column, allowed),
        "label": label_filters(column, rng.integers(0, 6, size=len(queries))),  # label 5: none kept
        "cluster": cluster_filters(base, queries, 0.2, clusters=4, seed=0, metric="l2", anti=False),
        "anti_cluster": cluster_filters(base, queries, 0.2, clusters=4, seed=0, metric="l2", anti=True),
    }


# ---------------------------------------------------------------------------------- filtered_knn


@pytest.mark.parametrize("metric", ["l2", "ip", "cosine"])
def test_filtered_knn_matches_numpy_brute_force(data: tuple[np.ndarray, np.ndarray], metric: str) -> None:
    raw_base, raw_queries = data
    base, queries = prepare_vectors(raw_base, metric), prepare_vectors(raw_queries, metric)
    for name, fs in _filter_cases(raw_base, raw_queries).items():
        ids, scores = filtered_knn(base, queries, fs, K, metric)
        want_ids, want_scores = _brute(raw_base, raw_queries, _per_query(fs), K, metric)
        assert ids.dtype == np.int64 and ids.shape == (Q, K), name
        assert scores.shape == (Q, K), name
        np.testing.assert_array_equal(ids, want_ids, err_msg=name)
        np.testing.assert_allclose(scores, want_scores, rtol=1e-5, atol=1e-5, err_msg=name)
        assert np.array_equal(np.isnan(scores), ids < 0), name
        assert not violations(ids, fs).any(), name


def test_fewer_than_k_kept_pads_and_nothing_kept_gives_all_minus_one(data: tuple[np.ndarray, np.ndarray]) -> None:
    base, queries = data
    column = np.zeros(N, dtype=np.int64)
    column[[5, 50, 250]] = 1
    fs = column_filters(column, [[1]] * (Q - 1) + [[2]])
    ids, scores = filtered_knn(base, queries, fs, K, "l2")
    assert set(ids[0, :3].tolist()) == {5, 50, 250}
    assert (ids[:, 3:] == -1).all() and np.isnan(scores[:, 3:]).all()
    assert (ids[-1] == -1).all() and np.isnan(scores[-1]).all()


def test_ties_are_broken_by_ascending_id() -> None:
    base = np.zeros((12, 3), dtype=np.float32)
    base[:, 0] = [5, 1, 1, 9, 1, 1, 1, 7, 1, 8, 1, 3]  # seven copies of (1, 0, 0)
    fs = column_filters(np.arange(12) % 2, [[0], [1]])
    ids, _ = filtered_knn(base, np.array([[1, 0, 0], [1, 0, 0]], np.float32), fs, 4, "l2")
    np.testing.assert_array_equal(ids, [[2, 4, 6, 8], [1, 5, 11, 7]])


def test_query_blocks_give_the_same_answer(data: tuple[np.ndarray, np.ndarray],
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    base, queries = data
    fs = random_filters(N, Q, 0.4, seed=3)
    whole = filtered_knn(base, queries, fs, K, "l2")
    monkeypatch.setattr(F, "QUERY_BLOCK", 5)
    blocked = filtered_knn(base, queries, fs, K, "l2")
    np.testing.assert_array_equal(whole[0], blocked[0])
    np.testing.assert_array_equal(whole[1], blocked[1])


def test_a_memory_map_base_works_through_a_window(tmp_path, data: tuple[np.ndarray, np.ndarray]) -> None:
    base, queries = data
    np.save(tmp_path / "b.npy", base)
    mapped = np.load(tmp_path / "b.npy", mmap_mode="r")
    fs = range_filters(N, Q, 0.2, seed=4)
    np.testing.assert_array_equal(filtered_knn(mapped, queries, fs, K, "l2")[0],
                                  filtered_knn(base, queries, fs, K, "l2")[0])


# ---------------------------------------------------------------------------------- constructors


@pytest.mark.parametrize("s", [0.01, 0.1, 0.5, 1.0])
def test_random_keeps_about_the_selectivity_and_depends_only_on_the_seed(s: float) -> None:
    n = 4000
    fs = random_filters(n, 7, s, seed=11)
    kept = fs.kept()
    assert kept.shape == (7,) and np.all(kept == kept[0])
    assert abs(kept[0] - s) <= 4 * math.sqrt(s * (1 - s) / n) + 1e-12
    assert fs.attribute is not None and np.array_equal(fs.masks[0], fs.attribute < s)
    again = random_filters(n, 7, s, seed=11)
    assert again.attribute is not None
    assert np.array_equal(fs.masks, again.masks) and np.array_equal(fs.attribute, again.attribute)
    if s < 1.0:
        assert not np.array_equal(fs.masks, random_filters(n, 7, s, seed=12).masks)
    assert fs.kind == "random" and fs.selectivity == s


@pytest.mark.parametrize("s", [0.001, 0.07, 0.25, 1.0])
def test_range_keeps_one_window_of_the_stated_width(s: float) -> None:
    n, q = 1000, 40
    fs = range_filters(n, q, s, seed=5)
    w = max(1, round(s * n))
    np.testing.assert_array_equal(fs.kept(), np.full(q, w / n))
    for i in range(q):
        kept = np.flatnonzero(fs.allowed(i))
        assert np.array_equal(kept, np.arange(kept[0], kept[0] + w)) and kept[-1] < n
    assert len(fs.masks) == len(np.unique(fs.masks, axis=0))  # coinciding windows share a mask
    assert np.array_equal(fs.masks, range_filters(n, q, s, seed=5).masks)
    assert np.array_equal(fs.of_query, range_filters(n, q, s, seed=5).of_query)
    if s < 1.0:
        assert not np.array_equal(_per_query(fs), _per_query(range_filters(n, q, s, seed=6)))


@pytest.mark.parametrize("metric", ["l2", "cosine"])
@pytest.mark.parametrize(("s", "count"), [(0.07, 21), (0.3, 90), (0.101, 31)])  # 0.07 * 300 = 21.000000000000004
def test_cluster_keeps_ceil_fraction_and_anti_is_farther_from_the_centroid(
        data: tuple[np.ndarray, np.ndarray], metric: str, s: float, count: int) -> None:
    base, queries = prepare_vectors(data[0], metric), prepare_vectors(data[1], metric)
    near = cluster_filters(base, queries, s, clusters=4, seed=0, metric=metric, anti=False)
    far = cluster_filters(base, queries, s, clusters=4, seed=0, metric=metric, anti=True)
    np.testing.assert_array_equal(near.kept(), np.full(Q, count / N))
    np.testing.assert_array_equal(far.kept(), np.full(Q, count / N))
    assert near.kind == "cluster" and far.kind == "anti_cluster"
    assert np.array_equal(near.of_query, far.of_query)  # the same query-to-centroid assignment
    assert near.centroids is not None and far.centroids is not None
    assert np.array_equal(near.centroids, far.centroids) and len(near.masks) <= 4
    b64 = base.astype(np.float64)
    for j, c in enumerate(near.centroids.astype(np.float64)):
        dist = ((b64 - c) ** 2).sum(axis=1) if metric == "l2" else -(b64 @ c)
        assert dist[near.masks[j]].max() <= dist[far.masks[j]].min()
        assert dist[near.masks[j]].max() <= dist[~near.masks[j]].min()  # exactly the nearest
    # And from the queries themselves, on average over queries (one query may sit far from its centroid).
    d_q = ((queries.astype(np.float64)[:, None, :] - b64[None]) ** 2).sum(axis=2)
    assert (d_q * _per_query(near)).sum() / count < (d_q * _per_query(far)).sum() / count


def test_cluster_assigns_each_query_its_nearest_centroid(data: tuple[np.ndarray, np.ndarray]) -> None:
    base, queries = data
    clamped = cluster_filters(base, queries, 0.2, clusters=1000, seed=0, metric="l2", anti=False)
    assert clamped.centroids is not None and len(clamped.masks) <= N  # clusters clamped to n
    small = cluster_filters(base, queries, 0.2, clusters=3, seed=0, metric="l2", anti=False)
    assert small.centroids is not None
    for i, q in enumerate(queries.astype(np.float64)):
        own = ((small.centroids[small.of_query[i]] - q) ** 2).sum()
        assert all(own <= ((c - q) ** 2).sum() + 1e-9 for c in small.centroids)


def test_cluster_is_deterministic_given_its_seed(data: tuple[np.ndarray, np.ndarray]) -> None:
    base, queries = data
    a = cluster_filters(base, queries, 0.2, clusters=5, seed=3, metric="l2", anti=False)
    b = cluster_filters(base, queries, 0.2, clusters=5, seed=3, metric="l2", anti=False)
    c = cluster_filters(base, queries, 0.2, clusters=5, seed=4, metric="l2", anti=False)
    assert a.centroids is not None and b.centroids is not None
    assert np.array_equal(_per_query(a), _per_query(b)) and np.array_equal(a.centroids, b.centroids)
    assert not np.array_equal(_per_query(a), _per_query(c))


def test_label_filters_keep_the_query_label_or_the_chosen_one() -> None:
    base_labels = np.array([0, 1, 1, 2, 2, 2, 0, 1])
    query_labels = np.array([2, 0, 2, 7])
    fs = label_filters(base_labels, query_labels)
    for i, lab in enumerate(query_labels):
        np.testing.assert_array_equal(fs.allowed(i), base_labels == lab)
    np.testing.assert_allclose(fs.kept(), [3 / 8, 2 / 8, 3 / 8, 0.0])
    assert len(fs.masks) == 3 and fs.selectivity is None and fs.kind == "label"
    one = label_filters(base_labels, query_labels, label=1)
    assert len(one.masks) == 1 and np.allclose(one.kept(), 3 / 8)


def test_column_filters_keep_the_allowed_values_and_share_masks() -> None:
    values = np.array([3, 1, 4, 1, 5, 9, 2, 6])
    fs = column_filters(values, [[1, 9], [9, 1], [], [4], [1, 9, 1]])
    np.testing.assert_allclose(fs.kept(), [3 / 8, 3 / 8, 0.0, 1 / 8, 3 / 8])
    np.testing.assert_array_equal(fs.allowed(0), np.isin(values, [1, 9]))
    assert len(fs.masks) == 3 and fs.of_query[0] == fs.of_query[1] == fs.of_query[4]
    assert fs.attribute is not None and np.array_equal(fs.attribute, values)


def test_groups_cover_every_query_once_under_its_own_mask() -> None:
    fs = column_filters(np.arange(6), [[1], [2], [1], [3], [2], [1]])
    groups = list(fs.groups())
    assert sorted(int(i) for _, g in groups for i in g) == list(range(6))
    for mask_index, members in groups:
        assert (fs.of_query[members] == mask_index).all() and np.all(np.diff(members) > 0)
    assert list(FilterSet(name="x", kind="column", selectivity=None, masks=np.zeros((0, 3), bool),
                          of_query=np.zeros(0, np.int64)).groups()) == []


def test_importing_the_module_does_not_import_faiss() -> None:
    code = "import sys, indexer.science.filters; sys.exit('faiss' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


# ------------------------------------------------------------------------------------ violations


def test_violations_counts_exactly_the_planted_wrong_ids(data: tuple[np.ndarray, np.ndarray]) -> None:
    base, queries = data
    fs = random_filters(N, Q, 0.3, seed=9)
    ids, _ = filtered_knn(base, queries, fs, K, "l2")
    assert not violations(ids, fs).any()
    outside = np.flatnonzero(~fs.masks[0])
    rng = np.random.default_rng(0)
    planted = rng.integers(0, 4, size=Q)
    bad = ids.copy()
    for i, m in enumerate(planted):
        cols = rng.choice(K, size=m, replace=False)
        bad[i, cols] = rng.choice(outside, size=m, replace=False)
    np.testing.assert_array_equal(violations(bad, fs), planted)


def test_violations_ignore_padding_and_count_out_of_range_ids() -> None:
    fs = column_filters(np.array([0, 1, 0, 1]), [[0], [1]])
    ids = np.array([[0, 2, -1, -1], [1, 4, -5, 0]])
    np.testing.assert_array_equal(violations(ids, fs), [0, 3])
    assert violations(np.zeros((2, 0), np.int64), fs).tolist() == [0, 0]


# ------------------------------------------------------------------------------------ bad inputs


@pytest.mark.parametrize("s", [0, -0.1, 1.5, float("nan"), True, "0.5", None])
def test_selectivity_outside_zero_one_is_refused(s: object) -> None:
    with pytest.raises(ValueError, match="selectivity"):
        random_filters(10, 2, s, seed=0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="selectivity"):
        range_filters(10, 2, s, seed=0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="selectivity"):
        cluster_filters(_gauss(10, 2, 0), _gauss(2, 2, 1), s, clusters=2, seed=0,  # type: ignore[arg-type]
                        metric="l2", anti=False)


def test_bad_inputs_say_what_is_wrong(data: tuple[np.ndarray, np.ndarray]) -> None:
    base, queries = data
    fs = random_filters(N, Q, 0.5, seed=0)
    cases = [
        (lambda: random_filters(0, 2, 0.5, seed=0), "n must be"),
        (lambda: range_filters(10, -1, 0.5, seed=0), "q must be"),
        (lambda: range_filters(10.0, 2, 0.5, seed=0), "n must be"),  # type: ignore[arg-type]
        (lambda: cluster_filters(base, queries[:, :3], 0.5, clusters=2, seed=0, metric="l2", anti=False),
         "dimension"),
        (lambda: cluster_filters(base, queries, 0.5, clusters=0, seed=0, metric="l2", anti=False),
         "clusters"),
        (lambda: cluster_filters(base, queries, 0.5, clusters=2, seed=0, metric="hamming", anti=False),
         "metric"),
        (lambda: cluster_filters(base[0], queries, 0.5, clusters=2, seed=0, metric="l2", anti=False), "2-d"),
        (lambda: filtered_knn(base[:-1], queries, fs, K, "l2"), "filters cover"),
        (lambda: filtered_knn(base, queries[:-1], fs, K, "l2"), "filters cover"),
        (lambda: filtered_knn(base, queries, fs, 0, "l2"), "k must be"),
        (lambda: filtered_knn(base, queries, fs, K, "dot"), "metric"),
        (lambda: filtered_knn(base, queries[:, :3], fs, K, "l2"), "dimension"),
        (lambda: label_filters(np.zeros((3, 2)), np.zeros(2)), "1-d"),
        (lambda: label_filters(np.array([0, 1]), np.array([0]), label=4), "not among"),
        (lambda: column_filters(np.array([0.5, 1.0]), [[0]]), "integers"),
        (lambda: column_filters(np.array([0, 1]), [[0.5]]), "integers"),  # type: ignore[list-item]
        (lambda: column_filters(np.array([0, 1]), [[[0]]]), "flat list"),  # type: ignore[list-item]
        (lambda: column_filters(np.array([0, 1]), "01"), "sequence"),  # type: ignore[arg-type]
        (lambda: column_filters(np.zeros(0, np.int64), [[0]]), "non-empty"),
        (lambda: violations(np.zeros((Q - 1, K), np.int64), fs), "one row per query"),
        (lambda: violations(np.zeros((Q, K)), fs), "integers"),
        (lambda: FilterSet(name="x", kind="column", selectivity=None, masks=np.zeros((2, 3)),
                           of_query=np.zeros(1, np.int64)), "bool"),
        (lambda: FilterSet(name="x", kind="column", selectivity=None, masks=np.zeros((2, 3), bool),
                           of_query=np.array([0, 2])), "index the 2 masks"),
        (lambda: FilterSet(name="x", kind="tenant", selectivity=None, masks=np.zeros((1, 3), bool),
                           of_query=np.zeros(1, np.int64)), "kind"),
    ]
    for call, message in cases:
        with pytest.raises(ValueError, match=message):
            call()
