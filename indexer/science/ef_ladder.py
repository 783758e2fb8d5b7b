"""How much search each query needs: the smallest ef on a ladder at which a built index answers it with
recall 1.0 against exact kNN, per query (a mean over queries hides the few that need far more).

The ladder doubles from k (k, 2k, 4k, ...) up to a cap: EF_LADDER_CAP, the index size or the backend's
largest ef, whichever is smallest, never below k; the cap itself is the last rung. A query that reaches
1.0 at no rung is `capped`. Pure functions over per-query recall, so they test with small arrays.
"""

from __future__ import annotations

import numpy as np

EF_LADDER_CAP = 1024
FULL = 1.0 - 1e-9  # per-query recall at or above this is 1.0 (recall is a count over k, so no closer value)
NOT_REACHED = 0  # a query's ef where no rung reaches 1.0


def ladder_cap(k: int, n: int, max_ef: int) -> int:
    """The ladder's last ef: min(EF_LADDER_CAP, n, the backend's largest ef), at least k."""
    return max(k, min(EF_LADDER_CAP, n, max_ef))


def ladder(k: int, cap: int) -> list[int]:
    """k, 2k, 4k, ... below `cap`, then `cap`."""
    efs = []
    ef = k
    while ef < cap:
        efs.append(ef)
        ef *= 2
    return [*efs, cap]


def first_full(recall: np.ndarray, efs: list[int]) -> np.ndarray:
    """Per query, the first ef of `efs` whose recall (rungs x queries; NaN: not searched there) is 1.0;
    NOT_REACHED where none is. int64 (queries,)."""
    r = np.asarray(recall, dtype=np.float64)
    if r.shape[0] != len(efs):
        raise ValueError(f"{r.shape[0]} rungs of recall for {len(efs)} ef values")
    full = np.nan_to_num(r, nan=0.0) >= FULL
    reached = full.any(axis=0)
    out = np.where(reached, np.asarray(efs, dtype=np.int64)[np.argmax(full, axis=0)], NOT_REACHED)
    return out.astype(np.int64)


def ef_percentile(first: np.ndarray, q: float) -> int | None:
    """The q-th percentile of the per-query ef (`first_full`), a rung of the ladder (the inverted CDF: the
    smallest ef that q% of the queries reach 1.0 within); None when it falls among the capped queries."""
    f = np.asarray(first, dtype=np.float64)
    if f.size == 0:
        return None
    ranked = np.where(f == NOT_REACHED, np.inf, f)
    value = float(np.percentile(ranked, q, method="inverted_cdf"))
    return int(value) if np.isfinite(value) else None


def capped_share(first: np.ndarray) -> float:
    """The share of queries that reach recall 1.0 at no rung of the ladder."""
    f = np.asarray(first)
    return float(np.mean(f == NOT_REACHED)) if f.size else float("nan")
