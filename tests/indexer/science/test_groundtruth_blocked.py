"""Ground truth without copies: prepared vectors kept when read-only, cosine normalised in chunks,
faiss run over base blocks; checked against the unblocked path and numpy float64 brute force."""

from __future__ import annotations

import numpy as np
import pytest

from indexer.common.errors import UserError
from indexer.science import groundtruth
from indexer.science.groundtruth import (
    exact_knn,
    exact_knn_float64,
    groundtruth_agreement,
    pair_scores,
    prepare_vectors,
    self_knn,
    self_knn_float64,
)


def _gauss(n: int, d: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, d)).astype(np.float32)


def _read_only_map(tmp_path, arr: np.ndarray, name: str = "x.npy") -> np.ndarray:
    np.save(tmp_path / name, arr)
    return np.load(tmp_path / name, mmap_mode="r")


def _brute_knn(base: np.ndarray, queries: np.ndarray, k: int, metric: str) -> tuple[np.ndarray, np.ndarray]:
    """Top k by float64 scores (differences for l2), ties by ascending id: plain numpy."""
    b, q = base.astype(np.float64), queries.astype(np.float64)
    if metric == "l2":
        full = ((q[:, None, :] - b[None, :, :]) ** 2).sum(axis=2)
        order = np.argsort(full, axis=1, kind="stable")[:, :k]
    else:
        full = np.einsum("qd,nd->qn", q, b)
        order = np.argsort(-full, axis=1, kind="stable")[:, :k]
    return order, np.take_along_axis(full, order, axis=1)


# ------------------------------------------------------------------------------ prepare_vectors


@pytest.mark.parametrize("metric", ["l2", "ip"])
def test_prepare_returns_a_read_only_float32_map_itself(tmp_path, metric):
    x = _read_only_map(tmp_path, _gauss(20, 4, 0))
    assert prepare_vectors(x, metric) is x
    frozen = _gauss(20, 4, 1)
    frozen.flags.writeable = False
    assert prepare_vectors(frozen, metric) is frozen


@pytest.mark.parametrize("metric", ["l2", "ip"])
def test_prepare_copies_what_a_caller_could_change_or_must_convert(tmp_path, metric):
    writable = _gauss(20, 4, 0)
    out = prepare_vectors(writable, metric)
    assert out is not writable and not np.shares_memory(out, writable)
    for name, other in (("f64.npy", writable.astype(np.float64)), ("fortran.npy", np.asfortranarray(writable))):
        mapped = _read_only_map(tmp_path, other, name)
        out = prepare_vectors(mapped, metric)
        assert out.dtype == np.float32 and out.flags.c_contiguous and out.flags.writeable
        np.testing.assert_array_equal(out, writable)


def _cosine_as_before(x: np.ndarray) -> np.ndarray:
    """prepare_vectors(x, "cosine") as it was: one float64 copy of the whole matrix."""
    x64 = np.asarray(x).astype(np.float64)
    norms = np.linalg.norm(x64, axis=1, keepdims=True)
    np.divide(x64, norms, out=x64, where=norms > 0)
    return np.ascontiguousarray(x64, dtype=np.float32)


@pytest.mark.parametrize("block_elements", [1, 7 * 5, 1 << 22])
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int32, np.float16])
def test_chunked_cosine_is_bit_identical_to_the_whole_matrix(monkeypatch, block_elements, dtype):
    monkeypatch.setattr(groundtruth, "_PAIR_BLOCK_ELEMENTS", block_elements)
    x = (np.random.default_rng(3).normal(size=(101, 7)) * 50).astype(dtype)
    x[[0, 13, 14, 100]] = 0  # zero rows stay zero
    out = prepare_vectors(x, "cosine")
    assert out.dtype == np.float32 and out.flags.c_contiguous
    expected = _cosine_as_before(x)
    assert out.tobytes() == expected.tobytes()
    assert not out[[0, 13, 14, 100]].any()


def test_cosine_of_a_read_only_map_is_a_new_array(tmp_path):
    x = _read_only_map(tmp_path, _gauss(30, 5, 2) * 3)
    out = prepare_vectors(x, "cosine")
    assert out.flags.writeable and not np.shares_memory(out, x)
    assert out.tobytes() == _cosine_as_before(x).tobytes()


# -------------------------------------------------------------------------- blocked exact kNN


def _with_ties(n: int, d: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A base where one point has 20 exact copies spread over the rows (more than k + the re-rank
    margin, so the candidates must be chosen among ties), and queries next to it and elsewhere."""
    base = _gauss(n, d, seed)
    copies = np.arange(3, n, n // 20)[:20]
    base[copies] = base[1]
    queries = np.vstack([base[1] + np.float32(1e-3), base[1], _gauss(25, d, seed + 1)]).astype(np.float32)
    return base, queries


@pytest.mark.parametrize("metric", ["l2", "ip", "cosine"])
@pytest.mark.parametrize("block", [1, 3, 16, 17, 64, 199, 200, 1000])
def test_blocked_equals_unblocked_and_brute_force(metric, block):
    raw_base, raw_queries = _with_ties(200, 6, 4)
    base, queries = prepare_vectors(raw_base, metric), prepare_vectors(raw_queries, metric)
    k = 5
    ids, scores = exact_knn_float64(base, queries, k, metric, block=block)
    whole_ids, whole_scores = exact_knn_float64(base, queries, k, metric)
    np.testing.assert_array_equal(ids, whole_ids)
    np.testing.assert_array_equal(scores, whole_scores)
    ref_ids, ref_scores = _brute_knn(base, queries, k, metric)
    np.testing.assert_array_equal(ids, ref_ids)
    np.testing.assert_allclose(scores, ref_scores, rtol=1e-12, atol=1e-12)


def _copies_of_row_0(copies: int, n_queries: int, metric: str) -> tuple[np.ndarray, np.ndarray]:
    """Rows 0 and 10.. are `copies` exact copies; the first query is next to them. For ip the rows
    have unit length, so the copies are also the query's best inner products."""
    base = _gauss(60, 4, 5)
    base[10 : 10 + copies - 1] = base[0]
    queries = np.vstack([base[0] + np.float32(1e-2), _gauss(n_queries - 1, 4, 6)]).astype(np.float32)
    if metric == "ip":
        base, queries = prepare_vectors(base, "cosine"), prepare_vectors(queries, "cosine")
    return base, queries


@pytest.mark.parametrize("n_queries", [3, 40])  # faiss computes few queries directly, many with BLAS
@pytest.mark.parametrize("metric", ["l2", "ip"])
@pytest.mark.parametrize("k", [1, 5, 12])
def test_a_block_boundary_splitting_tied_duplicates(metric, n_queries, k):
    # margin + 1 copies: wherever they rank in a query's top k, all of them fit among its k + margin
    # candidates, so the result is fully determined (more copies: see the next test)
    base, queries = _copies_of_row_0(groundtruth._RERANK_EXTRA + 1, n_queries, metric)
    ref_ids, ref_scores = _brute_knn(base, queries, k, metric)
    whole_ids, whole_scores = exact_knn_float64(base, queries, k, metric)
    for block in (3, 4, 8, 16):  # boundaries at 12, 15 and 16 cut through the copies (0, 10..17)
        ids, scores = exact_knn_float64(base, queries, k, metric, block=block)
        np.testing.assert_array_equal(ids, ref_ids)
        np.testing.assert_allclose(scores, ref_scores, rtol=1e-12, atol=1e-12)
        np.testing.assert_array_equal(ids, whole_ids)
        np.testing.assert_array_equal(scores, whole_scores)


@pytest.mark.parametrize("metric", ["l2", "ip"])
def test_more_tied_copies_than_candidates(metric):
    """More exact copies than k + margin: which copies are kept is up to faiss (for ip it keeps the
    highest ids among equal float32 scores), blocked or not; their scores are the true k best."""
    base, queries = _copies_of_row_0(31, 40, metric)  # 0 and 10..39
    ref_ids, ref_scores = _brute_knn(base, queries, 5, metric)
    for block in (None, 16):
        ids, scores = exact_knn_float64(base, queries, 5, metric, block=block)
        np.testing.assert_allclose(scores, ref_scores, rtol=1e-12, atol=1e-12)
        assert set(ids[0]) <= {0, *range(10, 40)}
        assert all(len(set(row)) == 5 for row in ids)
        np.testing.assert_allclose(pair_scores(base, queries, ids, metric), ref_scores, rtol=1e-12, atol=1e-12)


def test_the_default_block_applies_above_its_size(monkeypatch):
    base, queries = _with_ties(300, 5, 7)
    whole = exact_knn(base, queries, 4, "l2")
    monkeypatch.setattr(groundtruth, "BASE_BLOCK", 7)
    calls = []
    real = groundtruth.faiss.knn

    def counting(xq, xb, k, **kw):
        calls.append(len(xb))
        return real(xq, xb, k, **kw)

    monkeypatch.setattr(groundtruth.faiss, "knn", counting)
    blocked = exact_knn(base, queries, 4, "l2")
    assert max(calls) == 7 and sum(calls) == 300
    np.testing.assert_array_equal(blocked[0], whole[0])
    np.testing.assert_array_equal(blocked[1], whole[1])


def test_block_must_be_positive():
    with pytest.raises(UserError, match="block must be at least 1"):
        exact_knn(_gauss(10, 3, 0), _gauss(2, 3, 1), 2, "l2", block=0)


# --------------------------------------------------------------------- read-only memory maps


@pytest.mark.parametrize("metric", ["l2", "ip"])
def test_knn_on_a_read_only_memory_map(tmp_path, metric):
    x = _gauss(150, 6, 8)
    x[40:45] = x[3]
    mapped = _read_only_map(tmp_path, x)
    queries = _read_only_map(tmp_path, _gauss(9, 6, 9), "q.npy")
    for block in (None, 32):
        np.testing.assert_array_equal(self_knn(mapped, 5, metric, block=block)[0], self_knn(x, 5, metric)[0])
        np.testing.assert_array_equal(self_knn_float64(mapped, 5, metric, block=block)[1],
                                      self_knn_float64(x, 5, metric)[1])
        got = exact_knn(mapped, queries, 4, metric, block=block)
        want = exact_knn(x, np.array(queries), 4, metric)
        np.testing.assert_array_equal(got[0], want[0])
        np.testing.assert_array_equal(got[1], want[1])
    ids = np.array([[0, 41, -1], [149, 3, 2]])
    np.testing.assert_array_equal(pair_scores(mapped, queries[:2], ids, metric),
                                  pair_scores(x, np.array(queries[:2]), ids, metric))


def test_groundtruth_agreement_on_a_read_only_memory_map(tmp_path, monkeypatch):
    x, q = _gauss(120, 5, 10), _gauss(6, 5, 11)
    ids, scores = exact_knn(x, q, 4, "l2")
    want = groundtruth_agreement(ids, ids, scores, base=x, queries=q, k=4, metric="l2")
    monkeypatch.setattr(groundtruth, "_PAIR_BLOCK_ELEMENTS", 5 * 7)  # the norm scan in blocks of 7 rows
    mapped = _read_only_map(tmp_path, x)
    got = groundtruth_agreement(ids, ids, scores, base=mapped, queries=q, k=4, metric="l2")
    np.testing.assert_array_equal(got, want)
    assert got.all()
    assert groundtruth._max_row_norm(mapped) == float(np.linalg.norm(x.astype(np.float64), axis=1).max())
