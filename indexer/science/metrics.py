"""Recall and its summaries: small pure functions over id and score arrays.

Recall is per query so that reports can break it down (by category, by query LID) and attach a
confidence interval; ties in the exact ranking are tolerated so that an index returning an
equally-near point is not penalised for the arbitrary order of ties in the ground truth.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

# Two-sided 95% normal quantile, for a confidence interval of a mean.
_Z95 = 1.959963984540054


def row_isin(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Boolean (q, m): whether a[i, j] occurs in row b[i]. Integer ids; O(q*(m+n) log n) memory-light."""
    a = np.asarray(a, dtype=np.int64)
    b = np.asarray(b, dtype=np.int64)
    if a.ndim != 2 or b.ndim != 2 or len(a) != len(b):
        raise ValueError(f"row_isin needs 2-d arrays with equal rows, got {a.shape} and {b.shape}")
    q = len(a)
    if q == 0 or a.shape[1] == 0 or b.shape[1] == 0:
        return np.zeros(a.shape, dtype=bool)
    lo = min(int(a.min()), int(b.min()))
    span = max(int(a.max()), int(b.max())) - lo + 1
    # Offset every row into its own integer range so one global sorted search answers all rows.
    offs = np.arange(q, dtype=np.int64)[:, None] * span
    flat_b = np.sort(((b - lo) + offs).ravel())
    flat_a = ((a - lo) + offs).ravel()
    pos = np.searchsorted(flat_b, flat_a)
    pos = np.minimum(pos, len(flat_b) - 1)
    return np.asarray(flat_b[pos] == flat_a, dtype=bool).reshape(a.shape)


def _first_occurrence(ids: np.ndarray) -> np.ndarray:
    """Mask of entries that are the first occurrence of their value in the row."""
    order = np.argsort(ids, axis=1, kind="stable")
    srt = np.take_along_axis(ids, order, axis=1)
    dup_sorted = np.zeros(ids.shape, dtype=bool)
    dup_sorted[:, 1:] = srt[:, 1:] == srt[:, :-1]
    first = np.empty_like(dup_sorted)
    np.put_along_axis(first, order, ~dup_sorted, axis=1)
    return first


def hits_at_k(
    found: np.ndarray,
    truth: np.ndarray,
    k: int,
    found_scores: np.ndarray | None = None,
    truth_scores: np.ndarray | None = None,
    higher_is_better: bool = True,
    rtol: float = 1e-5,
) -> tuple[np.ndarray, np.ndarray]:
    """Which of the first k found ids count as true neighbours, as `recall_at_k` counts them: a boolean
    (q, k) mask (repeats and -1 padding never count), and the number of valid truth ids per query."""
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    found = np.asarray(found)
    truth = np.asarray(truth)
    if found.ndim != 2 or truth.ndim != 2 or len(found) != len(truth):
        raise ValueError(f"found {found.shape} and truth {truth.shape} must be 2-d with equal rows")
    if truth.shape[1] < k:
        raise ValueError(f"truth has {truth.shape[1]} columns; recall@{k} needs at least {k}")
    f = found[:, :k].astype(np.int64)
    t = truth[:, :k].astype(np.int64)
    valid_f = (f >= 0) & _first_occurrence(f)
    valid_t = t >= 0
    hit = valid_f & row_isin(np.where(valid_f, f, -1), np.where(valid_t, t, -2))
    if (found_scores is None) != (truth_scores is None):
        raise ValueError("give both found_scores and truth_scores for tie tolerance, or neither")
    if found_scores is not None and truth_scores is not None:
        fs = np.asarray(found_scores, dtype=np.float64)[:, :k]
        ts = np.asarray(truth_scores, dtype=np.float64)
        if fs.shape != f.shape or ts.shape[0] != len(t) or ts.shape[1] < k:
            raise ValueError(f"scores {fs.shape}/{ts.shape} do not match ids {f.shape}/{t.shape}")
        kth = ts[:, k - 1][:, None]
        tol = rtol * np.abs(kth)
        with np.errstate(invalid="ignore"):  # NaN scores never count
            tied = fs >= kth - tol if higher_is_better else fs <= kth + tol
        hit |= valid_f & tied
    return hit, valid_t.sum(axis=1)


def recall_at_k(
    found: np.ndarray,
    truth: np.ndarray,
    k: int,
    found_scores: np.ndarray | None = None,
    truth_scores: np.ndarray | None = None,
    higher_is_better: bool = True,
    rtol: float = 1e-5,
) -> np.ndarray:
    """Per-query recall@k: |found[:, :k] ∩ truth[:, :k]| / k, ignoring -1 padding.

    With both score arrays, a found id outside the true top-k still counts when its exact score
    is at least as good as the true k-th score (within `rtol` relative): it is a tie, and which
    of several tied points the exact ranking listed is arbitrary. Matches are capped at k.
    `found_scores` must be exact scores of the found ids (same metric as `truth_scores`).
    The denominator is the number of valid truth ids among the first k (k unless the truth
    itself is padded); a query with none gets NaN. Repeated found ids count once.
    """
    hit, denom = hits_at_k(found, truth, k, found_scores, truth_scores, higher_is_better, rtol)
    matches = np.minimum(hit.sum(axis=1), denom)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denom > 0, matches / np.maximum(denom, 1), np.nan).astype(np.float64)


def recall_ids(found: np.ndarray, truth: np.ndarray, k: int) -> np.ndarray:
    """Per-query |found[:, :k] ∩ truth[:, :k]| / k with no tie tolerance: the plain id-set intersection
    VectorDBBench reports. Repeated and padding (-1) ids never count."""
    return recall_at_k(found, truth, k)


ANNB_EPSILON = 1e-3  # ann-benchmarks' `knn_threshold`: the k-th true distance + 1e-3 (plotting/metrics.py)


def annb_distances(scores: np.ndarray, metric: str) -> np.ndarray:
    """Engine scores as ann-benchmarks' distances, whose epsilon is absolute: angular (cosine) is 1 - cos,
    euclidean is the L2 distance (not squared); an inner product, which ann-benchmarks has no metric for,
    is its negative. NaN (padding) stays NaN."""
    s = np.asarray(scores, dtype=np.float64)
    if metric == "cosine":
        return 1.0 - s
    if metric == "l2":
        return np.sqrt(np.maximum(s, 0.0))
    if metric == "ip":
        return -s
    raise ValueError(f"unknown metric {metric!r}")


def recall_annb(found_distances: np.ndarray, truth_distances: np.ndarray, k: int,
                epsilon: float = ANNB_EPSILON) -> np.ndarray:
    """Per-query recall as ann-benchmarks counts it (`get_recall_values`): each of the first k returned
    entries whose distance is at most the k-th true distance + `epsilon` counts, divided by k.

    Faithful to their definition, so it differs from ours on purpose: a repeated id counts each time it
    is returned, and the tolerance is absolute. Padding (NaN or infinite distance) never counts."""
    f = np.asarray(found_distances, dtype=np.float64)[:, :k]
    t = np.asarray(truth_distances, dtype=np.float64)
    if f.ndim != 2 or t.ndim != 2 or len(f) != len(t) or t.shape[1] < k:
        raise ValueError(f"distances {f.shape} and truth {t.shape} do not fit recall@{k}")
    threshold = t[:, k - 1][:, None] + epsilon
    with np.errstate(invalid="ignore"):
        counted = np.isfinite(f) & (f <= threshold)
    return np.asarray(counted.sum(axis=1) / k, dtype=np.float64)


def answer_shape(found: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Per query: (short, duplicated). Short: fewer than k distinct valid ids among the first k (padding
    -1 or a short answer); duplicated: an id returned twice among them."""
    f = np.asarray(found, dtype=np.int64)[:, :k]
    valid = f >= 0
    distinct = (valid & _first_occurrence(f)).sum(axis=1)
    return distinct < k, distinct < valid.sum(axis=1)


def summarize(per_query: np.ndarray) -> dict[str, Any]:
    """Mean, sample std, normal-approximation 95% CI of the mean (clipped to [0, 1]) and n.

    NaN entries (queries without a defined recall) are left out and not counted in n.
    """
    v = np.asarray(per_query, dtype=np.float64).ravel()
    v = v[~np.isnan(v)]
    n = int(v.size)
    if n == 0:
        return {"mean": math.nan, "std": math.nan, "ci95": (math.nan, math.nan), "n": 0}
    mean = float(v.mean())
    std = float(v.std(ddof=1)) if n > 1 else 0.0
    half = _Z95 * std / math.sqrt(n)
    ci = (max(0.0, mean - half), min(1.0, mean + half))
    return {"mean": mean, "std": std, "ci95": ci, "n": n}


def recall_by_group(
    per_query: np.ndarray, groups: np.ndarray, names: list[str] | None = None
) -> dict[str, dict[str, Any]]:
    """Mean recall and query count per group (e.g. category), keyed by the group's name.

    `names[g]` names integer group g; without names (or out of range) the key is str(g).
    NaN recalls are left out of the mean and the count.
    """
    pq = np.asarray(per_query, dtype=np.float64)
    g = np.asarray(groups)
    if pq.shape != g.shape:
        raise ValueError(f"per_query {pq.shape} and groups {g.shape} must have the same shape")
    out: dict[str, dict[str, Any]] = {}
    for value in np.unique(g):
        sel = pq[(g == value) & ~np.isnan(pq)]
        key = str(value)
        if names is not None and np.issubdtype(g.dtype, np.integer) and 0 <= int(value) < len(names):
            key = names[int(value)]
        out[key] = {"mean": float(sel.mean()) if sel.size else math.nan, "n": int(sel.size)}
    return out


def quantile_bins(values: np.ndarray, bins: int) -> tuple[np.ndarray, list[tuple[float, float]]]:
    """Assign each value to one of up to `bins` quantile bins; NaN gets bin -1.

    Edges are quantiles of the non-NaN values (linear interpolation). Repeated edges, from tied
    values, are merged, so fewer bins may come back (a bin may still be empty when an
    interpolated edge falls between data points), and every value lands in exactly one bin:
    bin b holds [lo_b, hi_b), the last [lo, hi]. Infinite values (an LID of inf) fall in the
    outermost bins, whose bounds then are infinite.
    """
    if bins < 1:
        raise ValueError(f"bins must be at least 1, got {bins}")
    v = np.asarray(values, dtype=np.float64).ravel()
    assign = np.full(v.shape, -1, dtype=np.int64)
    ok = ~np.isnan(v)
    if not ok.any():
        return assign, []
    present = v[ok]
    finite = present[np.isfinite(present)]
    if finite.size:
        # Quantiles of the finite values: np.quantile turns inf into NaN edges by interpolation.
        edges = np.quantile(finite, np.linspace(0.0, 1.0, bins + 1))
    else:
        edges = np.array([present.min(), present.max()])
    edges[0] = present.min()
    edges[-1] = present.max()
    edges = np.unique(edges)
    if edges.size == 1:
        edges = np.array([edges[0], edges[0]])
    assign[ok] = np.searchsorted(edges[1:-1], present, side="right")
    ranges = [(float(edges[i]), float(edges[i + 1])) for i in range(len(edges) - 1)]
    return assign, ranges


def recall_by_bins(per_query: np.ndarray, values: np.ndarray, bins: int) -> list[dict[str, Any]]:
    """Mean recall per quantile bin of `values` (e.g. query LID): dicts of bin, lo, hi, recall, n.

    Queries whose value is NaN form an extra entry with bin -1 (and NaN bounds), if any.
    """
    pq = np.asarray(per_query, dtype=np.float64).ravel()
    assign, ranges = quantile_bins(values, bins)
    if assign.shape != pq.shape:
        raise ValueError(f"per_query {pq.shape} and values {assign.shape} must have the same length")
    rows: list[dict[str, Any]] = []
    labelled = [(b, lo, hi) for b, (lo, hi) in enumerate(ranges)]
    if (assign == -1).any():
        labelled.append((-1, math.nan, math.nan))
    for b, lo, hi in labelled:
        sel = pq[(assign == b) & ~np.isnan(pq)]
        rows.append(
            {
                "bin": b,
                "lo": lo,
                "hi": hi,
                "recall": float(sel.mean()) if sel.size else math.nan,
                "n": int(sel.size),
            }
        )
    return rows


HARDEST_SHARE = 0.1  # the hardest tenth of the queries (VIBE's split)


def hardest_queries(contrast: np.ndarray, share: float = HARDEST_SHARE) -> np.ndarray:
    """A mask of the ceil(share x q) queries of lowest relative contrast (ties: the earlier query first; NaN
    contrast ranks last, among the easy)."""
    c = np.asarray(contrast, dtype=np.float64).ravel()
    count = min(len(c), math.ceil(share * len(c) - 1e-9))
    order = np.argsort(np.where(np.isnan(c), np.inf, c), kind="stable")
    mask = np.zeros(len(c), dtype=bool)
    mask[order[:count]] = True
    return mask


def recall_hardest(per_query: np.ndarray, contrast: np.ndarray,
                   share: float = HARDEST_SHARE) -> tuple[float, float]:
    """Mean recall over the hardest `share` of the queries by relative contrast, and over the rest (NaN
    recalls left out; NaN for an empty part)."""
    pq = np.asarray(per_query, dtype=np.float64).ravel()
    hard = hardest_queries(contrast, share)
    if hard.shape != pq.shape:
        raise ValueError(f"per_query {pq.shape} and contrast {hard.shape} must have the same length")

    def mean_of(sel: np.ndarray) -> float:
        v = pq[sel & ~np.isnan(pq)]
        return float(v.mean()) if v.size else math.nan

    return mean_of(hard), mean_of(~hard)
