"""Filtered search: queries that carry a filter, and their exact ground truth.

A filtered query asks for its k nearest neighbours among only the base points its filter keeps
(a tenant, a category, a date range). Approximate indexes find this hard in ways that depend on
how the kept points relate to the query, so there are five kinds of filter:

- label: each query keeps the points of its own label (or of one chosen label). Kept points
  tend to lie near the query when labels follow the geometry.
- random: one uniform attribute per point; a filter keeps the points whose attribute is below the
  selectivity. Kept points are scattered independently of the geometry: the neutral case.
- cluster: k-means on the base; a query keeps the points nearest its nearest centroid (kind
  "cluster", correlated: easy) or farthest from it (kind "anti_cluster": the hard case, where
  the graph near the query holds no kept point).
- range: the attribute is the point's position (an insertion time); a query keeps a window of
  consecutive positions, so what is kept depends on the insertion order, not the vectors.
- column: a user-given integer attribute per point and, per query, the values it allows.

A `FilterSet` holds the distinct filters as boolean masks (one row per filter) and which filter
each query uses, so queries that share a filter can be searched together. `filtered_knn` is the
exact answer and `violations` counts results a backend returned that the filter does not keep.

Vectors are prepared as in `groundtruth` (cosine rows normalised, so the index metric is "ip"
or "l2"); scores are inner products (higher is better) or squared L2 distances (lower is
better). Importing this module is cheap: faiss (and `groundtruth`, which needs it) is imported
by the functions that use it.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from indexer.common.errors import UserError

KINDS = ("label", "random", "cluster", "anti_cluster", "range", "column")
KMEANS_NITER = 20
# Queries searched at once within one filter, so candidate tables stay bounded in memory.
QUERY_BLOCK = 4096
# Float64 elements gathered at once when scoring base rows against a centroid (32 MiB).
_SCORE_BLOCK_ELEMENTS = 1 << 22


@dataclass(frozen=True, kw_only=True, eq=False)
class FilterSet:
    """Distinct filters as masks (m x n bool) and the filter of each query (q,) int64.

    `attribute` is the per-point attribute a random, range or column filter was built from;
    `centroids` (m x d) are the k-means centroids cluster masks were built around, row j for mask j.
    """

    name: str
    kind: str
    selectivity: float | None
    masks: np.ndarray
    of_query: np.ndarray
    attribute: np.ndarray | None = None
    centroids: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise UserError(f"unknown filter kind {self.kind!r}; expected one of {', '.join(KINDS)}")
        if self.selectivity is not None:
            _check_selectivity(self.selectivity)
        masks = np.asarray(self.masks)
        if masks.ndim != 2 or masks.dtype != np.bool_:
            raise UserError(f"masks must be a 2-d bool array, got {masks.dtype} of shape {masks.shape}")
        if masks.shape[1] < 1:
            raise UserError("masks must cover at least one base point")
        of_query = _int_array(self.of_query, "of_query")
        if of_query.ndim != 1:
            raise UserError(f"of_query must be 1-d, got shape {of_query.shape}")
        if len(of_query) and (of_query.min() < 0 or of_query.max() >= len(masks)):
            raise UserError(f"of_query must index the {len(masks)} masks, got values "
                            f"{of_query.min()}..{of_query.max()}")
        if self.attribute is not None and len(self.attribute) != masks.shape[1]:
            raise UserError(f"attribute has {len(self.attribute)} entries for {masks.shape[1]} points")
        if self.centroids is not None and len(self.centroids) != len(masks):
            raise UserError(f"{len(self.centroids)} centroids for {len(masks)} masks")
        object.__setattr__(self, "masks", masks)
        object.__setattr__(self, "of_query", of_query)

    @property
    def n(self) -> int:
        """Number of base points the masks cover."""
        return int(self.masks.shape[1])

    @property
    def q(self) -> int:
        """Number of queries."""
        return len(self.of_query)

    def allowed(self, i: int) -> np.ndarray:
        """The (n,) mask of base points query i may return."""
        return np.asarray(self.masks[self.of_query[i]])

    def kept(self) -> np.ndarray:
        """(q,) fraction of base points each query's filter keeps: the selectivity actually met."""
        frac = self.masks.mean(axis=1) if len(self.masks) else np.zeros(0)
        return np.asarray(frac[self.of_query], dtype=np.float64)

    def groups(self) -> Iterator[tuple[int, np.ndarray]]:
        """(mask index, ascending query indices) per filter in use, so a filter is searched once."""
        order = np.argsort(self.of_query, kind="stable")
        cuts = np.flatnonzero(np.diff(self.of_query[order])) + 1
        for members in np.split(order, cuts):
            if len(members):
                yield int(self.of_query[members[0]]), members


# ------------------------------------------------------------------------------------ validation


def _check_selectivity(selectivity: float) -> float:
    """A fraction in (0, 1]: an empty filter is asked for by a label or column, never a fraction."""
    if isinstance(selectivity, bool) or not isinstance(selectivity, numbers.Real):
        raise UserError(f"selectivity must be a number in (0, 1], got {selectivity!r}")
    s = float(selectivity)
    if not 0.0 < s <= 1.0:  # NaN fails this too
        raise UserError(f"selectivity must be in (0, 1], got {selectivity!r}")
    return s


def _check_count(value: int, what: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise UserError(f"{what} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def _int_array(x: object, what: str) -> np.ndarray:
    """x as int64, refusing floats and bools (a float id or label is a caller's mistake)."""
    arr = np.asarray(x)
    if arr.size and arr.dtype.kind not in "iu":
        raise UserError(f"{what} must hold integers, got dtype {arr.dtype}")
    return arr.astype(np.int64, copy=False)


def _vectors(x: np.ndarray, what: str) -> np.ndarray:
    arr = np.asarray(x)
    if arr.ndim != 2:
        raise UserError(f"{what} must be a 2-d array, got shape {arr.shape}")
    return arr


def _check_pair(base: np.ndarray, queries: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    base, queries = _vectors(base, "base"), _vectors(queries, "queries")
    if base.shape[1] != queries.shape[1]:
        raise UserError(f"base has dimension {base.shape[1]} but queries have {queries.shape[1]}")
    if len(base) < 1:
        raise UserError("base must have at least one point")
    return base, queries


def _ceil_count(selectivity: float, n: int) -> int:
    """ceil(selectivity * n), immune to float products such as 0.07 * 100 = 7.000000000000001."""
    return max(1, math.ceil(round(selectivity * n, 9)))


def _dedupe(keys: Sequence[tuple[int, ...]]) -> tuple[list[tuple[int, ...]], np.ndarray]:
    """Distinct keys in first-seen order and each key's index among them."""
    index: dict[tuple[int, ...], int] = {}
    of = np.array([index.setdefault(key, len(index)) for key in keys], dtype=np.int64)
    return list(index), of


# ---------------------------------------------------------------------------------- constructors


def label_filters(base_labels: np.ndarray, query_labels: np.ndarray, *,
                  label: int | None = None) -> FilterSet:
    """Each query keeps the points of its own label, or (label given) of that one label.

    A query whose label no base point has gets a filter that keeps nothing: that is an answer
    (no neighbours), not an error. A chosen label no base point has is refused as a likely typo.
    """
    base_labels = np.asarray(base_labels)
    query_labels = np.asarray(query_labels)
    if base_labels.ndim != 1 or query_labels.ndim != 1:
        raise UserError(f"labels must be 1-d, got base {base_labels.shape} and queries {query_labels.shape}")
    if len(base_labels) < 1:
        raise UserError("base_labels must label at least one point")
    if label is not None:
        mask = base_labels == label
        if not mask.any():
            raise UserError(f"label {label!r} is not among the base labels")
        return FilterSet(name=f"label={label}", kind="label", selectivity=None, masks=mask[None, :],
                         of_query=np.zeros(len(query_labels), dtype=np.int64))
    values, of_query = np.unique(query_labels, return_inverse=True)
    masks = np.zeros((len(values), len(base_labels)), dtype=bool)
    for j, value in enumerate(values):
        masks[j] = base_labels == value
    return FilterSet(name="label", kind="label", selectivity=None, masks=masks,
                     of_query=of_query.ravel().astype(np.int64))


def random_filters(n: int, q: int, selectivity: float, *, seed: int) -> FilterSet:
    """One uniform attribute per point; every query keeps the points whose attribute < selectivity.

    The kept fraction is selectivity up to binomial noise; the attribute is kept on the FilterSet
    so other selectivities can be cut from the same draw.
    """
    n, q = _check_count(n, "n", 1), _check_count(q, "q", 0)
    s = _check_selectivity(selectivity)
    attribute = np.random.default_rng(seed).random(n)
    return FilterSet(name=f"random-{s:g}", kind="random", selectivity=s, masks=(attribute < s)[None, :],
                     of_query=np.zeros(q, dtype=np.int64), attribute=attribute)


def range_filters(n: int, q: int, selectivity: float, *, seed: int) -> FilterSet:
    """Each query keeps a window [start, start + w) of insertion positions, w = round(selectivity * n).

    Starts are drawn uniformly so every window fits; queries drawing the same start share a mask.
    """
    n, q = _check_count(n, "n", 1), _check_count(q, "q", 0)
    s = _check_selectivity(selectivity)
    w = min(n, max(1, round(s * n)))
    starts = np.random.default_rng(seed).integers(0, n - w + 1, size=q)
    distinct, of_query = np.unique(starts, return_inverse=True)
    positions = np.arange(n, dtype=np.int64)
    masks = (positions[None, :] >= distinct[:, None]) & (positions[None, :] < distinct[:, None] + w)
    return FilterSet(name=f"range-{s:g}", kind="range", selectivity=s, masks=masks,
                     of_query=of_query.ravel().astype(np.int64), attribute=positions)


def column_filters(values: np.ndarray, allowed_per_query: Sequence[Sequence[int]]) -> FilterSet:
    """A user attribute column (n,) of ints; each query keeps the points whose value it allows.

    Queries allowing the same set of values share a mask; an empty list keeps nothing.
    """
    column = _int_array(values, "values")
    if column.ndim != 1 or len(column) < 1:
        raise UserError(f"values must be a non-empty 1-d column, got shape {column.shape}")
    if isinstance(allowed_per_query, (str, bytes)) or not isinstance(allowed_per_query, Sequence | np.ndarray):
        raise UserError("allowed_per_query must be a sequence with one list of allowed values per query")
    keys = []
    for i, allowed in enumerate(allowed_per_query):
        arr = _int_array(allowed, f"allowed values of query {i}")
        if arr.ndim != 1:
            raise UserError(f"allowed values of query {i} must be a flat list, got shape {arr.shape}")
        keys.append(tuple(int(v) for v in np.unique(arr)))
    distinct, of_query = _dedupe(keys)
    masks = np.zeros((len(distinct), len(column)), dtype=bool)
    for j, key in enumerate(distinct):
        masks[j] = np.isin(column, np.array(key, dtype=np.int64))
    return FilterSet(name="column", kind="column", selectivity=None, masks=masks,
                     of_query=of_query, attribute=column)


def cluster_filters(base: np.ndarray, queries: np.ndarray, selectivity: float, *, clusters: int,
                    seed: int, metric: str, anti: bool) -> FilterSet:
    """Each query keeps the ceil(selectivity * n) points nearest its nearest k-means centroid,
    or (anti) farthest from it: filters correlated with the query's region, or opposed to it.

    k-means is faiss's, seeded, on prepared vectors; centroids are unit vectors (spherical) for
    ip and cosine, so "near" is the index metric throughout. Ties go to the lower id. clusters
    above n is clamped to n, as the cluster ordering does.
    """
    from indexer.science import groundtruth

    imetric = groundtruth.index_metric(metric)
    base, queries = _check_pair(base, queries)
    s = _check_selectivity(selectivity)
    clusters = _check_count(clusters, "clusters", 1)
    centroids = _kmeans(base, min(clusters, len(base)), seed, spherical=imetric == "ip")
    assign = _nearest(queries, centroids, imetric)
    used, of_query = np.unique(assign, return_inverse=True)
    count = _ceil_count(s, len(base))
    masks = np.zeros((len(used), len(base)), dtype=bool)
    for j, c in enumerate(used):
        masks[j, _ranked_from(base, centroids[c], imetric, far=anti)[:count]] = True
    kind = "anti_cluster" if anti else "cluster"
    return FilterSet(name=f"{kind}-{s:g}", kind=kind, selectivity=s, masks=masks,
                     of_query=of_query.ravel().astype(np.int64), centroids=centroids[used])


def _kmeans(base: np.ndarray, clusters: int, seed: int, *, spherical: bool) -> np.ndarray:
    """faiss k-means centroids (clusters x d, float32), deterministic for a seed."""
    import faiss

    x = np.ascontiguousarray(base, dtype=np.float32)
    km = faiss.Kmeans(x.shape[1], clusters, niter=KMEANS_NITER, seed=int(seed), spherical=spherical,
                      verbose=False)
    km.train(x)
    return np.asarray(km.centroids, dtype=np.float32)


def _scores(x: np.ndarray, c: np.ndarray, imetric: str) -> np.ndarray:
    """Float64 score of every row of x against the point c, in row blocks (bounded memory)."""
    rows = max(1, _SCORE_BLOCK_ELEMENTS // max(1, x.shape[1]))
    c64 = np.asarray(c, dtype=np.float64)
    out = np.empty(len(x), dtype=np.float64)
    for start in range(0, len(x), rows):
        blk = np.asarray(x[start : start + rows], dtype=np.float64)
        out[start : start + rows] = blk @ c64 if imetric == "ip" else ((blk - c64) ** 2).sum(axis=1)
    return out


def _nearest(queries: np.ndarray, centroids: np.ndarray, imetric: str) -> np.ndarray:
    """Each query's nearest centroid in the index metric (ties to the lower centroid id)."""
    per_centroid = np.stack([_scores(queries, c, imetric) for c in centroids], axis=1)
    best = per_centroid.argmax(axis=1) if imetric == "ip" else per_centroid.argmin(axis=1)
    return np.asarray(best, dtype=np.int64)


def _ranked_from(base: np.ndarray, c: np.ndarray, imetric: str, *, far: bool) -> np.ndarray:
    """Base ids nearest-first from c (farthest-first if far), ties by ascending id."""
    key = _scores(base, c, imetric)
    if imetric == "ip":
        key = -key  # higher inner product is nearer
    if far:
        key = -key
    return np.lexsort((np.arange(len(base)), key))


# ---------------------------------------------------------------------------------- ground truth


def filtered_knn(base: np.ndarray, queries: np.ndarray, filters: FilterSet, k: int,
                 metric: str) -> tuple[np.ndarray, np.ndarray]:
    """Exact k nearest among the points each query's filter keeps: ids int64 (q, k) in the base's
    numbering and scores float32 (q, k), best first; -1 and NaN pad rows with fewer than k kept.

    Queries sharing a filter are searched together over the kept points only, QUERY_BLOCK at a
    time, with `groundtruth.exact_knn_float64` (faiss candidates re-ranked in float64, ties by
    ascending id), so scores and tie order match the unfiltered ground truth.
    """
    from indexer.science import groundtruth

    imetric = groundtruth.index_metric(metric)
    base, queries = _check_pair(base, queries)
    k = _check_count(k, "k", 1)
    if filters.n != len(base) or filters.q != len(queries):
        raise UserError(f"filters cover {filters.n} points and {filters.q} queries; "
                        f"got {len(base)} base points and {len(queries)} queries")
    ids = np.full((len(queries), k), -1, dtype=np.int64)
    scores = np.full((len(queries), k), np.nan, dtype=np.float32)
    for mask_index, members in filters.groups():
        keep = np.flatnonzero(filters.masks[mask_index])
        if len(keep) == 0:
            continue
        sub, kk = _kept_rows(base, keep), min(k, len(keep))
        for start in range(0, len(members), QUERY_BLOCK):
            rows = members[start : start + QUERY_BLOCK]
            sub_ids, sub_scores = groundtruth.exact_knn_float64(sub, queries[rows], kk, imetric)
            ids[rows, :kk] = keep[sub_ids]
            scores[rows, :kk] = sub_scores
    return ids, scores


def _kept_rows(base: np.ndarray, keep: np.ndarray) -> np.ndarray:
    """base[keep]; a view (no copy, a memory map read in place) when keep is one run of ids.

    keep ascends, so the kept rows' own numbering orders ties exactly as the base ids do.
    """
    first, last = int(keep[0]), int(keep[-1])
    if last - first + 1 == len(keep):
        return np.asarray(base[first : last + 1])
    return np.asarray(base[keep])


def violations(ids: np.ndarray, filters: FilterSet) -> np.ndarray:
    """(q,) count of returned ids the query's filter does not keep; must be 0 for a correct backend.

    -1 is padding and ignored; any other id outside 0..n-1 is counted, never hidden.
    """
    arr = _int_array(ids, "ids")
    if arr.ndim != 2 or len(arr) != filters.q:
        raise UserError(f"ids must be a 2-d array with one row per query ({filters.q}), got shape {arr.shape}")
    in_range = (arr >= 0) & (arr < filters.n)
    kept = filters.masks[filters.of_query[:, None], np.where(in_range, arr, 0)]
    bad = (arr != -1) & ~(in_range & kept)
    return np.asarray(bad.sum(axis=1), dtype=np.int64)
