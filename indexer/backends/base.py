"""One protocol for every index library: build parameters at construction, query parameters per call."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from indexer.common import timing

Search = Callable[[np.ndarray, int, int | None], tuple[np.ndarray, np.ndarray]]  # VectorIndex.search, bound

BUILD_CHUNK = 4_096  # rows of `vectors[order]` a build gathers at once: 2 MiB at 128 float32 dimensions, 12 at 768;
# between two, a build steps aside for a cell timing its searches (indexer.common.timing)


class VectorIndex(Protocol):
    """A built index over prepared vectors (cosine already normalised, so the metric is ip or l2).

    `build` inserts `vectors[order]` one after another in that order and labels each point with its
    row number, so search results come back in the dataset's own numbering whatever the order.
    Scores: inner product for ip (higher is better), squared L2 distance for l2 (lower is better).
    """

    name: str

    def build(self, vectors: np.ndarray, order: np.ndarray) -> None: ...

    def search(self, queries: np.ndarray, k: int, ef: int | None) -> tuple[np.ndarray, np.ndarray]: ...

    def nbytes(self) -> int: ...

    def save(self, path: Path) -> None: ...

    def load(self, path: Path, n: int) -> None: ...

    def close(self) -> None:
        """Release what the index holds outside this process's memory (a server, a scratch directory);
        the runner calls it once the cell is measured, also when the cell failed."""


@runtime_checkable
class FilteredSearch(Protocol):
    """An index that also answers filtered queries, by its library's own mechanism (its backend's
    `Capabilities.filtering` names the strategy; a backend declares one exactly when its index has this)."""

    def search_filtered(self, queries: np.ndarray, k: int, ef: int | None,
                        allowed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Like `search`, among the points `allowed` passes only.

        `allowed` is a bool array over the dataset's rows (the numbering `build` labels points with), at
        least as long as the largest row number + 1; every query of the batch shares it. Returns ids
        (queries x k, int64) and scores (same conventions as `search`); where fewer than k passing points
        come back, the rest of the row is id -1 with score NaN.
        """
        ...


class ModedFilteredSearch(Protocol):
    """A FilteredSearch whose library filters in more than one way (its backend's
    `Capabilities.filter_modes`): `mode` picks one, per call, so one built index answers in every mode."""

    def search_filtered(self, queries: np.ndarray, k: int, ef: int | None, allowed: np.ndarray, *,
                        mode: str) -> tuple[np.ndarray, np.ndarray]:
        """As FilteredSearch.search_filtered, in `mode` (one of the backend's; another is a ValueError)."""
        ...


@runtime_checkable
class StoresVectors(Protocol):
    """An index that stores its vectors in a reduced precision (indexer.backends.precision) and can give them
    back decoded, so exact search over what it stores can be told apart from its graph's loss."""

    def stored_vectors(self) -> tuple[np.ndarray, np.ndarray]:
        """The dataset rows the index holds (int64) and their vectors as it stores them, decoded to float32
        (rows x dims), in the form its distance compares them (normalised where it searches by cosine)."""
        ...

    def stored_queries(self, queries: np.ndarray) -> np.ndarray:
        """`queries` in the form its distance compares them with the stored vectors (float32): unchanged where
        the library compares float queries with the stored codes, coded where it codes them."""
        ...


@runtime_checkable
class Rescores(Protocol):
    """An index built with rescoring (indexer.backends.precision.Rescore) that can also answer without it, on
    the same index: what rescoring recovers is told from the rest of the loss by the two answers' recalls."""

    def search_unrescored(self, queries: np.ndarray, k: int, ef: int | None) -> tuple[np.ndarray, np.ndarray]:
        """As `search` at the same ef, over the same candidates the index would re-rank, but the first k in the
        quantized index's own order: nothing re-ranked, so the two answers differ by the re-ranking alone."""
        ...


@runtime_checkable
class Mutable(Protocol):
    """An index that takes inserts and deletes after it is built (its backend's `Capabilities.deletes` says what
    a delete does; a backend declares "tombstone", "repair" or "compact" exactly when its index has this).

    Ids are the labels search returns. `insert` on an index never built starts an empty one. A deleted id is
    never returned by `search` (nor `search_filtered`) again, unless it is inserted again.
    """

    @property
    def reuses_ids(self) -> bool:
        """Whether a deleted id may be inserted again (with a new vector); False: a re-insert needs a new id."""
        ...

    @property
    def delete_mode(self) -> str:
        """What a delete does in this index as built ("tombstone", "repair", "compact"): a build parameter may
        change the backend's declared one (hnswlib's replace_deleted)."""
        ...

    def insert(self, vectors: np.ndarray, ids: np.ndarray) -> None:
        """Insert `vectors` under `ids` (int64, none of them in the index), one after another in that order."""

    def delete(self, ids: np.ndarray) -> None:
        """Delete `ids` (each in the index)."""


def passing(allowed: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Whether each of `rows` (dataset row numbers, -1 where there is no point) passes `allowed`.

    -1 never passes. A mask that is not a 1-D bool array, or is too short for a row number, is a
    ValueError: an index array or a truncated mask would otherwise filter by the wrong rows.
    """
    if allowed.ndim != 1 or allowed.dtype != np.bool_:
        raise ValueError(f"allowed must be a 1-D bool array over the dataset's rows, got {allowed.dtype} "
                         f"of shape {allowed.shape}")
    rows = np.asarray(rows, dtype=np.int64)
    if rows.size and int(rows.max()) >= len(allowed):
        raise ValueError(f"allowed covers rows 0..{len(allowed) - 1}, but the index holds row {int(rows.max())}")
    ok: np.ndarray = (rows >= 0) & allowed[np.maximum(rows, 0)]
    return ok


OVERSAMPLE = 4  # post-filtering asks first for k * OVERSAMPLE candidates per query, then twice as many each round


def post_filtered(search: Search, queries: np.ndarray, k: int, ef: int | None, allowed: np.ndarray,
                  size: int) -> tuple[np.ndarray, np.ndarray]:
    """A filtered search for a library that has no filter: `search` unfiltered, then drop what does not pass.

    Each query asks first for k * OVERSAMPLE candidates (at `ef`; a library searches with max(ef, count)),
    keeps the passing ones in the order they came, and while fewer than k pass asks again for twice as many,
    until k pass, the search came back short (it returned all it reaches) or it asked for all `size` points
    of the index; then it keeps what passed, padded with id -1 and score NaN.
    """
    ids = np.full((len(queries), k), -1, dtype=np.int64)
    scores = np.full((len(queries), k), np.nan, dtype=np.float32)
    passing(allowed, np.empty(0, dtype=np.int64))  # the mask's type checked even when nothing is searched
    if len(queries) == 0 or k == 0 or size == 0:
        return ids, scores
    pending = np.arange(len(queries))
    fetch = min(size, k * OVERSAMPLE)
    while len(pending):
        got, got_scores = search(queries[pending], fetch, ef)
        keep = passing(allowed, got)
        width = min(k, fetch)
        first = np.argsort(~keep, axis=1, kind="stable")[:, :width]  # passing columns first, in their order
        kept = np.take_along_axis(keep, first, axis=1)
        ids[pending, :width] = np.where(kept, np.take_along_axis(got, first, axis=1), -1)
        scores[pending, :width] = np.where(kept, np.take_along_axis(got_scores, first, axis=1), np.nan)
        done = (kept.sum(axis=1) >= k) | (got[:, -1] < 0) | (fetch >= size)
        pending = pending[~done]
        fetch = min(size, fetch * 2)
    return ids, scores


def chunks(order: np.ndarray, size: int | None = None) -> Iterator[np.ndarray]:
    """`order` in consecutive slices of `size` rows (BUILD_CHUNK unless given), the last one shorter.

    A build gathers `vectors[rows]` one slice at a time instead of a permuted copy of the whole matrix.
    BUILD_CHUNK is read on each call, so a test can shrink it.
    """
    step = BUILD_CHUNK if size is None else size
    if step < 1:
        raise ValueError(f"chunk size must be positive, got {step}")
    for start in range(0, len(order), step):
        if start:
            timing.pause_point()  # a cell timing its searches elsewhere goes first (indexer.common.timing)
        yield order[start : start + step]
