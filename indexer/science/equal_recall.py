"""Cost at equal recall: the smallest ef at which a built index reaches each target recall.

Comparing indexes at one fixed ef compares different recalls; comparing them at the ef each needs for
the same recall compares their cost (QPS, distance computations) for the same quality. Scanning every
ef is too slow (one search of all queries per ef), so the ef is found by doubling from `lo` until the
target is reached, then bisection in the last doubling step: about 2*log2(hi/lo) measurements.

Everything here is a pure function over `recall_at(ef)` (the mean recall of a cell's queries at that
ef on one built index), so it serves every backend and needs no index to test.

Bisection assumes recall does not decrease with ef. HNSW recall usually behaves so but is not
guaranteed to (a larger beam can change the path), so the exact guarantee is local: the returned ef
reaches the target, and ef - 1 does not (or ef == lo). On a curve that dips below the target after
first reaching it, a smaller ef outside the last doubling step may also reach it; this search does
not look for it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass

DEFAULT_RECALL_TARGETS: tuple[float, ...] = (0.9, 0.95, 0.99)
DEFAULT_MAX_EF = 4096


@dataclass(frozen=True, kw_only=True)
class EfSearch:
    """The answer for one target: ef is None when recall_at(hi) < target (recall is then None too);
    evaluations counts the ef values measured for this answer (memo hits are free)."""

    ef: int | None
    recall: float | None
    evaluations: int


class _Memo:
    """recall_at with a memory: each ef is measured once, however many targets ask for it."""

    def __init__(self, recall_at: Callable[[int], float]) -> None:
        self._recall_at = recall_at
        self._seen: dict[int, float] = {}

    def __call__(self, ef: int) -> float:
        if ef not in self._seen:
            self._seen[ef] = float(self._recall_at(ef))
        return self._seen[ef]

    @property
    def evaluations(self) -> int:
        return len(self._seen)


def _check(lo: int, hi: int, targets: Iterable[float]) -> None:
    if lo < 1 or hi < lo:
        raise ValueError(f"need 1 <= lo <= hi, got lo={lo} hi={hi}")
    if any(math.isnan(t) for t in targets):
        raise ValueError("a target recall is NaN")


def _search(recall: _Memo, target: float, lo: int, hi: int) -> EfSearch:
    def reached(ef: int) -> bool:
        return recall(ef) >= target  # a NaN recall does not reach any target

    before = recall.evaluations
    bad, good = None, lo
    # Doubling over the fixed grid lo, 2lo, 4lo, ..., hi: the same grid for every target, so a shared
    # memo answers the earlier grid points and each target's answer is independent of the others.
    while not reached(good):
        if good == hi:
            return EfSearch(ef=None, recall=None, evaluations=recall.evaluations - before)
        bad, good = good, min(2 * good, hi)
    if bad is not None:
        # Invariant: bad does not reach the target, good does.
        while good - bad > 1:
            mid = (bad + good) // 2
            if reached(mid):
                good = mid
            else:
                bad = mid
    return EfSearch(ef=good, recall=recall(good), evaluations=recall.evaluations - before)


def smallest_ef(recall_at: Callable[[int], float], target: float, *, lo: int, hi: int) -> EfSearch:
    """The smallest ef in [lo, hi] with recall_at(ef) >= target, by doubling from lo then bisection.

    lo is the spec's k (the backends search an ef below k as k, so it is never the answer);
    hi is the largest ef allowed. Exact when recall_at is non-decreasing; otherwise see the module
    docstring for what the answer still guarantees.
    """
    _check(lo, hi, [target])
    return _search(_Memo(recall_at), target, lo, hi)


def ef_for_targets(
    recall_at: Callable[[int], float],
    targets: Iterable[float] = DEFAULT_RECALL_TARGETS,
    *,
    lo: int,
    hi: int = DEFAULT_MAX_EF,
) -> dict[float, EfSearch]:
    """smallest_ef for every target, measuring each ef once across all of them.

    Targets are searched in ascending order over one memo, so a higher target re-reads the doubling
    grid and the shared bisection prefix of a lower one for free. It does not start from the lower
    target's answer: that would give the same ef on a non-decreasing curve but, on a real curve that
    dips, would make a target's ef depend on which other targets the spec lists. Each answer equals
    smallest_ef's for that target alone; the evaluations of all answers sum to the ef values measured.
    """
    ordered = sorted({float(t) for t in targets})
    _check(lo, hi, ordered)
    recall = _Memo(recall_at)
    return {t: _search(recall, t, lo, hi) for t in ordered}
