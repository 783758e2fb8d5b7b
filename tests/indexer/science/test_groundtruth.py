"""Exact kNN and its cache, checked against sklearn and numpy brute force, never against itself."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from sklearn.neighbors import NearestNeighbors

from indexer.common.errors import UserError
from indexer.science.groundtruth import (
    cached,
    check_groundtruth,
    exact_knn,
    groundtruth_agreement,
    index_metric,
    prepare_vectors,
    self_knn,
)


def _gauss(n: int, d: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, d)).astype(np.float32)


def _brute_scores(base: np.ndarray, queries: np.ndarray, metric: str) -> np.ndarray:
    """All query-base scores in float64 by plain numpy."""
    b = base.astype(np.float64)
    q = queries.astype(np.float64)
    if metric == "l2":
        return ((q[:, None, :] - b[None, :, :]) ** 2).sum(axis=2)
    return q @ b.T


# ------------------------------------------------------------------------------ prepare / metric


def test_prepare_cosine_normalises_rows_and_keeps_zero_rows() -> None:
    x = np.array([[3.0, 4.0], [0.0, 0.0], [-1.0, 0.0]], dtype=np.float64)
    out = prepare_vectors(x, "cosine")
    assert out.dtype == np.float32 and out.flags["C_CONTIGUOUS"]
    np.testing.assert_allclose(out, [[0.6, 0.8], [0.0, 0.0], [-1.0, 0.0]], rtol=1e-7)


@pytest.mark.parametrize("metric", ["l2", "ip"])
def test_prepare_other_metrics_copy_unchanged(metric: str) -> None:
    x = np.asfortranarray(_gauss(5, 3, 0))
    out = prepare_vectors(x, metric)
    assert out.flags["C_CONTIGUOUS"] and out.dtype == np.float32
    np.testing.assert_array_equal(out, x)
    out[0, 0] = 99.0
    assert x[0, 0] != 99.0  # a copy, not a view


def test_index_metric_and_unknown_metric() -> None:
    assert [index_metric(m) for m in ("cosine", "ip", "l2")] == ["ip", "ip", "l2"]
    with pytest.raises(UserError, match="unknown metric"):
        index_metric("hamming")


# ------------------------------------------------------------------------------------ exact kNN


def test_exact_knn_l2_matches_sklearn() -> None:
    base, queries = _gauss(600, 16, 1), _gauss(40, 16, 2)
    ids, scores = exact_knn(base, queries, 10, "l2")
    assert ids.dtype == np.int64 and scores.dtype == np.float32 and ids.shape == (40, 10)
    nn = NearestNeighbors(n_neighbors=10, algorithm="brute").fit(base.astype(np.float64))
    dist, ref = nn.kneighbors(queries.astype(np.float64))
    np.testing.assert_array_equal(ids, ref)
    np.testing.assert_allclose(scores, dist**2, rtol=1e-5)  # squared L2, ascending


def test_exact_knn_ip_matches_numpy_brute_force() -> None:
    base, queries = _gauss(500, 12, 3), _gauss(30, 12, 4)
    ids, scores = exact_knn(base, queries, 7, "ip")
    full = _brute_scores(base, queries, "ip")
    ref = np.argsort(-full, axis=1, kind="stable")[:, :7]
    np.testing.assert_array_equal(ids, ref)
    np.testing.assert_allclose(scores, np.take_along_axis(full, ref, axis=1), rtol=1e-5)
    assert (np.diff(scores, axis=1) <= 0).all()  # best (highest) first


def test_exact_knn_cosine_on_prepared_vectors_matches_sklearn_cosine() -> None:
    raw_base, raw_q = _gauss(300, 8, 5) * 3 + 1, _gauss(20, 8, 6)
    ids, scores = exact_knn(
        prepare_vectors(raw_base, "cosine"), prepare_vectors(raw_q, "cosine"), 5, "cosine"
    )
    nn = NearestNeighbors(n_neighbors=5, algorithm="brute", metric="cosine").fit(raw_base.astype(np.float64))
    dist, ref = nn.kneighbors(raw_q.astype(np.float64))
    np.testing.assert_array_equal(ids, ref)
    np.testing.assert_allclose(scores, 1.0 - dist, atol=1e-6)  # cosine similarity


def test_exact_knn_with_tied_duplicates_returns_true_scores() -> None:
    base = _gauss(200, 6, 7)
    base[50:60] = base[10]  # ten exact copies of one point: ties at every rank among them
    queries = base[[10, 3]] + np.float32(1e-3)
    ids, scores = exact_knn(base, queries, 8, "l2")
    full = _brute_scores(base, queries, "l2")
    # Whatever ids are chosen among ties, their true scores must be the k best true scores.
    np.testing.assert_allclose(np.take_along_axis(full, ids, axis=1), np.sort(full, axis=1)[:, :8], rtol=1e-9)
    np.testing.assert_allclose(scores, np.sort(full, axis=1)[:, :8], rtol=1e-6)
    assert set(ids[0]) <= {10, *range(50, 60)}
    assert all(len(set(row)) == 8 for row in ids)


def test_exact_knn_rejects_k_larger_than_base() -> None:
    with pytest.raises(UserError, match="exceeds"):
        exact_knn(_gauss(5, 3, 0), _gauss(2, 3, 1), 6, "l2")


# ------------------------------------------------------------------------------------- self kNN


def test_self_knn_matches_sklearn_without_self() -> None:
    x = _gauss(400, 10, 8)
    ids, scores = self_knn(x, 6, "l2")
    dist, ref = NearestNeighbors(n_neighbors=6, algorithm="brute").fit(x.astype(np.float64)).kneighbors()
    np.testing.assert_array_equal(ids, ref)
    np.testing.assert_allclose(scores, dist**2, rtol=1e-5)


def test_self_knn_with_duplicates_drops_own_id() -> None:
    x = _gauss(100, 4, 9)
    x[[20, 21, 22, 23]] = x[5]  # five identical points: 5, 20, 21, 22, 23
    ids, scores = self_knn(x, 3, "l2")
    assert not (ids == np.arange(100)[:, None]).any()
    for i in (5, 20, 21, 22, 23):
        assert set(ids[i]) <= {5, 20, 21, 22, 23} - {i}
        np.testing.assert_array_equal(scores[i], 0.0)
    full = _brute_scores(x, x, "l2")
    np.fill_diagonal(full, np.inf)
    np.testing.assert_allclose(scores, np.sort(full, axis=1)[:, :3], rtol=1e-6, atol=1e-12)


def test_self_knn_ip_when_self_is_not_the_best_match() -> None:
    # With unnormalised inner product a long vector beats the point itself.
    x = _gauss(50, 3, 10)
    x[0] *= 100.0
    ids, scores = self_knn(x, 4, "ip")
    full = _brute_scores(x, x, "ip")
    np.fill_diagonal(full, -np.inf)
    np.testing.assert_array_equal(ids, np.argsort(-full, axis=1, kind="stable")[:, :4])
    assert not (ids == np.arange(50)[:, None]).any()


# ------------------------------------------------------------------------------ provided truth


def _setup_truth() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    base = _gauss(300, 8, 11)
    base[100:103] = base[7]  # ties: 7, 100, 101, 102
    queries = np.vstack([base[7] + np.float32(0.01), _gauss(19, 8, 12)]).astype(np.float32)
    full = _brute_scores(base, queries, "l2")
    truth = np.argsort(full, axis=1, kind="stable")
    ids, scores = exact_knn(base, queries, 5, "l2")
    return base, queries, truth, ids, scores


def test_check_groundtruth_accepts_brute_force_and_tie_swaps() -> None:
    base, queries, truth, ids, scores = _setup_truth()
    kw = {"base": base, "queries": queries, "k": 5, "metric": "l2"}
    assert check_groundtruth(truth[:, :5], ids, scores, **kw) == 1.0
    # Query 0's four nearest (7, 100, 101, 102) are exact ties: at k=3 a table that lists another
    # choice of three of them agrees, even though 102 is not in our top 3.
    assert set(truth[0, :4]) == {7, 100, 101, 102}
    ids3, scores3 = exact_knn(base, queries, 3, "l2")
    other = truth[:, :3].copy()
    other[0] = [102, 101, 100]
    assert 102 not in ids3[0]
    kw3 = {**kw, "k": 3}
    assert check_groundtruth(other, ids3, scores3, **kw3) == 1.0
    # Without the tie it would not: a non-tied fourth neighbour in its place disagrees.
    other[0, 0] = truth[0, 4]
    assert not groundtruth_agreement(other, ids3, scores3, **kw3)[0]


def test_check_groundtruth_flags_wrong_tables() -> None:
    base, queries, truth, ids, scores = _setup_truth()
    kw = {"base": base, "queries": queries, "k": 5, "metric": "l2"}
    shifted = (truth[:, :5] + 1) % len(base)  # off-by-one ids (1-based table)
    assert check_groundtruth(shifted, ids, scores, **kw) < 0.2
    bad = truth[:, :5].copy()
    bad[3, 0] = len(base) + 5  # out of range
    bad[4, 1] = bad[4, 0]  # repeated id
    bad[5, 4] = truth[5, 40]  # a clearly worse neighbour
    agree = groundtruth_agreement(bad, ids, scores, **kw)
    assert agree.tolist() == [i not in (3, 4, 5) for i in range(len(queries))]
    with pytest.raises(UserError, match="columns"):
        check_groundtruth(truth[:, :3], ids, scores, **kw)


# ---------------------------------------------------------------------------------------- cache


def test_cached_computes_once_and_round_trips(tmp_path: Path) -> None:
    calls: list[int] = []

    def compute() -> dict[str, np.ndarray]:
        calls.append(1)
        return {
            "ids": np.arange(12, dtype=np.int64).reshape(3, 4),
            "scores": np.linspace(0, 1, 5, dtype=np.float32),
        }

    first = cached(tmp_path / "c", "gt-abc", compute)
    second = cached(tmp_path / "c", "gt-abc", compute)
    assert len(calls) == 1
    for name in ("ids", "scores"):
        np.testing.assert_array_equal(first[name], second[name])
        assert first[name].dtype == second[name].dtype
    assert os.listdir(tmp_path / "c") == ["gt-abc.npz"]  # no temp files left behind


@pytest.mark.parametrize("damage", ["truncate", "garbage", "flip"])
def test_cached_recomputes_damaged_file(tmp_path: Path, damage: str) -> None:
    arrays = {"a": np.arange(1000, dtype=np.float64)}
    cached(tmp_path, "k1", lambda: arrays)
    path = tmp_path / "k1.npz"
    blob = path.read_bytes()
    if damage == "truncate":
        path.write_bytes(blob[: len(blob) // 2])
    elif damage == "garbage":
        path.write_bytes(b"not a zip file at all")
    else:  # a flipped byte inside the array data: only the zip CRC can notice it
        mid = len(blob) // 2
        path.write_bytes(blob[:mid] + bytes([blob[mid] ^ 0xFF]) + blob[mid + 1 :])
    fresh = {"a": np.arange(1000, dtype=np.float64) * 2}
    out = cached(tmp_path, "k1", lambda: fresh)
    np.testing.assert_array_equal(out["a"], fresh["a"])
    np.testing.assert_array_equal(np.load(path)["a"], fresh["a"])  # the bad file was replaced


def test_cached_failed_compute_leaves_nothing(tmp_path: Path) -> None:
    def boom() -> dict[str, np.ndarray]:
        raise RuntimeError("compute failed")

    with pytest.raises(RuntimeError):
        cached(tmp_path, "k2", boom)
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(ValueError, match="plain file name"):
        cached(tmp_path, "../escape", lambda: {})
