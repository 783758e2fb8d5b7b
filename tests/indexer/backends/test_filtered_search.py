"""Filtered search (base.FilteredSearch), each backend through its library's own mechanism.

At exhaustive settings (ef = the number of points, a dense graph) a filtered answer is the exact filtered
k nearest neighbours: checked against numpy brute force over the passing rows, ids as sets up to ties in
score, for masks keeping half the points, 5% of them, fewer than k, and none. Every returned id passes the
mask, padding is id -1 with score NaN, and scores follow `search`'s conventions. A backend declares a
filtering strategy exactly when its index implements the protocol.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from indexer.backends import BACKENDS, new_index
from indexer.backends.base import FilteredSearch, VectorIndex
from indexer.backends.hnswlib_index import HnswlibIndex
from tests.indexer.backends.kit import clustered_data

N, D, Q, K = 500, 16, 20, 10
EXHAUSTIVE: dict[str, dict[str, Any]] = {  # a dense graph over 500 points, searched at ef = N
    "hnswlib": {"M": 32, "ef_construction": 500},
    "faiss_hnsw": {"M": 32, "ef_construction": 500},
    "exact": {},
    "usearch": {"M": 32, "ef_construction": 500, "dtype": "f32"},  # f32: scores exact to float32
    "voyager": {"M": 32, "ef_construction": 500},
}
STRATEGY = {"hnswlib": "in_graph", "faiss_hnsw": "in_graph", "exact": "pre", "usearch": "post", "voyager": "post"}
MASKS = {"half": N // 2, "five_percent": N // 20, "fewer_than_k": 3, "empty": 0}
EXTRA = 7  # the mask runs past the last row: rows no index holds, all allowed, must never come back


def _data(space: str) -> tuple[np.ndarray, np.ndarray]:
    """Gaussian points and queries; unit vectors for ip (the engine's cosine: usearch and voyager search
    ip as cosine, which equals ip on unit vectors only)."""
    rng = np.random.default_rng(0 if space == "l2" else 1)
    x = rng.standard_normal((N, D)).astype(np.float32)
    q = rng.standard_normal((Q, D)).astype(np.float32)
    if space == "ip":
        x /= np.linalg.norm(x, axis=1, keepdims=True)
        q /= np.linalg.norm(q, axis=1, keepdims=True)
    return x, q


def _mask(kept: int, seed: int) -> np.ndarray:
    allowed = np.zeros(N + EXTRA, dtype=bool)
    allowed[np.random.default_rng(seed).choice(N, kept, replace=False)] = True
    allowed[N:] = True
    return allowed


def _scores(x: np.ndarray, q: np.ndarray, space: str) -> np.ndarray:
    """(queries, N) exact scores in float64: inner product for ip, squared L2 for l2."""
    x64, q64 = x.astype(np.float64), q.astype(np.float64)
    if space == "ip":
        return q64 @ x64.T
    return ((q64[:, None, :] - x64[None]) ** 2).sum(-1)


_BUILT: dict[tuple[str, str], VectorIndex] = {}


def _index(name: str, space: str) -> VectorIndex:
    """One build per backend and space, over the points in a shuffled order (so ids must be mapped back)."""
    key = (name, space)
    if key not in _BUILT:
        x, _ = _data(space)
        index = new_index(name, D, space, params=EXHAUSTIVE[name], seed=0)
        index.build(x, np.random.default_rng(2).permutation(N))
        _BUILT[key] = index
    return _BUILT[key]


@pytest.mark.parametrize("mask", list(MASKS))
@pytest.mark.parametrize("space", ["ip", "l2"])
@pytest.mark.parametrize("name", list(EXHAUSTIVE))
def test_exhaustive_filtered_answer_is_the_brute_force_one(name: str, space: str, mask: str) -> None:
    x, q = _data(space)
    allowed = _mask(MASKS[mask], seed=len(mask))
    index = _index(name, space)
    assert isinstance(index, FilteredSearch)
    ids, scores = index.search_filtered(q, K, N, allowed)
    assert ids.shape == (Q, K) and ids.dtype == np.int64 and scores.dtype == np.float32

    exact = _scores(x, q, space)
    sign = -1.0 if space == "ip" else 1.0  # sign * score: lower is nearer
    rows = np.flatnonzero(allowed[:N])
    expected = min(K, len(rows))
    tol = 1e-5 * max(1.0, float(np.abs(exact).max()))
    for i in range(Q):
        got = ids[i]
        count = int((got >= 0).sum())
        assert count == expected, f"{name} {space} {mask}: query {i} got {count} of {expected}"
        assert (got[:count] >= 0).all() and (got[count:] == -1).all()  # padding after the answers, only
        assert np.isnan(scores[i, count:]).all() and not np.isnan(scores[i, :count]).any()
        found = got[:count]
        assert (found < N).all() and allowed[found].all(), "an id the mask drops came back"
        assert len(set(found.tolist())) == count, "an id came back twice"
        if count == 0:
            continue
        np.testing.assert_allclose(scores[i, :count], exact[i, found], rtol=1e-5, atol=1e-4)
        # the brute-force answer up to ties: every returned id is as near as the k-th passing one, and
        # every passing id it missed is no nearer than that
        order = rows[np.argsort(sign * exact[i, rows], kind="stable")]
        kth = sign * exact[i, order[count - 1]]
        assert (sign * exact[i, found] <= kth + tol).all()
        missed = np.setdiff1d(order[:count], found)
        assert (sign * exact[i, missed] >= kth - tol).all(), f"{name} {space} {mask}: query {i} missed {missed}"


@pytest.mark.parametrize("name", list(EXHAUSTIVE))
def test_the_declared_strategy(name: str) -> None:
    assert BACKENDS[name].capabilities.filtering == STRATEGY[name]


@pytest.mark.parametrize("name", list(BACKENDS))
def test_capabilities_and_protocol_agree(name: str) -> None:
    """A backend declares a filtering strategy exactly when its index implements FilteredSearch."""
    backend = BACKENDS[name]
    assert isinstance(backend.index, type)
    assert (backend.capabilities.filtering is not None) == issubclass(backend.index, FilteredSearch)


@pytest.mark.parametrize("name", list(EXHAUSTIVE))
def test_a_mask_that_does_not_cover_the_rows_is_refused(name: str) -> None:
    _, q = _data("l2")
    index = _index(name, "l2")
    assert isinstance(index, FilteredSearch)
    with pytest.raises(ValueError, match="allowed"):
        index.search_filtered(q, K, N, np.ones(N - 1, dtype=bool))  # row N - 1 is not covered
    with pytest.raises(ValueError, match="bool"):
        index.search_filtered(q, K, N, np.ones(N, dtype=np.int64))  # an index array, not a mask


@pytest.mark.parametrize("name", ["usearch", "voyager"])
def test_post_filtering_widens_until_k_pass(name: str) -> None:
    """At a small ef, a mask that drops every query's 100 nearest points: the first rounds of candidates
    hold no passing point, and the search keeps widening until k pass."""
    x, q = _data("l2")
    exact = _scores(x, q, "l2")
    allowed = np.ones(N, dtype=bool)
    allowed[np.argsort(exact, axis=1)[:, :100].ravel()] = False
    index = _index(name, "l2")
    assert isinstance(index, FilteredSearch)
    ids, _ = index.search_filtered(q, K, 16, allowed)
    assert (ids >= 0).all() and allowed[ids].all()


class _CountingIndex:
    """An hnswlib.Index whose knn_query calls are counted, and those that raised."""

    def __init__(self, inner: Any) -> None:
        self.inner, self.calls, self.raised = inner, 0, 0

    def knn_query(self, *args: Any, **kwargs: Any) -> Any:
        self.calls += 1
        try:
            return self.inner.knn_query(*args, **kwargs)
        except RuntimeError:
            self.raised += 1
            raise

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


@pytest.mark.parametrize("space", ["ip", "l2"])
def test_hnswlib_filtered_short_answers_never_raise(space: str) -> None:
    """A sparse graph (M=2) over clusters: a filtered query reaches fewer passing points than k, and how many
    depends on where its descent starts layer 0. hnswlib raises for those (and leaks its buffers); each query
    gets exactly what hnswlib's filtered search can return, and no call raises."""
    x, q = clustered_data(n=2500, d=32, q=40, seed=3)  # clusters: layer 0 falls apart into many pieces
    rng = np.random.default_rng(3)
    index = HnswlibIndex(32, space, M=2, ef_construction=4, seed=1)
    index.build(x, rng.permutation(len(x)))
    allowed = rng.random(len(x)) < 0.3
    k = int(allowed.sum())  # every passing point: only a query that reaches them all fills its row
    index._reach()  # read the graph before the wrapper hides the index
    counting = _CountingIndex(index._index)
    index._index = counting  # type: ignore[assignment]
    ids, scores = index.search_filtered(q, k, None, allowed)
    assert counting.raised == 0 and counting.calls >= 1
    returned = (ids >= 0).sum(axis=1)
    # the graph is sparse enough to test what it should: starts reach different numbers of passing points
    assert len(np.unique(returned)) > 1 and returned.max() < k
    raw, keep = counting.inner, allowed.tolist().__getitem__
    raw.set_ef(k)
    for i in range(len(q)):
        lo, hi = 0, k  # the largest count raw hnswlib answers this query with the filter
        while lo < hi:
            mid = (lo + hi + 1) // 2
            try:
                raw.knn_query(q[i : i + 1], k=mid, num_threads=1, filter=keep)
                lo = mid
            except RuntimeError:
                hi = mid - 1
        assert returned[i] == lo
        assert allowed[ids[i, :lo]].all() and (ids[i, lo:] == -1).all() and np.isnan(scores[i, lo:]).all()
        if lo:
            got, _ = raw.knn_query(q[i : i + 1], k=lo, num_threads=1, filter=keep)
            assert set(got[0].tolist()) == set(ids[i, :lo].tolist())
