"""Pre-flight: checks of a space's data before any index is built.

Some data makes recall numbers lie without any error: equal or nearly equal points tie for every query,
a k-th and (k+1)-th neighbour at the same score make "the" top k arbitrary, zero vectors have no
direction under cosine or inner product, unnormalised vectors under inner product rank long vectors
first, a query copied from the base finds itself, and a wrong ground truth makes every number wrong.
Each check here says how much of that a space holds, so a reader can tell a recall loss of the index
from a trap in the data.

Every check is bounded. Passes over the base go `_BLOCK_ELEMENTS` at a time (exact duplicates by a
64-bit hash of each row, then verified value by value); the kNN checks run on seeded samples
(`NEAR_SAMPLE` base points, `TIE_SAMPLE` and `CHECK_SAMPLE` queries) searched over the base block by
block as the ground truth is. At 1M x 128 with 1,000 queries the whole pre-flight took 37 CPU-seconds,
most of it the two sampled kNN searches.
"""

from __future__ import annotations

import time

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from indexer.common.errors import DataError
from indexer.datasets.base import nonfinite_rows
from indexer.model.preflight import (
    NEAR_DEPTH,
    NEAR_FRACTION,
    TIE_RTOL,
    Duplicates,
    GroundTruthCheck,
    KthTies,
    NearDuplicates,
    Preflight,
    VectorCheck,
)
from indexer.science.groundtruth import exact_knn_float64, higher_is_better

VERSION = 1  # of the checks: part of the cache key, so a changed check is not read from an old cache
# Elements (rows x dims) read from the base at once: 16 MiB of float32, 32 MiB once in float64.
_BLOCK_ELEMENTS = 1 << 22
NEAR_SAMPLE = 1_000  # base points whose nearest neighbours are searched for near-duplicates
TIE_SAMPLE = 1_000  # queries searched at depth k + 1 for tied k-th scores
CHECK_SAMPLE = 100  # queries re-searched by float64 brute force against the stored ground truth
CHECK_RTOL = 1e-5  # stored and recomputed scores agree within this share of the score scale
NORM_TOL = 1e-3  # a vector is unit length when its norm is within this of 1
EXAMPLES = 5  # ids kept as examples of a finding

_FNV_OFFSET = np.uint64(0xCBF29CE484222325)
_FNV_PRIME = np.uint64(0x100000001B3)


# ------------------------------------------------------------------------------------------ helpers


def _block_rows(x: np.ndarray) -> int:
    return max(1, _BLOCK_ELEMENTS // max(1, int(x.shape[1])))


def _sample(n: int, size: int, seed: int) -> np.ndarray:
    """`size` of range(n), seeded and sorted (all of them when n <= size)."""
    if n <= size:
        return np.arange(n, dtype=np.int64)
    return np.sort(np.random.default_rng(seed).choice(n, size, replace=False)).astype(np.int64)


def _ids_of(positions: np.ndarray, ids: np.ndarray | None) -> list[int]:
    """Row positions as the dataset's ids (the first EXAMPLES, ascending)."""
    pos = np.sort(np.asarray(positions, dtype=np.int64))[:EXAMPLES]
    return [int(i) for i in (pos if ids is None else np.asarray(ids)[pos])]


def _canonical(block: np.ndarray) -> np.ndarray:
    """float32 rows whose bytes are equal exactly when their values are (-0.0 becomes 0.0)."""
    return np.ascontiguousarray(block, dtype=np.float32) + np.float32(0.0)


# ------------------------------------------------------------------------------------ the checks


def require_finite(base: np.ndarray, queries: np.ndarray, what: str) -> None:
    """Stop (DataError) on NaN or inf: no distance to such a vector is defined, so no recall either.

    The loaders refuse them in their input; this catches what a reduction makes (an FFT or a projection
    of large values can overflow float32)."""
    bad_base, bad_queries = nonfinite_rows(base), nonfinite_rows(queries)
    if bad_base or bad_queries:
        raise DataError(f"{what}: {bad_base} base vectors and {bad_queries} queries hold NaN or inf; "
                        "no distance to them is defined")


def vector_check(x: np.ndarray) -> VectorCheck:
    """Zero rows, rows not of unit length and the norm range, in float64 a block of rows at a time."""
    zero = not_unit = 0
    lo, hi = np.inf, -np.inf
    rows = _block_rows(x)
    for start in range(0, len(x), rows):
        norms = np.linalg.norm(np.asarray(x[start : start + rows], dtype=np.float64), axis=1)
        zero += int(np.count_nonzero(norms == 0))
        not_unit += int(np.count_nonzero((norms > 0) & (np.abs(norms - 1.0) > NORM_TOL)))
        if len(norms):
            lo, hi = min(lo, float(norms.min())), max(hi, float(norms.max()))
    finite = bool(np.isfinite(lo))
    return VectorCheck(n=len(x), zero=zero, not_unit=not_unit, norm_min=lo if finite else None,
                       norm_max=hi if finite else None)


def row_hashes(x: np.ndarray) -> np.ndarray:
    """A 64-bit hash of each row's values (FNV-1a over 32-bit words), a block of rows at a time.

    Equal rows always hash equal; unequal rows rarely do, and callers verify every match by value."""
    out = np.empty(len(x), dtype=np.uint64)
    rows = _block_rows(x)
    for start in range(0, len(x), rows):
        words = np.ascontiguousarray(_canonical(x[start : start + rows]).view(np.uint32).T)
        h = np.full(words.shape[1], _FNV_OFFSET, dtype=np.uint64)
        for column in words:  # each step is a bijection of h: rows differing in one word never collide
            h ^= column
            h *= _FNV_PRIME
        out[start : start + rows] = h
    return out


def _equal_rows(x: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Whether rows a[i] and b[i] of x are equal value by value, gathered a block at a time."""
    out = np.empty(len(a), dtype=bool)
    rows = _block_rows(x)
    for start in range(0, len(a), rows):
        sa, sb = a[start : start + rows], b[start : start + rows]
        out[start : start + rows] = (np.asarray(x[sa]) == np.asarray(x[sb])).all(axis=1)
    return out


def exact_duplicates(x: np.ndarray, *, hashes: np.ndarray | None = None, ids: np.ndarray | None = None
                     ) -> Duplicates:
    """Groups of equal rows: rows grouped by hash, each member verified against its group's first row.

    Memory: the hashes, an ordering and a group number (24 bytes a row) plus one block of rows; a hash
    group with an unequal member (a collision, vanishingly rare) is split exactly by np.unique over its
    own rows."""
    h = row_hashes(x) if hashes is None else hashes
    order = np.argsort(h, kind="stable")
    sorted_h = h[order]
    starts = np.flatnonzero(np.r_[True, sorted_h[1:] != sorted_h[:-1]])
    sizes = np.diff(np.r_[starts, len(h)])
    group = np.repeat(np.arange(len(starts)), sizes)  # of each position in `order`
    member = np.flatnonzero((np.arange(len(h)) != starts[group]) & (sizes[group] >= 2))
    same = _equal_rows(x, order[member], order[starts[group[member]]])
    collided = np.zeros(len(starts), dtype=bool)
    collided[group[member[~same]]] = True
    verified = np.flatnonzero((sizes >= 2) & ~collided)
    found = [order[starts[g] : starts[g] + sizes[g]] for g in verified[np.argsort(-sizes[verified])[:1]]]
    group_sizes = [int(z) for z in sizes[verified]]
    for g in np.flatnonzero(collided):
        members = np.sort(order[starts[g] : starts[g] + sizes[g]])
        _, inverse, counts = np.unique(_canonical(x[members]), axis=0, return_inverse=True, return_counts=True)
        for label in np.flatnonzero(counts >= 2):
            group_sizes.append(int(counts[label]))
            found.append(members[inverse.ravel() == label])
    if not group_sizes:
        return Duplicates()
    return Duplicates(groups=len(group_sizes), rows=sum(group_sizes), largest=max(group_sizes),
                      example=_ids_of(max(found, key=len), ids))


def queries_in_base(base: np.ndarray, queries: np.ndarray, *, base_hashes: np.ndarray | None = None) -> int:
    """How many queries equal some base row: found by hash, verified value by value."""
    bh = row_hashes(base) if base_hashes is None else base_hashes
    order = np.argsort(bh, kind="stable")
    sorted_h = bh[order]
    qh = row_hashes(queries)
    lo = np.searchsorted(sorted_h, qh, side="left")
    hi = np.searchsorted(sorted_h, qh, side="right")
    hit = np.flatnonzero(hi > lo)
    same = np.empty(len(hit), dtype=bool)
    rows = _block_rows(base)
    for start in range(0, len(hit), rows):  # against the first base row of the same hash
        part = hit[start : start + rows]
        same[start : start + rows] = (np.asarray(queries[part]) == np.asarray(base[order[lo[part]]])).all(axis=1)
    found = int(same.sum())
    for q in hit[~same]:  # a hash shared with an unequal row: the others of that hash, one by one
        candidates = np.asarray(base[np.sort(order[lo[q] : hi[q]])])
        found += bool((candidates == np.asarray(queries[q])).all(axis=1).any())
    return found


def _drop_own(ids: np.ndarray, dist: np.ndarray, own: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each row's neighbours without the point itself (found by id: among equal points it need not be
    first), or without the last column when it is not there."""
    is_own = ids == own[:, None]
    drop = np.where(is_own.any(axis=1), np.argmax(is_own, axis=1), ids.shape[1] - 1)
    keep = np.ones(ids.shape, dtype=bool)
    keep[np.arange(len(ids)), drop] = False
    m = ids.shape[1] - 1
    return ids[keep].reshape(-1, m), dist[keep].reshape(-1, m)


def near_duplicates(x: np.ndarray, *, sample: int = NEAR_SAMPLE, depth: int = NEAR_DEPTH,
                    fraction: float = NEAR_FRACTION, seed: int = 0, ids: np.ndarray | None = None
                    ) -> NearDuplicates:
    """Sampled base points with an unequal neighbour within `fraction` of the typical nearest-neighbour
    distance (Euclidean, in the space as indexed): pairs an index can hardly tell apart.

    Cost: exact kNN of `sample` points over the base (blocked like the ground truth), depth + 1 deep.
    With more than `depth` equal copies of a point, its near-duplicates beyond them are not seen."""
    n = len(x)
    pick = _sample(n, sample, seed)
    depth = min(depth, n - 1)
    if depth < 1:
        return NearDuplicates(sample=len(pick), depth=max(depth, 0), fraction=fraction, typical_distance=None,
                              threshold=None)
    nbr, d2 = exact_knn_float64(x, np.ascontiguousarray(x[pick]), depth + 1, "l2")
    nbr, d2 = _drop_own(nbr, d2, pick)
    dist = np.sqrt(np.maximum(d2, 0.0))
    positive = dist > 0
    has = positive.any(axis=1)
    first = dist[has, np.argmax(positive[has], axis=1)]  # each point's nearest unequal neighbour
    typical = float(np.median(first)) if len(first) else None
    threshold = None if typical is None else fraction * typical
    out = NearDuplicates(sample=len(pick), depth=depth, fraction=fraction, typical_distance=typical,
                         threshold=threshold)
    if threshold is None:
        return out
    near = positive & (dist <= threshold)
    rows, cols = np.nonzero(near)
    if not len(rows):
        return out
    a, b = pick[rows], nbr[rows, cols]
    pairs = np.unique(np.stack([np.minimum(a, b), np.maximum(a, b)], axis=1), axis=0)
    nodes, local = np.unique(pairs, return_inverse=True)
    local = local.reshape(pairs.shape)
    graph = coo_matrix((np.ones(len(pairs)), (local[:, 0], local[:, 1])), shape=(len(nodes), len(nodes)))
    _, labels = connected_components(graph, directed=False)
    counts = np.bincount(labels)
    biggest = int(np.argmax(counts))
    return out.model_copy(update={
        "points": int(near.any(axis=1).sum()), "pairs": len(pairs), "groups": len(counts),
        "largest": int(counts.max()), "example": _ids_of(nodes[labels == biggest], ids),
    })


def _max_norm(x: np.ndarray) -> float:
    rows = _block_rows(x)
    return max((float(np.linalg.norm(np.asarray(x[s : s + rows], dtype=np.float64), axis=1).max())
                for s in range(0, len(x), rows)), default=0.0)


def _score_scale(queries: np.ndarray, base_max_norm: float, metric: str) -> np.ndarray:
    """Per query, the size a score can reach: float32 rounding (an index's, the stored table's) is
    relative to this, not to the score itself, which may be near zero."""
    qn: np.ndarray = np.linalg.norm(np.asarray(queries, dtype=np.float64), axis=1)
    return qn * base_max_norm if higher_is_better(metric) else (qn + base_max_norm) ** 2


def kth_ties(base: np.ndarray, queries: np.ndarray, k: int, metric: str, *, sample: int = TIE_SAMPLE,
             seed: int = 0, rtol: float = TIE_RTOL) -> KthTies:
    """Sampled queries whose k-th and (k+1)-th exact scores are equal within `rtol` of the score scale:
    either point is a correct k-th neighbour, and below float32 resolution an index cannot tell them apart.

    Cost: exact kNN at depth k + 1 of `sample` queries (blocked like the ground truth)."""
    pick = _sample(len(queries), sample, seed)
    if k + 1 > len(base) or not len(pick):
        return KthTies(sample=0)
    q = np.ascontiguousarray(queries[pick])
    _, scores = exact_knn_float64(base, q, k + 1, metric)
    gap = np.abs(scores[:, k - 1] - scores[:, k])
    tied = gap <= rtol * _score_scale(q, _max_norm(base), metric)
    return KthTies(sample=len(pick), tied=int(tied.sum()))


def _brute_kth(base: np.ndarray, queries: np.ndarray, k: int, metric: str) -> np.ndarray:
    """The k-th best float64 score of each query over the whole base, by plain numpy, a block of base
    rows at a time (queries x block scores in memory)."""
    q = np.asarray(queries, dtype=np.float64)
    ip = higher_is_better(metric)
    qq = (q * q).sum(axis=1)[:, None]
    best = np.empty((len(q), 0))
    rows = max(1, _BLOCK_ELEMENTS // max(1, base.shape[1], len(q)))
    for start in range(0, len(base), rows):
        b = np.asarray(base[start : start + rows], dtype=np.float64)
        s = q @ b.T
        if ip:
            s = -s  # lower is better from here on
        else:
            s = qq + (b * b).sum(axis=1)[None, :] - 2.0 * s
        both = np.concatenate([best, s], axis=1)
        keep = min(k, both.shape[1])
        best = np.partition(both, keep - 1, axis=1)[:, :keep]
    kth: np.ndarray = np.sort(best, axis=1)[:, k - 1]
    return -kth if ip else kth


def check_groundtruth(base: np.ndarray, queries: np.ndarray, gt_ids: np.ndarray, gt_scores: np.ndarray,
                      k: int, metric: str, *, ids: np.ndarray | None = None, sample: int = CHECK_SAMPLE,
                      seed: int = 0, rtol: float = CHECK_RTOL) -> GroundTruthCheck:
    """Re-search a seeded sample of queries by float64 brute force and compare with the stored table.

    A query disagrees when a stored id is out of the base or repeated, when its recomputed score is
    worse than the brute-force k-th score, or when the stored score is not its recomputed score (both
    within `rtol` of the score scale, so ties may come in any order). `ids` are the dataset ids of
    base's rows (sorted), when the table names rows by them.
    Cost: `sample` x base float64 products, a block of base rows at a time."""
    pick = _sample(len(queries), sample, seed)
    if not len(pick):
        return GroundTruthCheck(sample=0)
    q = np.asarray(queries[pick], dtype=np.float64)
    stored = np.asarray(gt_ids)[pick, :k].astype(np.int64)
    stored_scores = np.asarray(gt_scores, dtype=np.float64)[pick, :k]
    if ids is None:
        pos, valid = stored, (stored >= 0) & (stored < len(base))
    else:
        id_arr = np.asarray(ids, dtype=np.int64)
        pos = np.clip(np.searchsorted(id_arr, stored), 0, len(id_arr) - 1)
        valid = id_arr[pos] == stored
    rows = np.asarray(base[np.where(valid, pos, 0).ravel()], dtype=np.float64).reshape(len(pick), k, -1)
    if higher_is_better(metric):
        own = np.einsum("qkd,qd->qk", rows, q)
    else:
        diff = rows - q[:, None, :]
        own = np.einsum("qkd,qkd->qk", diff, diff)
    kth = _brute_kth(base, q, k, metric)
    tol = rtol * _score_scale(q, _max_norm(base), metric)
    if higher_is_better(metric):
        good = own >= (kth - tol)[:, None]
    else:
        good = own <= (kth + tol)[:, None]
    agrees = np.abs(own - stored_scores) <= tol[:, None]
    srt = np.sort(stored, axis=1)
    distinct = ~(srt[:, 1:] == srt[:, :-1]).any(axis=1)
    ok = (valid & good & agrees).all(axis=1) & distinct
    bad = pick[~ok]
    return GroundTruthCheck(sample=len(pick), mismatches=len(bad), example=[int(i) for i in bad[:EXAMPLES]])


# ---------------------------------------------------------------------------------- the pre-flight


def preflight(*, base: np.ndarray, queries: np.ndarray, k: int, metric: str, gt_base: np.ndarray,
              gt_queries: np.ndarray, gt_ids: np.ndarray, gt_scores: np.ndarray, ids: np.ndarray | None = None,
              within_ids: np.ndarray | None = None, within_scores: np.ndarray | None = None,
              seed: int = 0) -> Preflight:
    """Every check on one space: `base` and `queries` as the index sees them (prepared, maybe reduced),
    `gt_base`/`gt_queries` the vectors the ground truth `gt_ids`/`gt_scores` was computed over (the same
    arrays unless reduced; then `within_ids`/`within_scores` is the reduced space's own). `ids` are the
    dataset ids of the base rows (sorted), which the tables and the examples use.

    Stops (DataError) on NaN or inf; everything else it reports, with a warning line per finding."""
    t0 = time.perf_counter()
    require_finite(base, queries, "pre-flight")
    hashes = row_hashes(base)
    pre = Preflight(
        metric=metric, k=k, base=vector_check(base), queries=vector_check(queries),
        duplicates=exact_duplicates(base, hashes=hashes, ids=ids),
        near_duplicates=near_duplicates(base, seed=seed, ids=ids),
        queries_in_base=queries_in_base(base, queries, base_hashes=hashes),
        ties=kth_ties(gt_base, gt_queries, k, metric, seed=seed),
        groundtruth=check_groundtruth(gt_base, gt_queries, gt_ids, gt_scores, k, metric, ids=ids, seed=seed),
    )
    if within_ids is not None and within_scores is not None:
        pre.groundtruth_within = check_groundtruth(base, queries, within_ids, within_scores, k, metric,
                                                   ids=ids, seed=seed)
    pre.warnings = warnings(pre)
    pre.seconds = time.perf_counter() - t0
    return pre


def _share(part: int, whole: int) -> str:
    return f"{part:,} of {whole:,} ({part / whole:.1%})" if whole else f"{part:,}"


def warnings(pre: Preflight) -> list[str]:
    """One line per finding a reader should weigh before trusting the recall numbers."""
    out: list[str] = []
    # near-duplicates are shown in the report's table, not warned of: on a low-dimensional manifold (a
    # normalised 2-d subspace is a circle) close pairs come by chance, and no distance ratio tells them from copies
    d, k, base = pre.duplicates, pre.k, pre.base
    if d.groups:
        out.append(f"Exact duplicates: {d.groups:,} group{'s' * (d.groups > 1)} of equal base vectors ({d.rows:,} "
                   f"rows, the largest {d.largest:,}); equal points tie for every query, so which of them is a "
                   "true neighbour is arbitrary.")
    if pre.ties.tied:
        out.append(f"Tied scores: {_share(pre.ties.tied, pre.ties.sample)} sampled queries have their {k}-th and "
                   f"{k + 1}-th exact scores tied; either point is a correct answer: recall counts either (ties by "
                   "exact score), the plain id intersection (recall_ids) counts one of them as a miss.")
    if pre.metric != "l2" and base.zero:
        out.append(f"Zero vectors: {base.zero:,} in the base; under {pre.metric} they score 0 against every query.")
    if pre.metric != "l2" and pre.queries.zero:
        out.append(f"Zero queries: {pre.queries.zero:,}; every base point scores 0 against them, so their exact "
                   "neighbours are an arbitrary tie.")
    if pre.metric == "ip" and base.not_unit:
        out.append(f"Not unit length: {_share(base.not_unit, base.n)} base vectors (norms {base.norm_min:.3g} to "
                   f"{base.norm_max:.3g}) under metric ip, which ranks long vectors first; use metric cosine if "
                   "direction is what matters.")
    if pre.queries_in_base:
        out.append(f"Queries in the base: {_share(pre.queries_in_base, pre.queries.n)} queries equal a base vector "
                   "and find that copy at distance 0.")
    for name, check in (("ground truth", pre.groundtruth), ("reduced space's ground truth", pre.groundtruth_within)):
        if check is not None and check.mismatches:
            out.append(f"Ground truth: the {name} disagrees with float64 brute force for "
                       f"{_share(check.mismatches, check.sample)} sampled queries (e.g. query "
                       f"{', '.join(str(i) for i in check.example)}).")
    return out
