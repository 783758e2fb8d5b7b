"""usearch (unum-cloud) HNSW behind the VectorIndex protocol, and its declaration as a backend.

Defaults are usearch 2.26.6's: connectivity (M) 16, expansion_add (efC) 128, expansion_search (ef) 64,
the constants `usearch.compiled.DEFAULT_*` (declared in usearch/compiled.pyi:25-27, applied in
usearch/index.py:607-612). With no dtype usearch picks the narrowest type the CPU accelerates
(usearch/index.py:108): bf16 here, for cos and l2sq alike, so `precision` defaults to bf16 and f32 is a choice.

Precision (indexer.backends.precision; the parameter was `dtype`, still accepted in a spec): usearch's scalar
kind, `Index(dtype=...)` (usearch/index.py:118-145). Queries are cast to it too before a distance.
- `f32`, `f16`: float32, IEEE half;
- `bf16`: float32's top 16 bits rounded to nearest, ties to even (SimSIMD's `simsimd_f32_to_bf16`, called by
  `f32_to_bf16`, include/usearch/index_plugins.hpp:449-466; checked on this build: a tie rounds to the even);
- `i8`: each vector divided by its own L2 norm, times 127, clamped to [-127, 127] and truncated toward zero
  (`cast_to_i8_gt`, index_plugins.hpp:1172-1192); decoded as code / 127 (`cast_from_i8_gt`, 1194-1201). The
  norm is not stored: every vector is stored as a unit vector, as its comment says it "makes an assumption,
  that the distance metric is dot-product-like", so under l2 a vector's length is lost;
- `binary`: one bit a dimension, set where the coordinate is > 0, the first dimension in the byte's high bit
  (`cast_to_b1x8_gt`, index_plugins.hpp:1139-1158; numpy's packbits). usearch takes b1 vectors packed already
  (a float vector to a b1 index is refused: "The number of vector dimensions doesn't match!"), so this backend
  packs the base and the queries itself and searches by metric hamming (the only kind for b1 beside
  Jaccard/Tanimoto). Its score is the inner product of the +-1 codes, dims - 2 * hamming for ip, and their
  squared L2 distance, 4 * hamming, for l2: the same order as Hamming. No rescoring.
The stored vectors come back decoded by `Index.get(keys, dtype="f32")` (usearch/index.py:807-848), except
binary's, unpacked here to +-1.

Order and determinism: `add(..., threads=1)` runs usearch's executor on the calling thread, task 0 to n-1
in order, one insertion each (the executor's `dynamic` with one thread); levels come from the thread
context's `std::default_random_engine`, default-constructed and not seedable, so a one-thread build is
reproducible (byte-identical saved files, checked) but distinct spec seeds build the same index.

Distances: ip is searched with metric cos (what a cosine user picks; vectors arrive normalised), whose
distance is 1 - cos; l2 with l2sq, already squared. Scores are computed on the stored (bf16) vectors.
expansion_search is index-wide state with no per-call override, so a search holds a lock across setting
it and searching. The index is kept in memory and saved to one file (usearch's own format).

Filtering: usearch's C++ core searches under a predicate, but the Python package of 2.26.6 exposes none:
`Index.search(vectors, count, radius, *, threads, exact, log, progress, dtype)` (usearch/index.py:740-790)
calls the compiled `search_many(queries, count, exact, threads, progress, dtype)` (usearch/compiled.pyi:109-117),
and the compiled module instantiates its search only with `dummy_predicate_t` (the symbols of
compiled.cpython-311-x86_64-linux-gnu.so). So a filtered search is post-filtering here, with oversampling
(base.post_filtered): unfiltered searches for k * 4 candidates, then twice as many, until k pass.

Deletes (base.Mutable, for a runbook): `Index.remove(keys, compact=False)` (usearch/index.py:868-894) calls
`index_dense_gt::remove`, which marks each key's node with the free key, drops it from the key lookup and
pushes its slot on a free list (include/usearch/index_dense.hpp:1479-1510); a search never returns a node
holding the free key (index_dense.hpp:2080) but still walks its links. The next `add` pops a free slot and,
instead of a new node, calls `index_gt::update` on it (index_dense.hpp:2021-2048), which searches the graph
for the new vector's neighbours and relinks the slot (include/usearch/index.hpp:2911-): a new point takes a
deleted point's place, a repair. A removed key is out of the lookup, so it can be added again: ids are reused.
`compact=True` would also `isolate` the index after each remove (python/lib.cpp:1192-1227), pruning every link
to a removed node; not run here. Line numbers are of usearch 2.21.0's sources (commit fd6279a, the nearest to
the installed 2.26.6, whose wheel ships no headers), the Python file's of 2.26.6.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import AliasChoices, Field

from indexer.backends.base import chunks, post_filtered
from indexer.backends.declaration import Backend, BuildParams, Capabilities, Library
from indexer.backends.scratch import no_answers
from indexer.backends.shared_setting import SharedSetting

DEFAULT_EF = 64  # usearch.compiled.DEFAULT_EXPANSION_SEARCH (2.26.6)
LIBRARY = Library(distribution="usearch", module="usearch", extra="usearch")


class UsearchParams(BuildParams):
    """usearch's graph parameters under the common names, and its storage type."""

    M: int = Field(default=16, ge=2, le=512)  # connectivity: usearch.compiled.DEFAULT_CONNECTIVITY (2.26.6)
    ef_construction: int = Field(default=128, ge=1)  # expansion_add: DEFAULT_EXPANSION_ADD (2.26.6)
    # the stored scalar (module doc); bf16 is what Index(metric=...) picks on a CPU with bf16 kernels (index.py:108).
    # `dtype`, its earlier name, is still read
    precision: Literal["bf16", "f16", "f32", "i8", "binary"] = Field(
        default="bf16", validation_alias=AliasChoices("precision", "dtype"))



class UsearchIndex:
    name = "usearch"

    def __init__(self, dim: int, metric: str, *, M: int, ef_construction: int, precision: str, seed: int,
                 search_threads: int = 1):
        self.dim, self.metric = dim, metric
        self.M, self.ef_construction, self.precision = M, ef_construction, precision
        self.seed = seed  # usearch takes no seed: its level generator is default-constructed
        self.search_threads = max(1, search_threads)  # usearch reads 0 as "every core"
        self._index: Any = None  # usearch.index.Index
        self._expansion = SharedSetting[int](self._set_expansion)  # concurrent searches at one ef

    def _new(self) -> Any:
        from usearch.index import Index

        if self.precision == "binary":
            return Index(ndim=self.dim, metric="hamming", dtype="b1", connectivity=self.M,
                         expansion_add=self.ef_construction, expansion_search=DEFAULT_EF)
        return Index(ndim=self.dim, metric="cos" if self.metric == "ip" else "l2sq", dtype=self.precision,
                     connectivity=self.M, expansion_add=self.ef_construction, expansion_search=DEFAULT_EF)

    def _given(self, vectors: np.ndarray) -> np.ndarray:
        """Vectors as this index takes them: float32, or packed sign bits for binary (module doc)."""
        if self.precision == "binary":
            return np.packbits(np.asarray(vectors) > 0, axis=1)
        return np.ascontiguousarray(vectors, dtype=np.float32)

    def stored_vectors(self) -> tuple[np.ndarray, np.ndarray]:
        """The keys in the index and their vectors as stored, decoded (module doc): usearch's `get` as float32
        (i8 is code / 127, on the unit sphere), binary's bits as +-1."""
        assert self._index is not None, "build or load first"
        keys = np.asarray(self._index.keys, dtype=np.uint64)
        if self.precision == "binary":
            codes = np.vstack(self._index.get(keys)).astype(np.uint8) if len(keys) else np.zeros((0, 0), np.uint8)
            bits = np.unpackbits(codes, axis=1)[:, : self.dim]
            return keys.astype(np.int64), (2.0 * bits - 1.0).astype(np.float32)
        got = np.vstack(self._index.get(keys, dtype="f32")) if len(keys) else np.zeros((0, self.dim))
        return keys.astype(np.int64), _as_compared(np.asarray(got, dtype=np.float32), self.metric)

    def stored_queries(self, queries: np.ndarray) -> np.ndarray:
        """The queries cast as usearch casts them before a distance (module doc): through an index of the same
        scalar kind, added and read back, so the library's own cast; binary's as +-1 codes."""
        from usearch.index import Index

        q = np.ascontiguousarray(queries, dtype=np.float32)
        if self.precision == "binary":
            return (2.0 * (q > 0) - 1.0).astype(np.float32)
        if self.precision == "f32" or len(q) == 0:
            return _as_compared(q, self.metric)
        scratch = Index(ndim=self.dim, metric="cos" if self.metric == "ip" else "l2sq", dtype=self.precision)
        keys = np.arange(len(q), dtype=np.uint64)
        scratch.add(keys, q, threads=1)
        cast: Any = scratch.get(keys, dtype="f32")  # one row per key (usearch/index.py:807-848)
        return _as_compared(np.asarray(np.vstack(cast), dtype=np.float32), self.metric)

    reuses_ids = True  # A removed key leaves the key lookup, so it can be added again (module doc).
    delete_mode = "repair"

    def insert(self, vectors: np.ndarray, ids: np.ndarray) -> None:
        """Add `vectors` under `ids` in order (one thread); each takes a removed point's slot while one is free."""
        if self._index is None:
            self._index = self._new()
        ids = np.asarray(ids, dtype=np.int64)
        for at in chunks(np.arange(len(ids))):
            self._index.add(ids[at].astype(np.uint64), self._given(vectors[at]), threads=1)

    def delete(self, ids: np.ndarray) -> None:
        """`remove` each key, without compaction (module doc)."""
        assert self._index is not None, "build or insert first"
        keys = np.asarray(ids, dtype=np.int64).astype(np.uint64)
        removed = int(self._index.remove(keys, threads=1)) if len(keys) else 0
        if removed != len(keys):
            raise ValueError(f"usearch removed {removed} of {len(keys)} keys: some were not in the index")

    def build(self, vectors: np.ndarray, order: np.ndarray) -> None:
        index = self._new()
        # one thread: usearch splits a batch into contiguous chunks, one per thread, and inserts them at once;
        # with one it inserts the rows in turn, and chunked calls save byte-identical files (tested)
        for rows in chunks(order):
            index.add(rows.astype(np.uint64), self._given(vectors[rows]), threads=1)
        self._expansion.forget()
        self._index = index

    def search(self, queries: np.ndarray, k: int, ef: int | None) -> tuple[np.ndarray, np.ndarray]:
        """Up to k results per query (usearch searches with max(ef, k)), padded with id -1 and nan."""
        assert self._index is not None, "build or load first"
        q = self._given(queries)
        ids, scores = no_answers(len(q), k)
        if len(q) == 0:
            return ids, scores
        with self._expansion.holding(ef or DEFAULT_EF):
            found = self._index.search(q, k, threads=self.search_threads)
        # a batch carries `counts` (its keys past a count are filler); one query comes back already trimmed
        counts = np.asarray(found.counts) if len(q) > 1 else np.array([len(found.keys)])
        keys = np.asarray(found.keys).reshape(len(q), -1)
        width = keys.shape[1]
        valid = np.arange(width)[None, :] < counts[:, None]
        # the filler past a count holds signalling NaNs: select before any arithmetic or float cast
        dist = np.where(valid, np.asarray(found.distances).reshape(len(q), -1), 0).astype(np.float64)
        # cos distance is 1 - cos (= 1 - ip on unit vectors); l2sq is already squared; binary's is a Hamming
        # distance h, given as the +-1 codes' inner product dims - 2h, or their squared distance 4h (module doc)
        if self.precision == "binary":
            got = (self.dim - 2.0 * dist) if self.metric == "ip" else 4.0 * dist
        else:
            got = (1.0 - dist) if self.metric == "ip" else dist
        ids[:, :width] = np.where(valid, keys.astype(np.int64), -1)
        scores[:, :width] = np.where(valid, got, np.nan)
        return ids, scores

    def search_filtered(self, queries: np.ndarray, k: int, ef: int | None,
                        allowed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Up to k passing results per query: `search` post-filtered with oversampling (module doc)."""
        assert self._index is not None, "build or load first"
        return post_filtered(self.search, queries, k, ef, allowed, len(self._index))

    def _set_expansion(self, ef: int) -> None:
        self._index.expansion_search = ef

    def nbytes(self) -> int:
        assert self._index is not None
        return int(self._index.serialized_length)

    def save(self, path: Path) -> None:
        assert self._index is not None
        self._index.save(str(path))

    def load(self, path: Path, n: int) -> None:
        from usearch.index import Index

        # restore reads ndim, metric and scalar kind from the file's header; `load` copies it into memory
        self._expansion.forget()
        self._index = Index.restore(str(path), view=False)
        if self._index is None:
            raise FileNotFoundError(f"no usearch index at {path}")

    def close(self) -> None:
        """Nothing outside this process's memory."""


def _as_compared(vectors: np.ndarray, metric: str) -> np.ndarray:
    """Vectors as usearch's distance compares them: normalised under cos (metric ip), as they are under l2sq."""
    if metric != "ip":
        return vectors
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return np.asarray(vectors / np.where(norms > 0, norms, 1.0), dtype=np.float32)


BACKEND = Backend(name="usearch", params=UsearchParams, ef_search=(DEFAULT_EF,), index=UsearchIndex,
                  build_cost=0.8, library=LIBRARY,
                  capabilities=Capabilities(spaces=frozenset({"ip", "l2"}), order_controlled=True,
                                            deterministic=True, graph=False, seeded=False,
                                            # no predicate in usearch 2.26.6's Python Index.search
                                            # (usearch/index.py:740-790, compiled.pyi:109-117): post-filtered
                                            filtering="post",
                                            # remove marks the node free; the next add reuses its slot and
                                            # relinks it (index_dense.hpp:1479-1510, 2021-2048; module doc)
                                            deletes="repair"))
