"""chroma's filtered search: `query(ids=...)` on the row ids the collection stores, which Chroma hands to its
hnswlib fork as an allow-list filter functor (in-graph filtering: the layer-0 search walks every link and
returns only points that pass, until it holds max(ef, k) of them).

At exhaustive settings (a dense graph, ef = N) the answer is numpy brute force over the passing rows, ids as
sets up to score ties. On a lean graph at a low ef, every query still gets k passing points, where a
post-filter of the unfiltered answer would keep a few. A mask larger than SQLite's 32,766 bound variables
(where a `where` `$in` on metadata fails) is searched like any other.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest

from indexer.backends import BACKENDS, new_index
from indexer.backends.base import FilteredSearch
from indexer.backends.chroma_index import ChromaIndex  # imports no chromadb
from tests.indexer.backends.filtered_kit import check_filtered
from tests.indexer.backends.kit import brute_force, clustered_data
from tests.indexer.backends.test_filtered_search import MASKS, K, N, _data, _mask

pytest.importorskip("chromadb")

NAME = "chroma"
DENSE = {"M": 32, "ef_construction": 500}  # over 500 points: the exact k nearest at ef = N


@pytest.fixture(scope="module", params=["ip", "l2"])
def built(request: pytest.FixtureRequest) -> Iterator[tuple[str, ChromaIndex]]:
    """One dense index per space, over the points in a shuffled order (ids are the rows whatever the order)."""
    space = request.param
    x, _ = _data(space)
    index = new_index(NAME, x.shape[1], space, params=DENSE, seed=0)
    assert isinstance(index, ChromaIndex)
    try:
        index.build(x, np.random.default_rng(2).permutation(N))
        yield space, index
    finally:
        index.close()


@pytest.mark.parametrize("mask", list(MASKS))
def test_exhaustive_filtered_answer_is_the_brute_force_one(built: tuple[str, ChromaIndex], mask: str) -> None:
    space, index = built
    _, q = _data(space)
    allowed = _mask(MASKS[mask], seed=len(mask))
    ids, scores = index.search_filtered(q, K, N, allowed)
    check_filtered(space, allowed, ids, scores, min(K, int(allowed[:N].sum())))


def test_the_empty_mask_short_k_and_a_wrong_mask(built: tuple[str, ChromaIndex]) -> None:
    space, index = built
    _, q = _data(space)
    ids, scores = index.search_filtered(q, K, None, np.zeros(N, dtype=bool))
    assert ids.shape == (len(q), K) and (ids == -1).all() and np.isnan(scores).all()
    ids, scores = index.search_filtered(q, 0, None, np.ones(N, dtype=bool))
    assert ids.shape == (len(q), 0) and scores.shape == (len(q), 0)
    with pytest.raises(ValueError, match="allowed"):
        index.search_filtered(q, K, N, np.ones(N - 1, dtype=bool))  # row N - 1 is not covered
    with pytest.raises(ValueError, match="bool"):
        index.search_filtered(q, K, N, np.ones(N, dtype=np.int64))  # an index array, not a mask


def test_a_filter_stays_with_its_request(built: tuple[str, ChromaIndex]) -> None:
    """After filtered searches, an unfiltered one at ef = N is the brute force over every row again."""
    space, index = built
    x, q = _data(space)
    index.search_filtered(q, K, N, _mask(MASKS["five_percent"], seed=3))
    ids, _ = index.search(q, K, N)
    assert [set(r) for r in ids.tolist()] == [set(r) for r in brute_force(x, q, K, space).tolist()]


def test_in_graph_filtering_fills_k_at_a_low_ef() -> None:
    """A default graph over 3,000 clustered points, 2% of them passing, at ef 10: hnswlib's filtered layer-0
    search keeps walking until it holds max(ef, k) passing points, so every query gets k of them, mostly the
    right ones; the unfiltered answer at the same ef holds few passing points, all a post-filter would keep."""
    x, q = clustered_data(n=3000, q=50, seed=5)
    rng = np.random.default_rng(3)
    allowed = np.zeros(len(x), dtype=bool)
    allowed[rng.choice(len(x), 60, replace=False)] = True
    index = new_index(NAME, x.shape[1], "ip", params={}, seed=0)
    try:
        index.build(x, rng.permutation(len(x)))
        assert isinstance(index, FilteredSearch)
        ids, _ = index.search_filtered(q, K, 10, allowed)
        plain, _ = index.search(q, K, 10)
    finally:
        index.close()
    assert (ids >= 0).all() and allowed[ids].all()
    rows = np.flatnonzero(allowed)
    truth = rows[brute_force(x[rows], q, K, "ip")]
    recall = np.mean([len(set(a) & set(b)) / K for a, b in zip(ids.tolist(), truth.tolist(), strict=True)])
    assert recall > 0.95, recall  # 0.99 to 0.996 measured over builds
    assert allowed[plain].sum(axis=1).mean() < 1  # 0.12 to 0.16 measured


def test_a_mask_beyond_sqlites_variable_limit() -> None:
    """34,286 passing rows, more than the 32,766 variables SQLite binds: a `where` `$in` on a metadata field
    would fail there (module doc); the id filter answers, passing ids only, most of them the right ones."""
    n = 40_000
    x = np.random.default_rng(0).standard_normal((n, 8)).astype(np.float32)
    q = x[:5] + 0.01
    allowed = np.ones(n, dtype=bool)
    allowed[::7] = False
    assert allowed.sum() > 32_766
    index = new_index(NAME, 8, "l2", params={"M": 8, "ef_construction": 16}, seed=0)
    assert isinstance(index, ChromaIndex)
    try:
        index.build(x, np.arange(n))
        ids, scores = index.search_filtered(q, K, None, allowed)
    finally:
        index.close()
    assert (ids >= 0).all() and allowed[ids].all() and not np.isnan(scores).any()
    rows = np.flatnonzero(allowed)
    truth = rows[brute_force(x[rows], q, K, "l2")]
    assert np.mean([len(set(a) & set(b)) / K for a, b in zip(ids.tolist(), truth.tolist(), strict=True)]) > 0.9


def test_the_declaration() -> None:
    assert BACKENDS[NAME].capabilities.filtering == "in_graph"
    assert issubclass(ChromaIndex, FilteredSearch)
