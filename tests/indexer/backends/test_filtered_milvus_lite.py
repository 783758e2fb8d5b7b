"""Milvus Lite's filtered search: its own boolean expression on the primary key (`id in [...]`).

At exhaustive settings (a dense graph, ef = N) the filtered answer is numpy's brute force over the passing
rows, for the masks test_filtered_search uses; every returned id passes, short rows are padded with -1 and
NaN, an empty mask returns nothing. The expression reaches the faiss HNSW graph as a selector: at a small
ef a very selective mask comes back short (in-graph filtering stops with ef candidates), and the expression
takes the shorter of the `in` and `not in` lists.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from tests.indexer.backends.filtered_kit import check_filtered
from tests.indexer.backends.test_filtered_search import MASKS, K, N, _data, _mask

pytest.importorskip("milvus_lite")

NAME = "milvus_lite"
EXHAUSTIVE = {"M": 32, "ef_construction": 500}
_BUILT: dict[str, Any] = {}


def _index(space: str) -> Any:
    """One build per space, over the points in a shuffled order (ids must be mapped back)."""
    from indexer.backends import new_index

    if space not in _BUILT:
        x, _ = _data(space)
        index = new_index(NAME, x.shape[1], space, params=EXHAUSTIVE, seed=0)
        index.build(x, np.random.default_rng(2).permutation(N))
        _BUILT[space] = index
    return _BUILT[space]


@pytest.fixture(scope="module", autouse=True)
def _close_built() -> Any:
    yield
    for index in _BUILT.values():
        index.close()
    _BUILT.clear()


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
    ids, scores = index.search_filtered(q, K, None, np.zeros(N, dtype=bool))
    assert ids.shape == (len(q), K) and (ids == -1).all() and np.isnan(scores).all()
    ids, scores = index.search_filtered(q[:0], K, None, np.ones(N, dtype=bool))
    assert ids.shape == (0, K) and scores.shape == (0, K)


def test_the_expression_is_the_shorter_list() -> None:
    from indexer.backends.milvus_lite import _expression

    rows = np.array([0, 2, 5, 7])
    assert _expression(rows, np.array([True, False, False, False])) == "id in [0]"
    assert _expression(rows, np.array([True, True, True, False])) == "id not in [7]"
    assert _expression(rows, np.zeros(4, dtype=bool)) == "id in []"
    assert _expression(rows, np.ones(4, dtype=bool)) == "id not in []"


def test_an_all_passing_mask_is_the_unfiltered_search() -> None:
    """`id not in []`: Milvus Lite hands the index no selector when every row passes."""
    _, q = _data("ip")
    index = _index("ip")
    ids, scores = index.search_filtered(q, K, 16, np.ones(N + 3, dtype=bool))
    plain, plain_scores = index.search(q, K, 16)
    np.testing.assert_array_equal(ids, plain)
    np.testing.assert_array_equal(scores, plain_scores)


def test_in_graph_filtering_at_a_small_ef_comes_back_short() -> None:
    """The selector only keeps failing points out of the results: with ef 10 and 2% of the points passing,
    the graph search stops before it meets k of them, and Milvus Lite returns what it found, padded."""
    _, q = _data("l2")
    index = _index("l2")
    allowed = _mask(N // 50, seed=3)
    ids, scores = index.search_filtered(q, K, K, allowed)
    counts = (ids >= 0).sum(axis=1)
    assert counts.min() < K
    for i in range(len(q)):
        assert allowed[ids[i, : counts[i]]].all() and (ids[i, counts[i]:] == -1).all()
        assert np.isnan(scores[i, counts[i]:]).all()
