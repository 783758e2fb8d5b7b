"""Measures of the embedding space: how uniformly it is used (IsoScore) and how hard queries are
(relative contrast), reported next to LID so recall differences can be traced to the data.
"""

from __future__ import annotations

import logging
from typing import Any

import faiss
import numpy as np

from indexer.common.errors import DataError, UserError

log = logging.getLogger(__name__)


def _matrix(x: np.ndarray, what: str) -> np.ndarray:
    arr = np.asarray(x)
    if arr.ndim != 2 or arr.shape[0] == 0:
        raise DataError(f"{what} must be a non-empty 2-D array, got shape {arr.shape}")
    for start in range(0, len(arr), _BLOCK_ROWS):  # a block at a time: no (n, d) mask of a large set
        if not np.all(np.isfinite(arr[start:start + _BLOCK_ROWS])):
            raise DataError(f"{what} holds NaN or infinite values")
    return arr


def _as_metric_space(x: np.ndarray, metric: str) -> np.ndarray:
    """Vectors as the index compares them: unit-normalised for cosine, as given otherwise."""
    x = np.ascontiguousarray(x, dtype=np.float32)
    if metric == "cosine":
        norms = np.linalg.norm(x, axis=1, keepdims=True)
        return np.ascontiguousarray(x / np.where(norms > 0, norms, 1.0), dtype=np.float32)
    if metric in ("l2", "ip"):
        return x
    raise UserError(f"unknown metric {metric!r}; use cosine, ip or l2")


ISOSCORE_DIRECT_ROWS = 200_000  # above this many points, IsoScore reads a blocked covariance (see isoscore)
_BLOCK_ROWS = 65_536


def isoscore(x: np.ndarray) -> float:
    """IsoScore (Rudman et al. 2022) from the authors' package: 1 = isotropic, 0 = one direction.

    For points spread evenly over a k-dimensional subspace of R^d it is (k - 1) / (d - 1).
    IsoScore depends on the points only through their covariance, and the package copies the points
    twice in float64; so above ISOSCORE_DIRECT_ROWS points the covariance is accumulated a block at a
    time and the package is given 2d points with exactly that covariance (same score, d x d memory).
    """
    from IsoScore.IsoScore import IsoScore  # imports torch: keep it off the module's import path

    arr = _matrix(x, "points")
    if arr.shape[0] < 2 or arr.shape[1] < 2:
        raise DataError(f"IsoScore needs at least 2 points in at least 2 dimensions, got {arr.shape}")
    if arr.shape[0] > ISOSCORE_DIRECT_ROWS:
        cov = covariance(arr)
        if not np.any(np.diag(cov) > 0):
            raise DataError("IsoScore is undefined for identical points (zero covariance)")
        return float(IsoScore(cloud_with_covariance(cov)))
    arr = np.asarray(arr, dtype=np.float64)
    if not np.any(arr.var(axis=0) > 0):
        raise DataError("IsoScore is undefined for identical points (zero covariance)")
    return float(IsoScore(arr))


def covariance(x: np.ndarray) -> np.ndarray:
    """The sample covariance (d x d, float64, divided by n - 1) of x's rows, a block of rows at a time."""
    n, d = x.shape
    mean = np.zeros(d)
    for start in range(0, n, _BLOCK_ROWS):
        mean += np.asarray(x[start:start + _BLOCK_ROWS], dtype=np.float64).sum(axis=0)
    mean /= n
    out = np.zeros((d, d))
    for start in range(0, n, _BLOCK_ROWS):
        block = np.asarray(x[start:start + _BLOCK_ROWS], dtype=np.float64) - mean
        out += block.T @ block
    cov: np.ndarray = out / (n - 1)
    return cov


def cloud_with_covariance(cov: np.ndarray) -> np.ndarray:
    """2d points whose sample covariance is `cov`: +-a_i v_i for each eigenpair (lambda_i, v_i), with
    a_i^2 = (2d - 1) lambda_i / 2 (mean zero, so the covariance is sum 2 a_i^2 v_i v_i^T / (2d - 1))."""
    values, vectors = np.linalg.eigh(cov)
    d = len(values)
    scale = np.sqrt(np.clip(values, 0, None) * (2 * d - 1) / 2)
    half = (vectors * scale).T  # row i: a_i v_i
    return np.vstack([half, -half])


def relative_contrast(
    base: np.ndarray,
    queries: np.ndarray,
    k: int,
    metric: str,
    *,
    sample: int = 2000,
    seed: int = 0,
) -> np.ndarray:
    """Per query: mean distance to the base / distance to the k-th nearest neighbour (He et al. 2012).

    Low values (near 1) mean the neighbours barely stand out: hard queries for any ANN index. Distances
    are Euclidean between the vectors as indexed (unit-normalised for cosine; raw for l2 and ip, where
    inner products have no ratio of this kind). The mean is estimated on a seeded sample of the base.
    Returns float64 (q,); inf where the k-th neighbour is at distance 0 (duplicates).
    """
    b = _matrix(base, "base")
    q = _as_metric_space(_matrix(queries, "queries"), metric)
    if b.shape[1] != q.shape[1]:
        raise DataError(f"base has {b.shape[1]} dimensions, queries {q.shape[1]}")
    n = b.shape[0]
    if not 1 <= k <= n:
        raise UserError(f"k must be in 1..{n} (the base size), got {k}")

    # faiss returns squared distances, computed in float32; rounding can make them slightly negative
    kth = np.sqrt(np.clip(_kth_squared_l2(b, q, k, metric).astype(np.float64), 0.0, None))

    rng = np.random.default_rng(seed)
    picked = np.sort(rng.choice(n, size=min(n, sample), replace=False))
    s = _as_metric_space(b[picked], metric).astype(np.float64)
    s_sq = (s**2).sum(axis=1)
    mean_dist = np.empty(q.shape[0])
    for start in range(0, q.shape[0], 1024):
        chunk = q[start : start + 1024].astype(np.float64)
        d2 = (chunk**2).sum(axis=1)[:, None] + s_sq[None, :] - 2.0 * chunk @ s.T
        mean_dist[start : start + chunk.shape[0]] = np.sqrt(np.clip(d2, 0.0, None)).mean(axis=1)

    with np.errstate(divide="ignore"):
        rc = np.where(kth > 0, mean_dist / np.where(kth > 0, kth, 1.0), np.inf)
    zero = int(np.sum(kth == 0))
    if zero:
        log.warning("relative contrast: %d queries have a k-th neighbour at distance 0 (rc = inf)", zero)
    return rc


_SEARCH_BLOCK_BYTES = 64 << 20  # base vectors (float32) brought into the metric space and searched at once


def _kth_squared_l2(base: np.ndarray, queries: np.ndarray, k: int, metric: str) -> np.ndarray:
    """Each query's squared L2 distance to its k-th nearest base vector (in the metric space), over base
    blocks of _SEARCH_BLOCK_BYTES: neither a faiss index holding the base nor a normalised copy of it."""
    rows = max(1, _SEARCH_BLOCK_BYTES // (4 * base.shape[1]))
    best = np.empty((len(queries), 0), dtype=np.float32)
    for start in range(0, len(base), rows):
        block = _as_metric_space(base[start:start + rows], metric)
        dist, _ = faiss.knn(queries, block, min(k, len(block)))
        best = np.hstack([best, dist])
        if best.shape[1] > k:
            best = np.partition(best, k - 1, axis=1)[:, :k]
    return np.sort(best, axis=1)[:, k - 1]


def _stats(values: np.ndarray, prefix: str, with_mean: bool = True) -> dict[str, float]:
    """Median, mean and 10th/90th percentiles of the finite values (LID can be inf on duplicates)."""
    v = np.asarray(values, dtype=np.float64).ravel()
    finite = v[np.isfinite(v)]
    if finite.size < v.size:
        log.info(
            "%s: %d of %d values are not finite and are left out of the summary",
            prefix,
            v.size - finite.size,
            v.size,
        )
    if finite.size == 0:
        nan = float("nan")
        out = {f"{prefix}_median": nan, f"{prefix}_p10": nan, f"{prefix}_p90": nan}
    else:
        p10, med, p90 = np.percentile(finite, [10, 50, 90])
        out = {f"{prefix}_median": float(med), f"{prefix}_p10": float(p10), f"{prefix}_p90": float(p90)}
    if with_mean:
        out[f"{prefix}_mean"] = float(finite.mean()) if finite.size else float("nan")
    return out


def space_summary(
    base: np.ndarray,
    queries: np.ndarray,
    k: int,
    metric: str,
    lid_base: np.ndarray,
    lid_queries: np.ndarray,
    *,
    sample: int = 2000,
    seed: int = 0,
) -> dict[str, Any]:
    """One flat, JSON-ready row describing the space: IsoScore of the base, LID and RC spreads."""
    out: dict[str, Any] = {"isoscore": isoscore(_as_metric_space(_matrix(base, "base"), metric)), "rc_k": k}
    out.update(_stats(lid_base, "lid_base"))
    out.update(_stats(lid_queries, "lid_queries"))
    rc = relative_contrast(base, queries, k, metric, sample=sample, seed=seed)
    out.update(_stats(rc, "rc", with_mean=False))
    out["rc_infinite"] = int(np.sum(~np.isfinite(rc)))
    return out
