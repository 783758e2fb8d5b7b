"""lancedb's filtered search: its own `where` on the `id` column, prefiltered (LanceDB's default).

At exhaustive settings (IVF_HNSW_FLAT, so the ranking is by float32 distances; a dense graph; ef = N) the
filtered answer is numpy's brute force over the passing rows, for the masks test_filtered_search uses; every
returned id passes, short rows are padded with -1 and NaN, an empty mask returns nothing. What lance does
with the HNSW sub-index is checked too: the plan filters the table before the ANN search, below 10% passing
it brute-forces the passing rows (exact on a lean graph at the default ef), above it searches the graph
(approximate there), and its postfilter mode answers from the unfiltered top k, so it can come back short.
"""

from __future__ import annotations

import importlib.util
from typing import Any

import numpy as np
import pytest

from tests.indexer.backends.filtered_kit import check_filtered
from tests.indexer.backends.test_filtered_search import MASKS, K, N, _data, _mask, _scores

# not importorskip: importing lancedb here, before the backend pins RAYON_NUM_THREADS, is what it refuses
# (see test_lancedb.py)
if importlib.util.find_spec("lancedb") is None:
    pytest.skip("lancedb is not installed", allow_module_level=True)

NAME = "lancedb"
EXHAUSTIVE = {"M": 32, "ef_construction": 500, "index_type": "IVF_HNSW_FLAT"}
LEAN = {"M": 4, "ef_construction": 8, "index_type": "IVF_HNSW_FLAT"}
_BUILT: dict[tuple[str, str], Any] = {}


def _index(space: str, kind: str = "exhaustive") -> Any:
    """One build per space and graph, over the points in a shuffled order (ids must be mapped back)."""
    from indexer.backends import new_index

    key = (space, kind)
    if key not in _BUILT:
        x, _ = _data(space)
        index = new_index(NAME, x.shape[1], space, params=EXHAUSTIVE if kind == "exhaustive" else LEAN, seed=0)
        index.build(x, np.random.default_rng(2).permutation(N))
        _BUILT[key] = index
    return _BUILT[key]


@pytest.fixture(scope="module", autouse=True)
def _close_built() -> Any:
    yield
    for index in _BUILT.values():
        index.close()
    _BUILT.clear()


def _recall(ids: np.ndarray, x: np.ndarray, q: np.ndarray, space: str, allowed: np.ndarray) -> float:
    """Recall@K of `ids` against the brute-force answer over the passing rows."""
    exact = _scores(x, q, space)
    rows = np.flatnonzero(allowed[:N])
    sign = -1.0 if space == "ip" else 1.0
    truth = rows[np.argsort(sign * exact[:, rows], axis=1, kind="stable")[:, :K]]
    return float(np.mean([len(set(a) & set(b)) / K for a, b in zip(ids, truth, strict=True)]))


@pytest.mark.parametrize("mask", list(MASKS))
@pytest.mark.parametrize("space", ["ip", "l2"])
def test_exhaustive_filtered_answer_is_the_brute_force_one(space: str, mask: str) -> None:
    from indexer.backends.base import FilteredSearch

    x, q = _data(space)
    allowed = _mask(MASKS[mask], seed=len(mask))
    index = _index(space)
    assert isinstance(index, FilteredSearch)
    ids, scores = index.search_filtered(q, K, N, allowed)
    check_filtered(space, allowed, ids, scores, min(K, int(allowed[:N].sum())))


def test_the_mask_is_checked_and_an_empty_one_returns_nothing() -> None:
    _, q = _data("l2")
    index = _index("l2")
    with pytest.raises(ValueError, match="allowed"):
        index.search_filtered(q, K, N, np.ones(N - 1, dtype=bool))  # the last row is not covered
    with pytest.raises(ValueError, match="bool"):
        index.search_filtered(q, K, N, np.ones(N, dtype=np.int64))  # an index array, not a mask
    for queries in (q, q[:1]):  # a single query comes back without query_index
        ids, scores = index.search_filtered(queries, K, None, np.zeros(N, dtype=bool))
        assert ids.shape == (len(queries), K) and (ids == -1).all() and np.isnan(scores).all()


def test_the_filter_runs_before_the_ann_search_and_postfilter_after() -> None:
    """The plan of the default mode filters the table (`full_filter`) beside the ANN sub-index; postfilter
    filters the ANN search's output (FilterExec above it)."""
    _, q = _data("l2")
    index = _index("l2")
    allowed = _mask(MASKS["half"], seed=4)
    pre = index.plan(q[0], K, allowed)
    post = index.plan(q[0], K, allowed, mode="postfilter")
    assert "ANNSubIndex" in pre and "full_filter=id" in pre and "FilterExec" not in pre
    assert "ANNSubIndex" in post and "full_filter" not in post
    assert post.index("FilterExec") < post.index("ANNSubIndex")  # the filter sits above the search


def test_below_ten_percent_passing_lance_brute_forces_the_passing_rows() -> None:
    """lance-index's HNSW search: with fewer than 10% of the rows passing (`remained < len * 10 / 100`) it
    scans them (`flat_search`), so a lean graph at lance's default ef (1.5 k) answers 49 of 500 exactly;
    from 50 on it walks the graph, and misses some."""
    x, q = _data("l2")
    index = _index("l2", "lean")
    for kept, exact in ((N // 10 - 1, True), (N // 10, False)):
        allowed = _mask(kept, seed=0)
        recall = _recall(index.search_filtered(q, K, None, allowed)[0], x, q, "l2", allowed)
        assert (recall == 1.0) == exact, f"{kept} passing: recall {recall}"


def test_postfilter_keeps_the_passing_ones_of_the_unfiltered_top_k() -> None:
    """LanceDB's postfilter: the unfiltered ANN answer, then the filter; rows come back short and padded."""
    x, q = _data("l2")
    index = _index("l2")
    allowed = _mask(MASKS["half"], seed=4)
    ids, scores = index.search_filtered(q, K, N, allowed, mode="postfilter")
    plain, _ = index.search(q, K, N)
    counts = (ids >= 0).sum(axis=1)
    assert counts.min() < K  # some query's top k holds a failing point
    for i in range(len(q)):
        found = ids[i, : counts[i]]
        assert allowed[found].all() and (ids[i, counts[i]:] == -1).all() and np.isnan(scores[i, counts[i]:]).all()
        assert set(found.tolist()) == {r for r in plain[i].tolist() if allowed[r]}
