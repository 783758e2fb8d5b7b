"""Exact k-nearest neighbours (faiss brute force, re-ranked in float64) and an atomic npz cache.

Ground truth is what every recall number is measured against, so it is computed carefully:
faiss finds candidates with float32 BLAS, whose rounding can reorder near-ties and makes
duplicate points look a little apart; the candidates are then re-scored exactly in float64 and
sorted with ties broken by id, so the same data always gives the same table.
"""

from __future__ import annotations

import logging
import re
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

import faiss
import numpy as np

from indexer.common.errors import UserError
from indexer.common.fileio import atomic_write
from indexer.science.metrics import row_isin

log = logging.getLogger(__name__)

METRICS = ("cosine", "ip", "l2")
# Extra candidates fetched from faiss before exact re-ranking: float32 rounding can push a true
# neighbour just past position k, never far past it.
_RERANK_EXTRA = 8
# Float64 elements gathered at once when re-scoring pairs or normalising rows (32 MiB), so memory
# stays bounded.
_PAIR_BLOCK_ELEMENTS = 1 << 22
# Base rows given to faiss at once when searching for candidates: a memory-mapped base is read one
# block at a time, and only the best candidates per query are carried from block to block.
BASE_BLOCK = 262_144
_KEY_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$")


def _check_metric(metric: str) -> None:
    if metric not in METRICS:
        raise UserError(f"unknown metric {metric!r}; expected one of {', '.join(METRICS)}")


def index_metric(metric: str) -> str:
    """The metric an index uses: cosine becomes inner product on normalised vectors."""
    _check_metric(metric)
    return "l2" if metric == "l2" else "ip"


def higher_is_better(metric: str) -> bool:
    """Inner-product scores rank descending, squared L2 distances ascending."""
    return index_metric(metric) == "ip"


def prepare_vectors(x: np.ndarray, metric: str) -> np.ndarray:
    """Float32 C-contiguous vectors; rows L2-normalised for cosine (zero rows stay zero).

    Normalising once here lets every engine treat cosine as plain inner product. For l2 and ip,
    input that is already float32, C-contiguous and read-only (a memory map opened "r") is returned
    itself: nobody can write into it, so it needs no copy. Anything else, a writable array
    included, comes back as a new array the caller may change.
    """
    arr = _checked(x, metric)
    if _usable_as_is(arr, metric):
        return x if isinstance(x, np.ndarray) else arr
    out = np.empty(arr.shape, dtype=np.float32)
    _prepare_into(arr, metric, out)
    return out


def prepare_to_file(x: np.ndarray, metric: str, path: Path) -> np.ndarray:
    """`prepare_vectors`, written a block at a time into the .npy `path` and returned memory-mapped
    read-only: the prepared set lives in the page cache, shared by every process that maps the file,
    instead of as a private copy beside the input. Input `prepare_vectors` would keep is returned itself.
    """
    arr = _checked(x, metric)
    if _usable_as_is(arr, metric):
        return x if isinstance(x, np.ndarray) else arr
    path.parent.mkdir(parents=True, exist_ok=True)
    out = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=arr.shape)
    _prepare_into(arr, metric, out)
    out.flush()
    del out
    mapped: np.ndarray = np.load(path, mmap_mode="r")
    return mapped


def _checked(x: np.ndarray, metric: str) -> np.ndarray:
    _check_metric(metric)
    arr = np.asarray(x)
    if arr.ndim != 2:
        raise UserError(f"vectors must be a 2-d array, got shape {arr.shape}")
    return arr


def _usable_as_is(arr: np.ndarray, metric: str) -> bool:
    return metric != "cosine" and arr.dtype == np.float32 and arr.flags.c_contiguous and not arr.flags.writeable


def _prepare_into(arr: np.ndarray, metric: str, out: np.ndarray) -> None:
    """Fill `out` (float32, arr's shape) with arr prepared for `metric`, a block of rows at a time."""
    rows = max(1, _PAIR_BLOCK_ELEMENTS // max(1, arr.shape[1]))
    for start in range(0, len(arr), rows):
        if metric != "cosine":
            out[start : start + rows] = arr[start : start + rows]
            continue
        # Row by row the same float64 operations as on the whole matrix, so the same float32 values.
        x64 = arr[start : start + rows].astype(np.float64)
        norms = np.linalg.norm(x64, axis=1, keepdims=True)
        # Zero rows have no direction; leaving them as zeros keeps them finite (score 0 to all).
        np.divide(x64, norms, out=x64, where=norms > 0)
        out[start : start + rows] = x64


def pair_scores(base: np.ndarray, queries: np.ndarray, ids: np.ndarray, metric: str) -> np.ndarray:
    """Exact float64 scores of query i against base[ids[i, j]]; NaN where ids[i, j] < 0.

    Inner product for ip/cosine (vectors already prepared), squared L2 distance for l2. Computed
    as differences, not via the BLAS expansion, so duplicate points are exactly 0 apart.
    """
    imetric = index_metric(metric)
    ids = np.asarray(ids, dtype=np.int64)
    q, m = ids.shape
    if len(queries) != q:
        raise ValueError(f"{q} id rows for {len(queries)} queries")
    out = np.full((q, m), np.nan, dtype=np.float64)
    if q == 0 or m == 0:
        return out
    d = base.shape[1]
    rows = max(1, _PAIR_BLOCK_ELEMENTS // max(1, m * d))
    for start in range(0, q, rows):
        stop = min(q, start + rows)
        blk = ids[start:stop]
        valid = blk >= 0
        cand = base[np.where(valid, blk, 0)].astype(np.float64)  # (b, m, d)
        qv = queries[start:stop, None, :].astype(np.float64)
        if imetric == "ip":
            s = np.einsum("bmd,bmd->bm", cand, np.broadcast_to(qv, cand.shape))
        else:
            diff = cand - qv
            s = np.einsum("bmd,bmd->bm", diff, diff)
        out[start:stop] = np.where(valid, s, np.nan)
    return out


def _faiss_metric(imetric: str) -> int:
    return faiss.METRIC_INNER_PRODUCT if imetric == "ip" else faiss.METRIC_L2


def _sort_best_first(ids: np.ndarray, scores: np.ndarray, imetric: str) -> tuple[np.ndarray, np.ndarray]:
    """Order each row best score first, ties by ascending id, so the table is deterministic."""
    key = -scores if imetric == "ip" else scores
    order = np.lexsort((ids, key), axis=-1)
    return np.take_along_axis(ids, order, axis=1), np.take_along_axis(scores, order, axis=1)


def _candidates(base: np.ndarray, queries: np.ndarray, kc: int, imetric: str, block: int) -> np.ndarray:
    """The ids of each query's kc best float32 scores (faiss), over base blocks of `block` rows.

    Each block's best are merged with the best so far (equal float32 scores by ascending id), so
    a memory-mapped base is read block by block and never copied whole.
    """
    n = len(base)
    if n <= block:
        # faiss.knn blocks over queries and base internally, so memory stays bounded for large inputs.
        _, ids = faiss.knn(queries, base, kc, metric=_faiss_metric(imetric))
        return np.asarray(ids, dtype=np.int64)
    best_scores = best_ids = None
    for start in range(0, n, block):
        part = np.ascontiguousarray(base[start : start + block])  # a view when base is contiguous
        scores, ids = faiss.knn(queries, part, min(kc, len(part)), metric=_faiss_metric(imetric))
        ids = np.where(ids >= 0, ids + start, -1).astype(np.int64)
        if best_scores is not None and best_ids is not None:
            scores = np.concatenate([best_scores, scores], axis=1)
            ids = np.concatenate([best_ids, ids], axis=1)
        # Missing results (-1) carry the worst score (+inf for l2, -inf for ip), so they sort last.
        key = -scores if imetric == "ip" else scores
        order = np.lexsort((ids, key), axis=-1)[:, :kc]
        best_scores = np.take_along_axis(scores, order, axis=1)
        best_ids = np.take_along_axis(ids, order, axis=1)
    assert best_ids is not None
    return best_ids


def exact_knn_float64(
    base: np.ndarray, queries: np.ndarray, k: int, metric: str, *, block: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """As `exact_knn` but with the float64 scores, for callers (LID) that need full precision.

    faiss searches the base `block` rows at a time (default `BASE_BLOCK`); the result does not
    depend on the block size, except which of more than k + 8 exactly tied points are kept: faiss
    picks among equal float32 scores (for ip it keeps the highest ids), with or without blocks.
    """
    imetric = index_metric(metric)
    base = np.ascontiguousarray(base, dtype=np.float32)
    queries = np.ascontiguousarray(queries, dtype=np.float32)
    n = len(base)
    if base.ndim != 2 or queries.ndim != 2 or base.shape[1] != queries.shape[1]:
        raise UserError(f"base {base.shape} and queries {queries.shape} must be 2-d with equal dimension")
    if k < 1:
        raise UserError(f"k must be at least 1, got {k}")
    if k > n:
        raise UserError(f"k={k} exceeds the {n} base vectors")
    if block is not None and block < 1:
        raise UserError(f"block must be at least 1, got {block}")
    kc = min(n, k + _RERANK_EXTRA)
    cand = _candidates(base, queries, kc, imetric, block or BASE_BLOCK)
    exact = pair_scores(base, queries, cand, imetric)
    ids, scores = _sort_best_first(cand, exact, imetric)
    return np.ascontiguousarray(ids[:, :k]), np.ascontiguousarray(scores[:, :k])


def exact_knn(base: np.ndarray, queries: np.ndarray, k: int, metric: str, *,
              block: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Exact kNN of prepared vectors: ids int64 (q, k) and scores float32 (q, k), best first.

    Scores are inner products for ip/cosine (higher is better) and squared L2 distances for l2
    (lower is better). Ties are ordered by ascending id. `block` as in `exact_knn_float64`.
    """
    ids, scores = exact_knn_float64(base, queries, k, metric, block=block)
    return ids, scores.astype(np.float32)


def _drop_self(ids: np.ndarray, scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Remove each row's own id if present, else its last column, leaving k columns.

    With duplicate points the self match need not come first, so it is found by id.
    """
    n, m = ids.shape
    own = ids == np.arange(n)[:, None]
    has_self = own.any(axis=1)
    # Keep only the first self hit (there is at most one, but be safe) and, without one, the last slot.
    first = np.argmax(own, axis=1)
    drop_col = np.where(has_self, first, m - 1)
    keep = np.ones_like(own)
    keep[np.arange(n), drop_col] = False
    # Any further column beyond k (from the re-rank margin) is trimmed after removal.
    kept_ids = ids[keep].reshape(n, m - 1)[:, :k]
    kept_scores = scores[keep].reshape(n, m - 1)[:, :k]
    return kept_ids, kept_scores


def self_knn_float64(x: np.ndarray, k: int, metric: str, *,
                     block: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """As `self_knn` but with the float64 scores, for callers (LID) that need full precision."""
    n = len(x)
    if k + 1 > n:
        raise UserError(f"k={k} neighbours need at least {k + 1} vectors, got {n}")
    ids, scores = exact_knn_float64(x, x, k + 1, metric, block=block)
    return _drop_self(ids, scores, k)


def self_knn(x: np.ndarray, k: int, metric: str, *, block: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """kNN of every row of x among the other rows: ids int64 (n, k), scores float32 (n, k)."""
    ids, scores = self_knn_float64(x, k, metric, block=block)
    return np.ascontiguousarray(ids), np.ascontiguousarray(scores, dtype=np.float32)


def groundtruth_agreement(
    provided: np.ndarray,
    computed_ids: np.ndarray,
    computed_scores: np.ndarray,
    *,
    base: np.ndarray,
    queries: np.ndarray,
    k: int,
    metric: str,
    rtol: float = 1e-4,
) -> np.ndarray:
    """Per query: does the provided top-k agree with the computed one (ties tolerated)?

    A provided id agrees if it is among the computed top-k, or if its exact score is as good as
    the computed k-th score within `rtol` relative. The tolerance is relative to the larger of
    |k-th score| and |q|*max|x| (the scale of float32 rounding in the scores), so near-zero
    scores do not make the check brittle. Out-of-range or repeated provided ids disagree.
    """
    provided = np.asarray(provided)
    if provided.ndim != 2 or provided.shape[0] != len(computed_ids):
        raise UserError(
            f"provided neighbours have shape {provided.shape}; expected ({len(computed_ids)}, >= {k})"
        )
    if provided.shape[1] < k or computed_ids.shape[1] < k:
        raise UserError(f"provided neighbours have {provided.shape[1]} columns; k={k} needs at least k")
    prov = provided[:, :k].astype(np.int64)
    comp = np.asarray(computed_ids)[:, :k]
    n = len(base)
    in_range = (prov >= 0) & (prov < n)
    member = row_isin(prov, comp)
    exact = pair_scores(base, queries, np.where(in_range, prov, -1), metric)
    thr = np.asarray(computed_scores, dtype=np.float64)[:, k - 1]
    qnorm = np.linalg.norm(np.asarray(queries, dtype=np.float64), axis=1)
    xmax = _max_row_norm(base)
    tol = rtol * np.maximum(np.abs(thr), qnorm * xmax)
    with np.errstate(invalid="ignore"):
        if higher_is_better(metric):
            good = exact >= (thr - tol)[:, None]
        else:
            good = exact <= (thr + tol)[:, None]
    ok = in_range & (member | good)
    srt = np.sort(prov, axis=1)
    distinct = ~(srt[:, 1:] == srt[:, :-1]).any(axis=1)
    return np.asarray(ok.all(axis=1) & distinct, dtype=bool)


def _max_row_norm(x: np.ndarray) -> float:
    """The largest float64 row norm, computed in row blocks (never a float64 copy of all of x)."""
    rows = max(1, _PAIR_BLOCK_ELEMENTS // max(1, x.shape[1]))
    return max((float(np.linalg.norm(np.asarray(x[s : s + rows], dtype=np.float64), axis=1).max())
                for s in range(0, len(x), rows)), default=0.0)


def check_groundtruth(provided: np.ndarray, computed_ids: np.ndarray, computed_scores: np.ndarray,
                      **options: Any) -> float:
    """Fraction of queries whose provided neighbours agree with ours (`options` as in
    groundtruth_agreement); lets the engine refuse a bad table."""
    agree = groundtruth_agreement(provided, computed_ids, computed_scores, **options)
    k = options["k"]
    frac = float(agree.mean()) if len(agree) else 1.0
    log.info("provided ground truth agrees on %.4f of %d queries at k=%d", frac, len(agree), k)
    return frac


# ----------------------------------------------------------------------------------------- cache


def _write_npz_atomic(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """An uncompressed npz written atomically: a crash never leaves a half file at `path`."""

    def write(fh: BinaryIO) -> None:
        with zipfile.ZipFile(fh, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as zf:
            for name, arr in arrays.items():
                with zf.open(f"{name}.npy", "w", force_zip64=True) as member:
                    np.lib.format.write_array(member, np.asanyarray(arr), allow_pickle=False)

    atomic_write(path, write)


def _read_npz(path: Path) -> dict[str, np.ndarray] | None:
    """All arrays of a cache file, or None if it is missing, truncated or corrupt."""
    if not path.exists():
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            if not isinstance(z, np.lib.npyio.NpzFile):
                raise ValueError("not an npz archive")
            # Read every member now: a corrupt member fails its CRC here, not later in the caller.
            return {name: np.array(z[name]) for name in z.files}
    except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile, zlib.error) as err:
        log.warning("cache file %s is unreadable (%s); recomputing", path, err)
        return None


def cached(cache_dir: Path, key: str, compute: Callable[[], dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Arrays stored under `key` in cache_dir, computing and storing them atomically if absent.

    A file that does not load completely is recomputed, never trusted.
    """
    if not _KEY_RE.match(key):
        raise ValueError(f"cache key {key!r} must be a plain file name (letters, digits, . _ -)")
    cache_dir = Path(cache_dir)
    path = cache_dir / f"{key}.npz"
    found = _read_npz(path)
    if found is not None:
        log.debug("cache hit %s", path)
        return found
    arrays = compute()
    if not isinstance(arrays, dict) or not all(isinstance(name, str) for name in arrays):
        raise TypeError("compute() must return a dict mapping names to arrays")
    arrays = {name: np.asarray(arr) for name, arr in arrays.items()}
    cache_dir.mkdir(parents=True, exist_ok=True)
    _write_npz_atomic(path, arrays)
    log.debug("cache stored %s", path)
    return arrays
