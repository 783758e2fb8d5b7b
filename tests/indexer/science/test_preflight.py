"""The pre-flight checks, each against an independent computation (numpy brute force, python sets) on
small arrays with the trap planted: duplicates, near-duplicates, zero and unnormalised vectors, tied k-th
scores, queries copied from the base, a corrupted ground truth."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from indexer.common.errors import DataError
from indexer.science import preflight as pf
from indexer.science.groundtruth import exact_knn


def _gaussian(n: int, d: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, d)).astype(np.float32)


def _groups_of_equal_rows(x: np.ndarray) -> list[set[int]]:
    """Independent: rows grouped by their values as python tuples (-0.0 == 0.0 as floats)."""
    groups: dict[tuple[float, ...], set[int]] = {}
    for i, row in enumerate(x.tolist()):
        groups.setdefault(tuple(v + 0.0 for v in row), set()).add(i)
    return [g for g in groups.values() if len(g) >= 2]


def _components(pairs: set[tuple[int, int]]) -> list[set[int]]:
    """Independent: connected groups of pairs by repeated merging."""
    groups: list[set[int]] = []
    for a, b in pairs:
        touching = [g for g in groups if a in g or b in g]
        merged = {a, b}.union(*touching)
        groups = [g for g in groups if g not in touching] + [merged]
    return groups


@pytest.fixture
def small_blocks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Blocks of a few rows, so every blocked loop runs many times."""
    monkeypatch.setattr(pf, "_BLOCK_ELEMENTS", 64)


# ------------------------------------------------------------------------------------------ vectors


@pytest.mark.parametrize("blocks", [False, True])
def test_vector_check_counts_zero_and_unnormalised_rows(blocks: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    if blocks:
        monkeypatch.setattr(pf, "_BLOCK_ELEMENTS", 48)
    x = _gaussian(300, 12, 0)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    x[[3, 50, 299]] = 0.0
    x[[7, 8]] *= 4.0
    x[9] *= 1.0005  # within NORM_TOL of unit length
    x[10] *= 0.5
    got = pf.vector_check(x)
    norms = [float(np.sqrt(sum(float(v) ** 2 for v in row))) for row in x]
    assert got.n == 300
    assert got.zero == sum(1 for n in norms if n == 0) == 3
    assert got.not_unit == sum(1 for n in norms if n > 0 and abs(n - 1) > 1e-3) == 3
    assert got.norm_min == pytest.approx(min(norms)) and got.norm_min == 0.0
    assert got.norm_max == pytest.approx(max(norms), rel=1e-6)


def test_nonfinite_vectors_stop_with_a_data_error() -> None:
    base, queries = _gaussian(50, 4, 0), _gaussian(5, 4, 1)
    pf.require_finite(base, queries, "clean")
    base[[4, 9]] = np.nan
    queries[2, 1] = np.inf
    with pytest.raises(DataError, match=r"space x: 2 base vectors and 1 queries hold NaN or inf"):
        pf.require_finite(base, queries, "space x")
    with pytest.raises(DataError, match="NaN or inf"):
        pf.preflight(base=base, queries=queries, k=3, metric="l2", gt_base=base, gt_queries=queries,
                     gt_ids=np.zeros((5, 3), dtype=np.int64), gt_scores=np.zeros((5, 3)))


# ------------------------------------------------------------------------------------- duplicates


def _planted_duplicates() -> np.ndarray:
    x = _gaussian(400, 6, 2)
    x[[10, 20, 30, 40]] = x[5]  # a group of five
    x[[101, 202]] = x[100]  # a group of three
    x[301] = x[300]  # a pair
    x[350] = 0.0
    x[351] = -0.0  # equal values, different bytes
    x[352] = x[353]
    x[352, 0] = np.nextafter(x[353, 0], np.float32(np.inf))  # one ulp apart: not a duplicate
    return x


@pytest.mark.parametrize("blocks", [False, True])
def test_exact_duplicates_match_python_grouping(blocks: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    if blocks:
        monkeypatch.setattr(pf, "_BLOCK_ELEMENTS", 64)
    x = _planted_duplicates()
    want = _groups_of_equal_rows(x)
    got = pf.exact_duplicates(x)
    assert got.groups == len(want) == 4
    assert got.rows == sum(len(g) for g in want) == 12
    assert got.largest == max(len(g) for g in want) == 5
    assert got.example == sorted(max(want, key=len)) == [5, 10, 20, 30, 40]


def test_exact_duplicates_are_verified_when_hashes_collide() -> None:
    x = _planted_duplicates()
    want = _groups_of_equal_rows(x)
    # every row given the same hash: the grouping must come from the values alone
    got = pf.exact_duplicates(x, hashes=np.zeros(len(x), dtype=np.uint64))
    assert (got.groups, got.rows, got.largest) == (len(want), sum(len(g) for g in want), 5)
    assert got.example == [5, 10, 20, 30, 40]


def test_exact_duplicates_name_dataset_ids_and_find_none_in_distinct_rows() -> None:
    x = _planted_duplicates()
    ids = np.arange(len(x)) * 3 + 7
    assert pf.exact_duplicates(x, ids=ids).example == [int(i) * 3 + 7 for i in (5, 10, 20, 30, 40)]
    clean = pf.exact_duplicates(_gaussian(500, 8, 3))
    assert (clean.groups, clean.rows, clean.largest, clean.example) == (0, 0, 0, [])


def test_queries_copied_from_the_base_are_counted() -> None:
    base = _planted_duplicates()
    queries = _gaussian(40, 6, 4)
    queries[[0, 7, 8]] = base[[12, 5, 300]]
    queries[9] = base[351]  # -0.0 row: equal by value to base rows 350 and 351
    queries[10] = base[353] + np.float32(1e-3)  # close, not equal
    want = sum(1 for q in queries.tolist() if any(q == b for b in base.tolist()))
    assert pf.queries_in_base(base, queries) == want == 4


def test_near_duplicates_match_brute_force_pairs(small_blocks: None) -> None:
    rng = np.random.default_rng(5)
    x = rng.standard_normal((300, 8)).astype(np.float32)
    for a, b in [(1, 2), (3, 4), (4, 5), (10, 11)]:  # 3-4-5 chain into a group of three
        x[b] = x[a] + rng.normal(0, 1e-3, 8).astype(np.float32)
    x[20] = x[21]  # an exact duplicate is not a near one
    got = pf.near_duplicates(x, sample=1_000, depth=10)
    # independent: every pair's float64 distance, the median nearest unequal distance as the scale
    d = np.sqrt(((x[:, None, :].astype(np.float64) - x[None, :, :]) ** 2).sum(axis=2))
    nearest = np.where(d > 0, d, np.inf).min(axis=1)
    typical = float(np.median(nearest))
    pairs = {(i, j) for i, j in itertools.combinations(range(len(x)), 2) if 0 < d[i, j] <= 0.05 * typical}
    groups = _components(pairs)
    assert got.sample == 300 and got.depth == 10
    assert got.typical_distance == pytest.approx(typical, rel=1e-6)
    assert got.threshold == pytest.approx(0.05 * typical, rel=1e-6)
    assert got.pairs == len(pairs) == 5  # 3-4, 4-5 and 3-5
    assert got.points == len(set(itertools.chain.from_iterable(pairs))) == 7
    assert got.groups == len(groups) == 3
    assert got.largest == max(len(g) for g in groups) == 3
    assert got.example == [3, 4, 5]


def test_near_duplicates_sample_is_stated_and_bounded() -> None:
    x = _gaussian(3_000, 8, 6)
    x[1] = x[0] + np.float32(1e-4)
    got = pf.near_duplicates(x, sample=500, seed=1)
    assert got.sample == 500
    assert got.points <= 500 and got.pairs <= 500 * got.depth
    assert pf.near_duplicates(x, sample=500, seed=1) == got  # seeded


# ------------------------------------------------------------------------------------------- ties


def _brute_scores(base: np.ndarray, queries: np.ndarray, metric: str) -> np.ndarray:
    """Independent: every score in float64, best first (inner product descending, squared L2 ascending)."""
    b, q = base.astype(np.float64), queries.astype(np.float64)
    if metric == "ip":
        return -np.sort(-(q @ b.T), axis=1)
    return np.sort(((q[:, None, :] - b[None, :, :]) ** 2).sum(axis=2), axis=1)


@pytest.mark.parametrize("metric", ["ip", "l2"])
def test_tied_kth_scores_match_brute_force(metric: str) -> None:
    k = 5
    base = _gaussian(400, 16, 7)
    queries = _gaussian(30, 16, 8)
    # plant: a copy of the k-th neighbour of queries 0, 4 and 9 ties the k-th and (k+1)-th scores
    order = _brute_order(base, queries, metric)
    copies = base[order[[0, 4, 9], k - 1]]
    base = np.concatenate([base, copies])
    scores = _brute_scores(base, queries, metric)
    gap = np.abs(scores[:, k - 1] - scores[:, k])
    # equal rows score equal up to BLAS rounding; a copy may also land in another query's top k (counted)
    want = int((gap <= 1e-9).sum())
    assert want >= 2 and not ((gap > 1e-9) & (gap <= 5e-4)).any()  # no near-tie the tolerance must decide
    got = pf.kth_ties(base, queries, k, metric)
    assert (got.sample, got.tied) == (30, want)
    assert pf.kth_ties(base, queries, k, metric, sample=10, seed=2).sample == 10


def _brute_order(base: np.ndarray, queries: np.ndarray, metric: str) -> np.ndarray:
    b, q = base.astype(np.float64), queries.astype(np.float64)
    s = -(q @ b.T) if metric == "ip" else ((q[:, None, :] - b[None, :, :]) ** 2).sum(axis=2)
    return np.argsort(s, axis=1, kind="stable")


# ---------------------------------------------------------------------------------- ground truth


@pytest.mark.parametrize("metric", ["ip", "l2"])
def test_groundtruth_check_finds_exactly_the_corrupted_queries(metric: str, small_blocks: None) -> None:
    k = 6
    base = _gaussian(500, 8, 9)
    queries = _gaussian(40, 8, 10)
    ids, scores = exact_knn(base, queries, k, metric)
    assert pf.check_groundtruth(base, queries, ids, scores, k, metric, sample=100).mismatches == 0
    order = _brute_order(base, queries, metric)
    bad_ids, bad_scores = ids.copy(), scores.copy()
    bad_ids[3, 2] = order[3, -1]  # the farthest point instead of a true neighbour
    bad_ids[11, 4] = bad_ids[11, 0]  # an id repeated
    bad_ids[17, 1] = len(base)  # out of range
    bad_scores[25, 0] += np.float32(0.5) * max(1.0, abs(float(bad_scores[25, 0])))  # a wrong score
    bad_ids[30] = order[30, 1 : k + 1]  # shifted by one: the true first neighbour missing
    bad_scores[30] = _brute_scores(base, queries[30:31], metric)[0, 1 : k + 1]  # with their own true scores
    got = pf.check_groundtruth(base, queries, bad_ids, bad_scores, k, metric, sample=100)
    assert got.sample == 40
    assert got.mismatches == 5 and got.example == [3, 11, 17, 25, 30]
    sampled = pf.check_groundtruth(base, queries, bad_ids, bad_scores, k, metric, sample=20, seed=4)
    assert sampled.sample == 20 and sampled.mismatches == len(set(sampled.example))
    assert set(sampled.example) <= {3, 11, 17, 25, 30}


def test_groundtruth_check_tolerates_ties_and_maps_dataset_ids() -> None:
    k = 4
    base = _gaussian(200, 8, 11)
    queries = _gaussian(20, 8, 12)
    ids, scores = exact_knn(base, queries, k, "l2")
    # a copy of the k-th neighbour of each query whose k-th is in no other query's top k
    planted = [i for i in range(len(queries)) if not np.isin(ids[i, k - 1], np.delete(ids, i, axis=0)).any()]
    assert len(planted) >= 10
    base = np.concatenate([base, base[ids[planted, k - 1]]])
    swapped = ids.copy()
    swapped[planted, k - 1] = 200 + np.arange(len(planted))  # the copy named: the same score, as correct
    assert pf.check_groundtruth(base, queries, swapped, scores, k, "l2").mismatches == 0
    # the table in dataset ids, the base holding only some rows of the dataset (sorted ids)
    rows = np.arange(len(base)) * 2 + 100
    assert pf.check_groundtruth(base, queries, rows[swapped], scores, k, "l2", ids=rows).mismatches == 0
    assert pf.check_groundtruth(base, queries, swapped, scores, k, "l2", ids=rows).mismatches == 20


# ---------------------------------------------------------------------------------- the pre-flight


def test_preflight_warns_on_each_planted_trap() -> None:
    k = 5
    base = _gaussian(600, 16, 13)
    base[[1, 2]] = base[0]
    base[3] = 0.0
    queries = _gaussian(30, 16, 14)
    queries[4] = base[100]
    queries[5] = 0.0
    ids, scores = exact_knn(base, queries, k, "ip")
    pre = pf.preflight(base=base, queries=queries, k=k, metric="ip", gt_base=base, gt_queries=queries,
                       gt_ids=ids, gt_scores=scores)
    assert pre.duplicates.groups == 1 and pre.duplicates.largest == 3
    assert pre.queries_in_base == 2  # query 4, and the zero query equals the zero base row
    assert pre.base.zero == 1 and pre.queries.zero == 1
    assert pre.base.not_unit == 599
    assert pre.groundtruth.mismatches == 0 and pre.groundtruth_within is None
    assert pre.ties.tied >= 1  # the zero query ties with every base point
    text = "\n".join(pre.warnings)
    for expected in ("Exact duplicates: 1 group of equal base vectors (3 rows, the largest 3)",
                     "Zero vectors: 1 in the base", "Zero queries: 1;",
                     "Not unit length: 599 of 600 (99.8%) base vectors", "under metric ip",
                     "Queries in the base: 2 of 30 (6.7%) queries", "exact scores tied"):
        assert expected in text
    assert pf.Preflight.model_validate_json(pre.model_dump_json()) == pre


def test_preflight_of_clean_data_warns_of_nothing() -> None:
    base = _gaussian(800, 24, 15)
    base /= np.linalg.norm(base, axis=1, keepdims=True)
    queries = _gaussian(50, 24, 16)
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    ids, scores = exact_knn(base, queries, 10, "cosine")
    pre = pf.preflight(base=base, queries=queries, k=10, metric="cosine", gt_base=base, gt_queries=queries,
                       gt_ids=ids, gt_scores=scores)
    assert pre.warnings == []
    assert (pre.base.not_unit, pre.base.zero, pre.duplicates.groups, pre.near_duplicates.points) == (0, 0, 0, 0)
    assert pre.ties.sample == 50 and pre.groundtruth.sample == 50


def test_preflight_reports_a_corrupted_groundtruth() -> None:
    base, queries = _gaussian(300, 8, 17), _gaussian(20, 8, 18)
    ids, scores = exact_knn(base, queries, 3, "l2")
    ids[7] = ids[7, ::-1] + 1  # other points entirely
    pre = pf.preflight(base=base, queries=queries, k=3, metric="l2", gt_base=base, gt_queries=queries,
                       gt_ids=ids, gt_scores=scores, within_ids=ids, within_scores=scores)
    assert pre.groundtruth.mismatches == 1 and pre.groundtruth.example == [7]
    assert pre.groundtruth_within is not None and pre.groundtruth_within.mismatches == 1
    assert any("the ground truth disagrees with float64 brute force for 1 of 20" in w for w in pre.warnings)
