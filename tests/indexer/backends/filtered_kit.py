"""Checks shared by the filtered-search tests of the systems (test_filtered_<backend>.py): one filtered
answer against numpy brute force over the passing rows, and a dense index built in a shuffled order."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import numpy as np

from indexer.backends import new_index
from tests.indexer.backends.test_filtered_search import K, N, _data, _scores


@contextlib.contextmanager
def dense_index(name: str, params: dict[str, Any], space: str) -> Iterator[Any]:
    """A dense index of backend `name` over the test points in a shuffled order (so ids must be mapped back)."""
    x, _ = _data(space)
    index = new_index(name, x.shape[1], space, params=params, seed=0)
    try:
        index.build(x, np.random.default_rng(2).permutation(N))
        yield index
    finally:
        index.close()


def check_filtered(space: str, allowed: np.ndarray, ids: np.ndarray, scores: np.ndarray,
                   expected: np.ndarray | int) -> None:
    """Each query's row holds `expected[i]` passing ids, best first, the nearest passing ones up to ties, with
    their exact scores, then id -1 and score NaN."""
    x, q = _data(space)
    want = np.broadcast_to(np.asarray(expected), (len(q),))
    assert ids.shape == (len(q), K) and ids.dtype == np.int64 and scores.dtype == np.float32
    exact = _scores(x, q, space)
    sign = -1.0 if space == "ip" else 1.0  # sign * score: lower is nearer
    rows = np.flatnonzero(allowed[:N])
    tol = 1e-5 * max(1.0, float(np.abs(exact).max()))
    for i in range(len(q)):
        count = int((ids[i] >= 0).sum())
        assert count == want[i], f"{space}: query {i} got {count} of {want[i]}"
        assert (ids[i, count:] == -1).all() and np.isnan(scores[i, count:]).all()
        found = ids[i, :count]
        assert not np.isnan(scores[i, :count]).any()
        assert (found < N).all() and allowed[found].all(), "an id the mask drops came back"
        assert len(set(found.tolist())) == count, "an id came back twice"
        if count == 0:
            continue
        np.testing.assert_allclose(scores[i, :count], exact[i, found], rtol=1e-5, atol=1e-4)
        assert (np.diff(sign * scores[i, :count]) >= -tol).all()  # best first, as `search`
        order = rows[np.argsort(sign * exact[i, rows], kind="stable")]
        kth = sign * exact[i, order[count - 1]]
        assert (sign * exact[i, found] <= kth + tol).all()
        missed = np.setdiff1d(order[:count], found)
        assert (sign * exact[i, missed] >= kth - tol).all(), f"{space}: query {i} missed {missed}"
