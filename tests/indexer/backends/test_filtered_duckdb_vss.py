"""duckdb_vss's filtered search: a WHERE on the row id in the search statement, which DuckDB pushes into the
table scan and vss applies above its HNSW index scan of the k nearest (post-filtering, never widened).

At exhaustive settings (a dense graph, ef = N: the scan returns the exact k nearest) a query's answer is the
passing rows among its exact k nearest: numpy brute force over the passing rows, cut to how many of them are
among the k nearest of all. At any ef it is exactly the passing rows of the unfiltered answer. The plan keeps
the HNSW_INDEX_SCAN under the mask's FILTER; an `id IN (...)` list, which DuckDB turns into a join, loses the
index and scans every row exactly instead.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest

from indexer.backends import BACKENDS
from indexer.backends.base import FilteredSearch
from indexer.backends.duckdb_vss import MASK_VARIABLE, DuckdbVssIndex  # imports neither duckdb nor vss
from tests.indexer.backends.filtered_kit import check_filtered, dense_index
from tests.indexer.backends.test_filtered_search import MASKS, K, N, _data, _mask, _scores

pytest.importorskip("duckdb")
pytest.importorskip("pyarrow")
pytest.importorskip("duckdb_extension_vss")

NAME = "duckdb_vss"
DENSE = {"M": 32, "ef_construction": 500}  # over 500 points: the exact k nearest at ef = N


@pytest.fixture(scope="module", params=["ip", "l2"])
def built(request: pytest.FixtureRequest) -> Iterator[tuple[str, DuckdbVssIndex]]:
    """One dense index per space, over the points in a shuffled order (so ids must be mapped back)."""
    with dense_index(NAME, DENSE, request.param) as index:
        assert isinstance(index, DuckdbVssIndex)
        yield request.param, index


@pytest.mark.parametrize("mask", list(MASKS))
def test_exhaustive_filtered_answer_is_the_brute_force_one(built: tuple[str, DuckdbVssIndex], mask: str) -> None:
    """The passing rows among the exact k nearest: the first of the brute-force answer over the passing rows,
    as many as pass among the k nearest of all (fewer than k: vss does not widen its scan)."""
    space, index = built
    x, q = _data(space)
    allowed = _mask(MASKS[mask], seed=len(mask))
    ids, scores = index.search_filtered(q, K, N, allowed)
    sign = -1.0 if space == "ip" else 1.0
    nearest = np.argsort(sign * _scores(x, q, space), axis=1, kind="stable")[:, :K]
    expected = allowed[nearest].sum(axis=1)
    check_filtered(space, allowed, ids, scores, expected)
    if mask == "half":
        assert (expected < K).all()  # short, as a post-filter over k is


def test_the_plan_filters_above_the_hnsw_index_scan(built: tuple[str, DuckdbVssIndex]) -> None:
    space, index = built
    plan = index.plan(_data(space)[1][0], K, _mask(MASKS["half"], seed=1))
    assert "HNSW_INDEX_SCAN" in plan and "get_bit" in plan, plan
    assert plan.index("FILTER") < plan.index("get_bit") < plan.index("HNSW_INDEX_SCAN"), plan
    assert "TOP_N" not in plan, plan


def test_at_any_ef_the_answer_is_the_passing_part_of_the_unfiltered_one(built: tuple[str, DuckdbVssIndex]) -> None:
    """The same HNSW scan (k rows at ef) as the unfiltered search, its rows the mask drops removed; the mask is
    gone after the search (the variable reset), and unfiltered searches are unchanged."""
    space, index = built
    _, q = _data(space)
    allowed = _mask(MASKS["half"], seed=4)
    for ef in (None, 10):
        plain, _ = index.search(q, K, ef)
        ids, _ = index.search_filtered(q, K, ef, allowed)
        for i in range(len(q)):
            kept = [c for c in plain[i] if allowed[c]]
            assert ids[i].tolist() == kept + [-1] * (K - len(kept))
        np.testing.assert_array_equal(index.search(q, K, ef)[0], plain)
    assert index._con.execute(f"SELECT getvariable('{MASK_VARIABLE}')").fetchone() == (None,)


def test_an_in_list_loses_the_index(built: tuple[str, DuckdbVssIndex]) -> None:
    """The module doc's other form: `id IN (...)` becomes a join, the plan has no HNSW_INDEX_SCAN, and the
    answer is the exact brute force over the passing rows, k of them."""
    space, index = built
    x, q = _data(space)
    allowed = _mask(MASKS["five_percent"], seed=5)
    rows = np.flatnonzero(allowed[:N])
    sql = index._sql.replace(" FROM t ", f" FROM t WHERE id IN ({', '.join(map(str, rows))}) ") + str(K)
    plan = "\n".join(str(r[1]) for r in index._con.execute("EXPLAIN " + sql, [q[0].tolist()]).fetchall())
    assert "HNSW_INDEX_SCAN" not in plan and "SEQ_SCAN" in plan, plan
    got = index._con.execute(sql, [q[0].tolist()]).fetchnumpy()["id"]
    sign = -1.0 if space == "ip" else 1.0
    assert set(got.tolist()) == set(rows[np.argsort(sign * _scores(x, q, space)[0, rows])[:K]].tolist())


def test_the_empty_mask_and_a_wrong_mask(built: tuple[str, DuckdbVssIndex]) -> None:
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
    assert issubclass(DuckdbVssIndex, FilteredSearch)
