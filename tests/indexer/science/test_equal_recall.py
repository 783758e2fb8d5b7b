"""The smallest ef for a target recall, against a linear scan over every ef, on synthetic curves and
on a real hnswlib index; and faiss's distance counter behind FaissHnswIndex."""

from __future__ import annotations

import bisect
import math
from collections.abc import Callable

import faiss
import hnswlib
import numpy as np
import pytest

from indexer.backends.faiss_hnsw import FaissHnswIndex
from indexer.science.equal_recall import EfSearch, ef_for_targets, smallest_ef


def _linear(recall_at: Callable[[int], float], target: float, lo: int, hi: int) -> int | None:
    """The reference: the first ef from lo to hi whose recall reaches the target."""
    return next((ef for ef in range(lo, hi + 1) if recall_at(ef) >= target), None)


class _Counted:
    """A recall curve that counts how often each ef is asked for."""

    def __init__(self, f: Callable[[int], float]) -> None:
        self.f = f
        self.calls: list[int] = []

    def __call__(self, ef: int) -> float:
        self.calls.append(ef)
        return self.f(ef)


def _steps(seed: int, lo: int, hi: int) -> tuple[Callable[[int], float], list[float]]:
    """A non-decreasing step curve over [lo, hi] and the recall on each of its steps."""
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 12))
    at = sorted(int(a) for a in rng.choice(np.arange(lo + 1, hi + 1), size=n, replace=False))
    levels = np.sort(rng.uniform(0.3, 1.0, size=n + 1)).tolist()

    def f(ef: int) -> float:
        return float(levels[bisect.bisect_right(at, ef)])

    return f, levels


def _bound(lo: int, hi: int) -> int:
    """Measurements doubling+bisection may take: the doubling grid from lo to hi, then bisection of a
    bracket no wider than hi / 2."""
    return math.ceil(math.log2(hi / lo)) + 1 + max(0, math.ceil(math.log2(hi / 2)))


# ---- synthetic monotone curves -----------------------------------------------------------------


@pytest.mark.parametrize("seed", range(40))
@pytest.mark.parametrize(("lo", "hi"), [(1, 4096), (10, 4096), (10, 200), (7, 7), (3, 40)])
def test_monotone_steps_match_the_linear_scan(seed, lo, hi):
    f, levels = _steps(seed, lo, hi) if hi > lo else ((lambda ef: 0.5), [0.5])
    between = [(a + b) / 2 for a, b in zip(levels, levels[1:], strict=False)]
    targets = [*levels, *between, levels[0] - 0.1, 0.0]
    for t in targets:
        got = smallest_ef(f, t, lo=lo, hi=hi)
        assert got.ef == _linear(f, t, lo, hi), t
        assert got.recall == f(got.ef)
        assert 1 <= got.evaluations <= _bound(lo, hi)


def test_a_target_never_reached_is_none():
    curve = _Counted(lambda ef: min(0.98, ef / 100))
    got = smallest_ef(curve, 0.99, lo=10, hi=4096)
    assert got == EfSearch(ef=None, recall=None, evaluations=got.evaluations)
    assert curve.calls[-1] == 4096 and max(curve.calls) == 4096  # the largest allowed ef was measured
    # a target above every recall at all, and a hi that doubling does not land on
    assert smallest_ef(lambda ef: 0.5, 1.0, lo=3, hi=100).ef is None
    assert smallest_ef(lambda ef: float("nan"), 0.5, lo=3, hi=100).ef is None  # a NaN recall reaches nothing
    with pytest.raises(ValueError):
        smallest_ef(lambda ef: 0.5, float("nan"), lo=3, hi=100)


def test_reached_at_lo_takes_one_evaluation():
    assert smallest_ef(lambda ef: 0.95, 0.95, lo=10, hi=4096) == EfSearch(ef=10, recall=0.95, evaluations=1)


def test_reached_only_at_hi_when_hi_is_not_a_doubling_point():
    f = lambda ef: 1.0 if ef >= 1000 else 0.5  # noqa: E731
    assert smallest_ef(f, 0.99, lo=10, hi=1000).ef == 1000
    assert smallest_ef(f, 0.99, lo=10, hi=999).ef is None


@pytest.mark.parametrize("answer", [1, 2, 3, 17, 1000, 2049, 3000, 4095, 4096])
def test_evaluations_are_logarithmic_not_linear(answer):
    """Each ef measured once, at most 2*log2(4096) of them where the linear scan measures `answer`."""
    curve = _Counted(lambda ef: 0.99 if ef >= answer else 0.5)
    got = smallest_ef(curve, 0.99, lo=1, hi=4096)
    assert got.ef == answer
    assert got.evaluations == len(curve.calls) == len(set(curve.calls)) <= _bound(1, 4096) == 2 * 12
    assert answer < 100 or got.evaluations < answer / 40


@pytest.mark.parametrize("bad", [(0, 10), (5, 4), (-1, 3)])
def test_bounds_are_checked(bad):
    lo, hi = bad
    with pytest.raises(ValueError):
        smallest_ef(lambda ef: 1.0, 0.9, lo=lo, hi=hi)
    with pytest.raises(ValueError):
        ef_for_targets(lambda ef: 1.0, [0.9], lo=lo, hi=hi)


@pytest.mark.parametrize("seed", range(20))
def test_targets_share_one_memo_and_agree_with_separate_searches(seed):
    f, levels = _steps(seed, 10, 4096)
    targets = [0.99, 0.9, 0.95, *levels[1:3]]
    curve = _Counted(f)
    got = ef_for_targets(curve, targets, lo=10, hi=4096)
    assert list(got) == sorted(set(targets))
    assert len(curve.calls) == len(set(curve.calls))  # no ef measured twice
    assert sum(s.evaluations for s in got.values()) == len(curve.calls)
    separate = {t: smallest_ef(f, t, lo=10, hi=4096) for t in got}
    assert {t: (s.ef, s.recall) for t, s in got.items()} == {t: (s.ef, s.recall) for t, s in separate.items()}
    assert len(curve.calls) <= sum(s.evaluations for s in separate.values())


def test_default_targets():
    got = ef_for_targets(lambda ef: min(1.0, ef / 200), lo=10)
    assert {t: s.ef for t, s in got.items()} == {0.9: 180, 0.95: 190, 0.99: 198}


@pytest.mark.parametrize("seed", range(30))
def test_on_a_curve_that_dips_the_answer_is_a_local_crossing(seed):
    """Not monotone: the found ef reaches the target, ef - 1 does not, and the scan's ef is no larger."""
    rng = np.random.default_rng(seed)
    values = np.clip(np.linspace(0.5, 1.0, 300) + rng.normal(0, 0.03, 300), 0, 1)
    f = lambda ef: float(values[ef - 1])  # noqa: E731
    for t in (0.8, 0.9, 0.95, 0.99):
        got = smallest_ef(f, t, lo=1, hi=300)
        scan = _linear(f, t, 1, 300)
        if got.ef is None:
            assert f(300) < t
            continue
        assert f(got.ef) >= t and (got.ef == 1 or f(got.ef - 1) < t)
        assert scan is not None and scan <= got.ef


# ---- a real hnswlib index -----------------------------------------------------------------------

K, LO, HI = 10, 10, 256
GROUPS = 10  # ten cells of 20 queries besides the whole set: more curves to compare on one index


def _unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def _clustered(seed: int, n: int, q: int, d: int = 16) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centers = _unit(rng.standard_normal((20, d)))

    def draw(m: int) -> np.ndarray:
        return _unit(centers[rng.integers(0, 20, m)] + 0.35 * rng.standard_normal((m, d)))

    return draw(n), draw(q)


@pytest.fixture(scope="module")
def real():
    """hnswlib over 2,000 clustered unit vectors, its exact top-k by numpy, and the hits of every
    query at every ef from LO to HI (the linear scan, done once)."""
    x, q = _clustered(0, 2000, 200)
    truth = np.argsort(-(q @ x.T), axis=1, kind="stable")[:, :K]
    index = hnswlib.Index(space="ip", dim=x.shape[1])
    index.init_index(max_elements=len(x), M=8, ef_construction=32, random_seed=0)
    index.add_items(x, np.arange(len(x)), num_threads=1)

    def hits(rows: np.ndarray, ef: int) -> np.ndarray:
        index.set_ef(ef)
        labels, _ = index.knn_query(q[rows], k=K, num_threads=2)
        return (labels[:, :, None] == truth[rows][:, None, :]).any(axis=2).sum(axis=1)

    every = np.arange(len(q))
    scanned = np.stack([hits(every, ef) for ef in range(LO, HI + 1)])  # (ef, query)
    return hits, scanned


def test_real_index_matches_the_linear_scan(real, record_property):
    hits, scanned = real
    cells = [np.arange(scanned.shape[1]), *np.array_split(np.arange(scanned.shape[1]), GROUPS)]
    differ = []
    for rows in cells:
        total = len(rows) * K
        curve = scanned[:, rows].sum(axis=1) / total  # recall at ef = LO + i
        monotone = bool(np.all(np.diff(curve) >= 0))

        def recall_at(ef: int, rows=rows, total=total) -> float:
            return int(hits(rows, ef).sum()) / total

        found = ef_for_targets(recall_at, [0.9, 0.95, 0.99], lo=LO, hi=HI)
        for t, s in found.items():
            scan = next((LO + i for i, r in enumerate(curve) if r >= t), None)
            assert s.ef is not None and scan is not None  # every cell reaches 0.99 by ef=256
            assert s.recall == recall_at(s.ef) == curve[s.ef - LO] >= t  # search is deterministic
            assert scan <= s.ef
            if monotone:
                assert scan == s.ef
            if scan != s.ef:
                differ.append((t, scan, s.ef))
            assert s.evaluations <= _bound(LO, HI)
    record_property("searches", len(cells) * 3)
    record_property("differ_from_linear_scan", differ)


# ---- faiss's distance counter -------------------------------------------------------------------


@pytest.fixture(scope="module")
def faiss_index():
    x, q = _clustered(1, 2000, 100)
    index = FaissHnswIndex(x.shape[1], "ip", M=8, ef_construction=32, seed=0)
    index.build(x, np.arange(len(x)))
    return index, q


def test_distance_computations_grow_with_ef_and_repeat(faiss_index):
    index, q = faiss_index
    counts = [index.distance_computations(q, K, ef) for ef in (10, 20, 40, 80, 160)]
    assert all(a < b for a, b in zip(counts, counts[1:], strict=False)), counts
    assert counts[0] > K  # a search computes more distances than it returns
    assert index.distance_computations(q, K, 40) == counts[2]
    # per query: one query's count is its own, not the batch's
    one = [index.distance_computations(q[i : i + 1], K, 40) for i in range(len(q))]
    assert sum(one) / len(q) == pytest.approx(counts[2])


def test_distance_computations_restore_the_thread_count(faiss_index):
    index, q = faiss_index
    before = faiss.omp_get_max_threads()
    try:
        faiss.omp_set_num_threads(3)
        index.distance_computations(q, K, 40)
        assert faiss.omp_get_max_threads() == 3
    finally:
        faiss.omp_set_num_threads(before)


def test_distance_computations_need_queries(faiss_index):
    index, q = faiss_index
    with pytest.raises(ValueError):
        index.distance_computations(q[:0], K, 40)
