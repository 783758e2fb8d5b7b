"""Spotify's voyager (an hnswlib descendant) behind the VectorIndex protocol, and its declaration as a backend.

Defaults are voyager 2.2.3's `Index(space, num_dimensions, M=12, ef_construction=200, random_seed=1,
max_elements=1, storage_data_type=Float32)` (the signature compiled into voyager_ext, `Index.__new__`),
and query ef 10 (the index's `ef` property, TypedIndex's defaultEF).

Order and determinism: `add_items(..., num_threads=1)` runs voyager's ParallelFor as a plain loop, one
addPoint per vector in the order given; levels come from a generator seeded with `random_seed`, which
gets the spec's seed. So a build is reproducible (byte-identical files, checked) and distinct seeds
build distinct indexes.

Distances: ip is searched in Space.Cosine (what a cosine user picks; it re-normalises the already-unit
vectors) whose distance is 1 - ip; l2 in Space.Euclidean, which returns the squared L2 distance. ef is
passed per call (`query_ef`), so concurrent searches share no state. voyager raises RecallError when a
query finds fewer than k points; such queries are answered with the most they can reach, padded with -1.
Float8 storage needs every coordinate in [-1, 1], E4M3 in [-448, 448]. Kept in memory; saved to one file.

Precision (indexer.backends.precision), voyager's `storage_data_type`:
- `f32`: Float32;
- `float8`: Float8, an int8 in units of 1/127 (`TypedIndex<float, int8_t, std::ratio<1, 127>>`,
  cpp/src/TypedIndex.h:759-760): a coordinate times 127, truncated toward zero by the conversion to int8, any
  coordinate outside [-128/127, 1] refused (`floatToDataType`, cpp/src/array_utils.h:82-133);
- `e4m3`: E4M3, an 8-bit float of 4 exponent and 3 mantissa bits, rounded to nearest even, range [-448, 448]
  (cpp/src/E4M3.h:289-395).
In Space.Cosine a vector is normalised before it is converted; queries are converted the same way before the
search (TypedIndex.h:660-670). Line numbers are of voyager's repository at commit 2a2f1f1 (python/pyproject.toml
2.0.10, the nearest to the installed 2.2.3, whose wheel ships no sources). The stored vectors come back decoded
by `Index.get_vectors`. The parameter was `dtype` with float32 for f32: a spec may still say so, and a cell's
key still spells it so (`_key_params`), so every index built before keeps its key.

Filtering: voyager has none. `Index.query(vectors, k=1, num_threads=-1, query_ef=-1)` is its whole search
(the signature compiled into voyager_ext, `Index.query.__doc__` of 2.2.3), and `mark_deleted` changes the
index for every concurrent search. So a filtered search is post-filtering, with oversampling
(base.post_filtered): unfiltered searches for k * 4 candidates, then twice as many, until k pass or the
search asks for every point of the index.

Deletes (base.Mutable, for a runbook): `Index.mark_deleted(id)`, whose documentation (`Index.mark_deleted.__doc__`
of 2.2.3) says "Deleted IDs will not show up in the results of calls to query, but will still take up space in
the index, and will slow down queries", and recommends rebuilding to avoid that: a tombstone. voyager keeps
hnswlib's layout (its cpp/src/hnswalg.h descends from hnswlib's), so a deleted point keeps its links and routes.
An id marked deleted and added again is unmarked and takes the new vector (checked here: it is returned at
distance 0 for its new vector): ids are reused. `len(index)` counts deleted points too, so a search asks for at
most the live count.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import AliasChoices, BeforeValidator, Field

from indexer.backends.base import chunks, post_filtered
from indexer.backends.declaration import Backend, BuildParams, Capabilities, Library
from indexer.backends.scratch import no_answers

DEFAULT_EF = 10  # voyager 2.2.3: Index.ef of a new or loaded index (TypedIndex.h defaultEF)
LIBRARY = Library(distribution="voyager", module="voyager", extra="voyager")
Storage = Literal["f32", "float8", "e4m3"]
LEGACY_F32 = "float32"  # f32's spelling under the parameter's earlier name, dtype


def _earlier_spelling(value: Any) -> Any:
    return "f32" if value == LEGACY_F32 else value


class VoyagerParams(BuildParams):
    """voyager's graph parameters under the common names, and its storage type."""

    M: int = Field(default=12, ge=2, le=512)  # voyager 2.2.3 Index.__new__: M=12
    ef_construction: int = Field(default=200, ge=1)  # voyager 2.2.3 Index.__new__: ef_construction=200
    # storage_data_type (module doc); voyager 2.2.3 Index.__new__: storage_data_type=StorageDataType.Float32
    # `dtype: float32`, the parameter's earlier spelling (module doc), is read as `precision: f32`
    precision: Annotated[Storage, BeforeValidator(_earlier_spelling)] = Field(
        default="f32", validation_alias=AliasChoices("precision", "dtype"))



class VoyagerIndex:
    name = "voyager"

    def __init__(self, dim: int, metric: str, *, M: int, ef_construction: int, precision: Storage, seed: int,
                 search_threads: int = 1):
        self.dim, self.metric = dim, metric
        self.M, self.ef_construction, self.precision, self.seed = M, ef_construction, precision, seed
        self.search_threads = max(1, search_threads)  # voyager reads <= 0 as one thread per core
        self._index: Any = None  # voyager.Index
        self._deleted: set[int] = set()  # ids marked deleted and not added again

    def _new(self, max_elements: int) -> Any:
        import voyager

        space = voyager.Space.Cosine if self.metric == "ip" else voyager.Space.Euclidean
        storage = {"f32": voyager.StorageDataType.Float32, "float8": voyager.StorageDataType.Float8,
                   "e4m3": voyager.StorageDataType.E4M3}[self.precision]
        return voyager.Index(space, self.dim, M=self.M, ef_construction=self.ef_construction,
                             random_seed=self.seed, max_elements=max(1, max_elements), storage_data_type=storage)

    reuses_ids = True  # An id marked deleted can be added again, unmarked with its new vector (module doc).
    delete_mode = "tombstone"

    def insert(self, vectors: np.ndarray, ids: np.ndarray) -> None:
        """Add `vectors` under `ids` in order (one thread; voyager grows the index as it fills)."""
        if self._index is None:
            self._index = self._new(len(ids))
        ids = np.asarray(ids, dtype=np.int64)
        for at in chunks(np.arange(len(ids))):
            self._index.add_items(np.ascontiguousarray(vectors[at], dtype=np.float32), ids=ids[at], num_threads=1)
        self._deleted.difference_update(ids.tolist())

    def delete(self, ids: np.ndarray) -> None:
        """`mark_deleted` each id: a tombstone (module doc)."""
        assert self._index is not None, "build or insert first"
        for i in np.asarray(ids, dtype=np.int64).tolist():
            self._index.mark_deleted(i)
            self._deleted.add(i)

    def build(self, vectors: np.ndarray, order: np.ndarray) -> None:
        index = self._new(len(order))
        self._deleted = set()
        # one thread: with more, voyager's threads take the next vector from a shared counter as they go; with
        # one, each call is a plain loop, so consecutive chunks of `order` build what one call would
        for rows in chunks(order):
            index.add_items(np.ascontiguousarray(vectors[rows], dtype=np.float32),
                            ids=np.asarray(rows, dtype=np.int64), num_threads=1)
        self._index = index

    def search(self, queries: np.ndarray, k: int, ef: int | None) -> tuple[np.ndarray, np.ndarray]:
        """Up to k results per query (voyager searches with max(ef, k)), padded with id -1 and nan."""
        import voyager

        assert self._index is not None, "build or load first"
        q = np.require(queries, np.float32, ["C", "W"])  # voyager refuses read-only arrays (a memory map)
        ids, scores = no_answers(len(q), k)
        k_eff = min(k, len(self._index) - len(self._deleted))
        if len(q) == 0 or k_eff == 0:
            return ids, scores
        try:
            got, dist = self._query(q, k_eff, ef, self.search_threads)
            ids[:, :k_eff], scores[:, :k_eff] = got, dist
        except voyager.RecallError:  # some query reaches fewer than k_eff points: answer each on its own
            for row in range(len(q)):
                got, dist = self._short_query(q[row : row + 1], k_eff, ef)
                ids[row, : got.shape[1]], scores[row, : got.shape[1]] = got[0], dist[0]
        return ids, scores

    def search_filtered(self, queries: np.ndarray, k: int, ef: int | None,
                        allowed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Up to k passing results per query: `search` post-filtered with oversampling (module doc)."""
        assert self._index is not None, "build or load first"
        return post_filtered(self.search, queries, k, ef, allowed, len(self._index) - len(self._deleted))

    def _query(self, q: np.ndarray, k: int, ef: int | None, threads: int) -> tuple[np.ndarray, np.ndarray]:
        # query_ef must be >= k (voyager raises otherwise); -1 is the index's own ef, which voyager raises to k
        labels, dist = self._index.query(q, k=k, num_threads=threads, query_ef=max(ef, k) if ef else -1)
        # Cosine's distance is 1 - ip; Euclidean's is already squared
        scores = (1.0 - dist) if self.metric == "ip" else dist
        return labels.reshape(len(q), k).astype(np.int64), scores.reshape(len(q), k).astype(np.float32)

    def _short_query(self, q: np.ndarray, k: int, ef: int | None) -> tuple[np.ndarray, np.ndarray]:
        """One query's answer at the largest count it reaches (bisected; voyager answers all or raises)."""
        import voyager

        try:
            return self._query(q, k, ef, 1)
        except voyager.RecallError:
            pass
        lo, hi = 0, k - 1  # the largest answerable count is in [lo, hi]; 0 always is
        while lo < hi:
            mid = (lo + hi + 1) // 2
            try:
                self._query(q, mid, ef, 1)
                lo = mid
            except voyager.RecallError:
                hi = mid - 1
        if lo == 0:
            return np.empty((1, 0), dtype=np.int64), np.empty((1, 0), dtype=np.float32)
        return self._query(q, lo, ef, 1)

    def stored_vectors(self) -> tuple[np.ndarray, np.ndarray]:
        """The live ids and their vectors as stored, decoded by voyager (`get_vectors`; normalised in Cosine)."""
        assert self._index is not None, "build or load first"
        ids = np.asarray(sorted(set(int(i) for i in self._index.ids) - self._deleted),
                         dtype=np.int64)
        vectors = np.asarray(self._index.get_vectors(ids.tolist()), dtype=np.float32).reshape(len(ids), self.dim)
        return ids, vectors

    def stored_queries(self, queries: np.ndarray) -> np.ndarray:
        """The queries converted as voyager converts them before a search (module doc): through an index of the
        same space and storage, added and read back, so the library's own conversion."""
        q = np.ascontiguousarray(queries, dtype=np.float32)
        if len(q) == 0:
            return q
        scratch = self._new(len(q))
        scratch.add_items(q, ids=np.arange(len(q), dtype=np.int64), num_threads=1)
        return np.asarray(scratch.get_vectors(list(range(len(q)))), dtype=np.float32).reshape(q.shape)

    def nbytes(self) -> int:
        assert self._index is not None
        return len(self._index.as_bytes())  # what `save` writes

    def save(self, path: Path) -> None:
        assert self._index is not None
        self._index.save(str(path))

    def load(self, path: Path, n: int) -> None:
        import voyager

        # files since voyager 1.3 carry their space, dimensions and storage type
        self._index = voyager.Index.load(str(path))
        self._deleted = set()

    def close(self) -> None:
        """Nothing outside this process's memory."""


def _key_params(params: dict[str, Any]) -> dict[str, Any]:
    """The parameters as a cell's key spells them: `precision` under its earlier name and values (dtype, with
    float32 for f32), so every index built before the rename keeps its key (module doc)."""
    out = {k: v for k, v in params.items() if k != "precision"}
    if "precision" in params:
        out["dtype"] = LEGACY_F32 if params["precision"] == "f32" else params["precision"]
    return out


BACKEND = Backend(name="voyager", params=VoyagerParams, ef_search=(DEFAULT_EF,), index=VoyagerIndex,
                  build_cost=1.2, library=LIBRARY, key_params=_key_params,
                  capabilities=Capabilities(spaces=frozenset({"ip", "l2"}), order_controlled=True,
                                            deterministic=True, graph=False, seeded=True,
                                            # voyager 2.2.3's Index.query takes no filter: post-filtered
                                            filtering="post",
                                            # mark_deleted: hidden from results, kept in the graph (module doc)
                                            deletes="tombstone"))
