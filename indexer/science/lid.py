"""Pointwise Local Intrinsic Dimensionality (LID) by maximum likelihood, from kNN distances.

The estimator is the Hill / Levina-Bickel MLE in the form Amsaleg et al. (2015) use and VIBE
reports as lid10/lid100:

    LID(x) = -( (1/k) * sum_{i=1..k} ln(d_i / d_k) )^{-1}

with d_1 <= ... <= d_k the Euclidean (not squared) distances from x to its k nearest neighbours,
x itself excluded. scikit-dimension's `skdim.id.MLE` (no noise model) computes the same sum but
divides by k-1 instead of k (k-2 with `unbiased=True`), so on the same neighbourhoods
ours = skdim * k / (k - 1).

Degenerate neighbourhoods are handled deliberately, never by crashing or going negative:
- zero distances (duplicates of x) carry no scale information and are left out; the estimate uses
  the m positive distances, with 1/m in place of 1/k;
- fewer than two positive distances: NaN (no information about how mass grows with radius);
- all positive distances equal: +inf (the limit of the MLE as the spread of distances shrinks).
"""

from __future__ import annotations

import logging

import numpy as np

from indexer.science.groundtruth import exact_knn_float64, prepare_vectors, self_knn_float64

log = logging.getLogger(__name__)


def lid_mle(distances: np.ndarray) -> np.ndarray:
    """MLE LID per row of Euclidean kNN distances (n, k); see the module docstring for edge cases.

    Rows need not be sorted (each row's maximum is used as d_k). Distances must be finite and
    non-negative. Returns float64 (n,).
    """
    d = np.asarray(distances, dtype=np.float64)
    if d.ndim != 2:
        raise ValueError(f"distances must be 2-d (points, neighbours), got shape {d.shape}")
    if d.shape[1] == 0:
        return np.full(d.shape[0], np.nan)
    if not np.isfinite(d).all() or (d < 0).any():
        raise ValueError("distances must be finite and non-negative")
    positive = d > 0
    m = positive.sum(axis=1)
    dk = d.max(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        logs = np.where(
            positive, np.log(np.where(positive, d, 1.0) / np.where(dk > 0, dk, 1.0)[:, None]), 0.0
        )
        mean_log = logs.sum(axis=1) / np.maximum(m, 1)  # <= 0: every d_i <= d_k
        lid = np.where(mean_log < 0, -1.0 / mean_log, np.inf)
    lid[m < 2] = np.nan
    return lid


def _euclidean(squared: np.ndarray) -> np.ndarray:
    return np.asarray(np.sqrt(np.maximum(squared, 0.0)))


def pointwise_lid(x: np.ndarray, k: int, metric: str) -> np.ndarray:
    """LID of every row of x from its k nearest other rows.

    Distances are Euclidean on the vectors as the index sees them (`prepare_vectors`): for
    cosine the rows are unit length, where Euclidean distance is a monotone function of cosine
    similarity (|a-b|^2 = 2 - 2cos), so the neighbourhoods are the cosine ones. For "ip" on
    unnormalised vectors inner product is not a distance, so Euclidean kNN is used as well.
    Distances are recomputed exactly (float64), so duplicates are exactly 0 apart.
    """
    xp = prepare_vectors(x, metric)
    _, sq = self_knn_float64(xp, k, "l2")
    lid = lid_mle(_euclidean(sq))
    log.debug(
        "pointwise LID k=%d over %d points: %d NaN, %d inf",
        k,
        len(lid),
        np.isnan(lid).sum(),
        np.isinf(lid).sum(),
    )
    return lid


def query_lid(base: np.ndarray, queries: np.ndarray, k: int, metric: str) -> np.ndarray:
    """LID of each query from the Euclidean distances to its k nearest base points (as `pointwise_lid`)."""
    bp = prepare_vectors(base, metric)
    qp = prepare_vectors(queries, metric)
    _, sq = exact_knn_float64(bp, qp, k, "l2")
    return lid_mle(_euclidean(sq))


def global_lid(pointwise: np.ndarray) -> float:
    """One intrinsic dimension for a whole set from pointwise MLE estimates.

    MacKay & Ghahramani's correction to Levina-Bickel: average the inverse estimates (the MLE is
    unbiased in 1/d, not in d), then invert. NaN and non-positive values are left out.
    """
    v = np.asarray(pointwise, dtype=np.float64)
    v = v[np.isfinite(v) & (v > 0)]
    return float(1.0 / np.mean(1.0 / v)) if v.size else float("nan")


# The kNN graph's HNSW parameters. The build is serial (for reproducibility) and bounds the time at a
# million points, so the graph is a common one and the search, which runs on every core, is generous; the
# report states the resulting error against exact LID on a sample.
APPROXIMATE_M = 16
APPROXIMATE_EF_CONSTRUCTION = 200
APPROXIMATE_EF = 256
APPROXIMATE_KEY = f"hnsw{APPROXIMATE_M}-{APPROXIMATE_EF_CONSTRUCTION}-{APPROXIMATE_EF}"  # names its cache entries


def approximate_pointwise_lid(x: np.ndarray, k: int, metric: str, *, seed: int = 0,
                              threads: int = 1) -> np.ndarray:
    """`pointwise_lid` from an HNSW kNN graph instead of exact all-pairs search: O(n log n) instead of
    O(n^2), for sets too large to self-join. The neighbours' distances are recomputed in float64, so only
    a neighbour HNSW misses (it finds a farther one instead) moves the estimate; `lid_error` measures how
    much on a sample.

    The graph is built on one thread (a threaded build is not reproducible) and searched on `threads`
    (each query's answer does not depend on the others); the distances are recomputed a block of points
    at a time, so memory stays at the graph plus one block."""
    import hnswlib

    n, d = np.shape(x)
    if k + 1 > n:
        raise ValueError(f"k={k} neighbours need at least {k + 1} vectors, got {n}")

    def prepared(rows: slice | np.ndarray) -> np.ndarray:
        """Rows of x as the index sees them, prepared here: row by row the same values as preparing the
        whole set, without a prepared copy of it (a memory map stays a map)."""
        return prepare_vectors(x[rows], metric)

    index = hnswlib.Index(space="l2", dim=d)
    index.init_index(max_elements=n, M=APPROXIMATE_M, ef_construction=APPROXIMATE_EF_CONSTRUCTION, random_seed=seed + 1)
    for start in range(0, n, _BLOCK):  # one thread adds in order: the same graph as one call
        index.add_items(prepared(slice(start, start + _BLOCK)), np.arange(start, min(n, start + _BLOCK)),
                        num_threads=1)
    index.set_ef(max(APPROXIMATE_EF, k + 1))
    out = np.empty(n, dtype=np.float64)
    step = max(1, min(_BLOCK, _DISTANCE_BYTES // (8 * k * d)))
    for start in range(0, n, step):
        block = np.ascontiguousarray(prepared(slice(start, start + step)))
        ids, _ = index.knn_query(block, k=k + 1, num_threads=threads)
        ids = ids.astype(np.int64)
        # drop each point itself (or, for a duplicate found first, the last column), then exact distances
        own = ids == np.arange(start, start + len(block))[:, None]
        keep = np.where(own.any(axis=1, keepdims=True), ~own, np.arange(k + 1)[None, :] < k)
        neighbours = ids[keep]
        # in place from here: one (block, k, d) float64 array
        diff = prepared(neighbours).astype(np.float64).reshape(len(block), k, d)
        diff -= block[:, None, :].astype(np.float64)
        np.square(diff, out=diff)
        out[start:start + len(block)] = lid_mle(_euclidean(np.sort(diff.sum(-1), axis=1)))
    return out


_BLOCK = 16_384  # points added to the graph at once
_DISTANCE_BYTES = 32 << 20  # float64 neighbour differences recomputed at once (k x d x 8 bytes a point)


def lid_error(approximate: np.ndarray, exact: np.ndarray) -> tuple[float, float]:
    """(median absolute relative error, Spearman rank correlation) of approximate against exact LID on the
    same points: how far the estimate moves, and whether the orderings it drives (lid_asc, lid_desc) keep
    their order."""
    from scipy.stats import spearmanr

    a, e = np.asarray(approximate, dtype=np.float64), np.asarray(exact, dtype=np.float64)
    ok = np.isfinite(a) & np.isfinite(e) & (e > 0)
    if ok.sum() < 2:
        return float("nan"), float("nan")
    rel = float(np.median(np.abs(a[ok] - e[ok]) / e[ok]))
    return rel, float(spearmanr(a[ok], e[ok]).statistic)
