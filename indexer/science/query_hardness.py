"""How hard each query is, from the data alone, before any index is built: expansion and the distance to the
base's nearest k-means centre (beside LID, indexer.science.lid, and relative contrast, indexer.science.space).

Distances are Euclidean between the vectors as indexed (`prepare_vectors`: unit-normalised for cosine, raw for
l2 and ip), the convention LID and relative contrast use, so the four measures read one geometry.
- expansion at k: d_2k / d_k, the 2k-th over the k-th exact neighbour distance (the query expansion Aumuller and
  Ceccarello set beside LID and relative contrast): near 1 the 2k-th neighbour is as close as the k-th, so a
  search can hardly tell the true neighbours from the next ones.
- centre distance: to the nearest of `centre_count(n)` k-means centres of the base (faiss, seeded): a query far
  from every centre lies outside the base's distribution, where a graph has few links to follow.
faiss (through groundtruth) is imported on first use: the work estimate reads this module's constants, and
importing faiss with it would put faiss's loader chatter in the worker's log.
"""

from __future__ import annotations

import math

import numpy as np

CENTRES_CAP = 1024  # k-means centres: round(sqrt(n)), at most this many
KMEANS_SEED = 1234  # fixed: the centres depend on the space alone, which keys the cached measures
KMEANS_ITERATIONS = 20
POINTS_PER_CENTRE = 256  # training points per centre (faiss's own default cap), sampled with the seed


def expansion(base: np.ndarray, queries: np.ndarray, k: int, metric: str) -> np.ndarray:
    """Per query, d_2k / d_k over `base` (exact kNN at 2k, float64 distances); float64 (q,). inf where the k-th
    neighbour is at distance 0 and the 2k-th is not, NaN where both are (duplicates: no scale) or 2k > n."""
    # faiss on first use (the module's doc says why)
    from indexer.science.groundtruth import exact_knn_float64, prepare_vectors

    if 2 * k > len(base):
        return np.full(len(queries), np.nan)
    _, squared = exact_knn_float64(prepare_vectors(base, metric), prepare_vectors(queries, metric), 2 * k, "l2")
    dist = np.sqrt(np.maximum(squared, 0.0))
    kth, far = dist[:, k - 1], dist[:, 2 * k - 1]
    with np.errstate(divide="ignore", invalid="ignore"):
        out: np.ndarray = np.where(kth > 0, far / np.where(kth > 0, kth, 1.0), np.where(far > 0, np.inf, np.nan))
    return out


def centre_count(n: int) -> int:
    """The k-means centres of a base of n points: round(sqrt(n)), at least 1, at most CENTRES_CAP."""
    return max(1, min(CENTRES_CAP, round(math.sqrt(n)), n))


def kmeans_centres(base: np.ndarray, metric: str, *, seed: int = KMEANS_SEED) -> np.ndarray:
    """`centre_count(n)` k-means centres of `base` as indexed (faiss.Kmeans, seeded), float32 (c, d), trained on
    at most POINTS_PER_CENTRE points per centre sampled with `seed` (a memory-mapped base is not read whole)."""
    import faiss

    from indexer.science.groundtruth import prepare_vectors

    centres = centre_count(len(base))
    limit = centres * POINTS_PER_CENTRE
    picked = (np.arange(len(base)) if len(base) <= limit
              else np.sort(np.random.default_rng(seed).choice(len(base), limit, replace=False)))
    train = np.ascontiguousarray(prepare_vectors(np.asarray(base[picked]), metric), dtype=np.float32)
    # min_points_per_centroid 1: sqrt(n) centres have fewer than faiss's 39 points each below n = 1,521, which
    # is intended here and would print a warning to stderr
    km = faiss.Kmeans(train.shape[1], centres, niter=KMEANS_ITERATIONS, seed=seed, min_points_per_centroid=1,
                      max_points_per_centroid=POINTS_PER_CENTRE, verbose=False)
    km.train(train)
    out: np.ndarray = np.ascontiguousarray(km.centroids, dtype=np.float32)
    return out


def centre_distance(queries: np.ndarray, centres: np.ndarray, metric: str) -> np.ndarray:
    """Per query, the Euclidean distance (float64) to its nearest centre (`centres` as `kmeans_centres` gives)."""
    from indexer.science.groundtruth import exact_knn_float64, prepare_vectors

    _, squared = exact_knn_float64(centres, prepare_vectors(queries, metric), 1, "l2")
    out: np.ndarray = np.sqrt(np.maximum(squared[:, 0], 0.0))
    return out


def work_madds(n: int, dims: int, queries: int) -> float:
    """Multiply-adds `query_hardness` costs on n points: a scan per query (the exact kNN at 2k) and k-means."""
    centres = centre_count(n)
    return float(queries * n * dims + KMEANS_ITERATIONS * min(n, centres * POINTS_PER_CENTRE) * centres * dims)


def query_hardness(base: np.ndarray, queries: np.ndarray, k: int, metric: str) -> dict[str, np.ndarray]:
    """Both measures of this module for each query over `base`: `expansion` and `centre_distance`."""
    return {"expansion": expansion(base, queries, k, metric),
            "centre_distance": centre_distance(queries, kmeans_centres(base, metric), metric)}
