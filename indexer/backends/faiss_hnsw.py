"""faiss IndexHNSWFlat behind the VectorIndex protocol, and its declaration as a backend.

faiss reorders every batch passed to `add` (by level, then a seeded shuffle), so to keep the
insertion order each vector goes in its own `add` call. Level assignment draws from the index's own
generator, seeded from the spec. efSearch is passed per call (SearchParametersHNSW), which is
thread-safe, so no per-request state leaks between concurrent searches.

Filtered search (faiss_base) passes the selector in the same SearchParametersHNSW. faiss 1.15's layer-0
search (`search_from_candidates`, faiss/impl/HNSW.cpp at v1.15.0, lines 913-981) adds a neighbour to the
results only `if (!sel || sel->is_member(idx))` but pushes every neighbour onto its candidates: points that
do not pass are traversed, never returned (in_graph). The upper-layer descent ignores the selector.

Precision (indexer.backends.precision): `f32` is IndexHNSWFlat, float32 vectors (the default, left out of
keys and rows' parameters while it is, so every index built before keeps its key). `f16`, `bf16` and `i8` are
IndexHNSWSQ, whose storage is an IndexScalarQuantizer (faiss/IndexHNSW.cpp at v1.15.0, IndexHNSWSQ's
constructor) of type QT_fp16 (IEEE half, numpy's float16 rounding), QT_bf16 (`encode_bf16`: the float32's
bits + 0x8000, shifted right 16: round to nearest, ties away from zero, faiss/utils/bf16.h:28-33) or QT_8bit.
QT_8bit is non-uniform: each dimension j has its own vmin[j] and vdiff[j] (faiss/impl/scalar_quantizer/
quantizers.h:108-146), code = int(255 * clamp((x - vmin) / vdiff, 0, 1)) (truncation, codecs.h:28-40) and the
decoded value vmin + (code + 0.5) / 255 * vdiff. It is trained with the default range statistic RS_minmax and
rangestat_arg 0 (ScalarQuantizer.h:63-74), so vmin and vmax are each dimension's minimum and maximum over the
training set (training.cpp:334-365, `train_NonUniform`). The training set here is every vector the build
inserts, summarised to two rows (each dimension's minimum, then maximum), which give the same vmin and vmax
without a copy of the vectors. Queries stay float32: the SQ distance computer compares them with the decoded
codes. An index stores the vectors it holds as `reconstruct_n` decodes them (base.StoresVectors).

`pq` is IndexHNSWPQ (faiss/IndexHNSW.cpp at v1.15.0): its storage an IndexPQ of `pq_m` sub-quantizers of
8 bits (pq_nbits' default), `pq_m` dividing the dimensions (ProductQuantizer::set_derived_values throws
otherwise: a UserError here). Its training is the PQ's k-means per sub-space (ClusteringParameters: seed 1234,
at most max_points_per_centroid = 256 points per centroid, so 65,536 for 256 centroids: faiss/Clustering.h),
here on the inserted vectors, or a sample of PQ_TRAIN of them drawn by the cell's seed where there are more
(faiss would sample as many itself). The graph links points by their codes' distances, and a search compares
the float query with the decoded codes (asymmetric distance), so queries stay float32; `reconstruct_n` decodes
each code to its centroids. faiss warns on stderr below 39 training points per centroid (9,984). Under inner
product the graph loses far more than under L2 (measured, 600 unit vectors of 24 dimensions, pq_m 12, ef 40:
recall 0.60 against 0.81 for exact search over the codes; under L2 0.92 against 0.92): the links are chosen by
the symmetric distances between stored codes, IndexPQ's SDC table, which `compute_sdc_table` fills with L2
distances between centroids whatever the metric (checked: it equals their squared L2, not their inner
product; ProductQuantizer.h: "Implemented only for METRIC_L2"), while the HNSW negates an inner-product
index's distances, so the pruning prefers far neighbours.

It has no delete: IndexHNSW does not override `Index::remove_ids`, which throws "remove_ids not implemented
for this type of index" (faiss/Index.cpp at v1.15.0, lines 56-59). In a runbook it runs only as the rebuild
baseline (Capabilities.deletes "none"): a fresh index over the points in the index at every checkpoint.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from pydantic import Field, model_validator

from indexer.backends.base import chunks
from indexer.backends.declaration import Backend, Capabilities
from indexer.backends.faiss_base import FAISS, FaissOrderedIndex
from indexer.backends.hnswlib_index import HnswlibParams
from indexer.backends.precision import PQ_NBITS
from indexer.common.errors import UserError

if TYPE_CHECKING:
    from indexer.model.graph import HnswGraph


# precision -> the ScalarQuantizer type of IndexHNSWSQ's storage (module doc); f32 is IndexHNSWFlat
SQ_TYPES = {"f16": "QT_fp16", "bf16": "QT_bf16", "i8": "QT_8bit"}
FaissPrecision = Literal["f32", "f16", "bf16", "i8", "pq"]
PQ_TRAIN = 256 * 2**PQ_NBITS  # faiss's k-means samples this many (max_points_per_centroid x centroids) (module doc)


class FaissHnswParams(HnswlibParams):
    """The same graph parameters as hnswlib's, with faiss's own default efConstruction, and the precision its
    vectors are stored in (left out of keys and rows' parameters at f32, so earlier indexes keep their keys)."""

    ef_construction: int = Field(default=40, ge=1)
    precision: FaissPrecision = Field(default="f32", exclude_if=lambda v: v == "f32",
                                      description="f32: IndexHNSWFlat; f16, bf16, i8: IndexHNSWSQ (QT_fp16, "
                                                  "QT_bf16, QT_8bit trained on the indexed vectors); pq: "
                                                  "IndexHNSWPQ of pq_m 8-bit codes")
    # IndexHNSWPQ's sub-quantizers (pq only; left out of keys and rows otherwise)
    pq_m: int | None = Field(default=None, ge=1, le=4096, exclude_if=lambda v: v is None,
                             description="pq: the sub-vectors per vector, dividing its dimensions")

    @model_validator(mode="after")
    def _pq_m_with_pq(self) -> FaissHnswParams:
        if (self.precision == "pq") != (self.pq_m is not None):
            raise ValueError("faiss_hnsw takes pq_m exactly with precision pq (IndexHNSWPQ's sub-quantizers)")
        return self


class FaissHnswIndex(FaissOrderedIndex):
    name = "faiss_hnsw"

    def __init__(self, dim: int, metric: str, *, M: int, ef_construction: int, seed: int, search_threads: int = 1,
                 precision: str = "f32", pq_m: int | None = None):
        super().__init__()
        self.dim, self.metric = dim, metric
        self.M, self.ef_construction, self.seed, self.precision = M, ef_construction, seed, precision
        self.pq_m = pq_m

    def _new(self) -> Any:
        import faiss

        faiss_metric = faiss.METRIC_INNER_PRODUCT if self.metric == "ip" else faiss.METRIC_L2
        index: Any
        if self.precision == "f32":
            index = faiss.IndexHNSWFlat(self.dim, self.M, faiss_metric)
        elif self.precision == "pq":
            assert self.pq_m is not None
            if self.dim % self.pq_m:
                raise UserError(f"faiss_hnsw's pq_m must divide the dimensions: {self.pq_m} does not divide {self.dim}")
            # the stubs know only IndexHNSWPQ(d, pq, M); faiss 1.15.1 takes (d, pq_m, M, pq_nbits, metric)
            index = faiss.IndexHNSWPQ(self.dim, self.pq_m, self.M, PQ_NBITS,  # type: ignore[call-arg, arg-type]
                                      faiss_metric)
        else:
            qtype = getattr(faiss.ScalarQuantizer, SQ_TYPES[self.precision])
            index = faiss.IndexHNSWSQ(self.dim, qtype, self.M, faiss_metric)
        index.hnsw.efConstruction = self.ef_construction
        index.hnsw.rng = faiss.RandomGenerator(self.seed)  # type: ignore[attr-defined]
        return index

    def build(self, vectors: np.ndarray, order: np.ndarray) -> None:
        index = self._new()
        if self.precision == "pq":  # the PQ's k-means on the inserted vectors, or a seeded sample (module doc)
            index.train(_training_sample(vectors, order, self.seed))
        elif not index.is_trained:  # QT_8bit: each dimension's min and max over the inserted vectors (module doc)
            index.train(_min_max_rows(vectors, order))
        # rows are gathered a chunk at a time, but still added one per call: a batch `add` would be reordered
        for rows in chunks(order):
            ordered = np.ascontiguousarray(vectors[rows])
            for i in range(len(ordered)):
                index.add(ordered[i : i + 1])
        self._index, self._order = index, np.asarray(order, dtype=np.int64)

    def stored_vectors(self) -> tuple[np.ndarray, np.ndarray]:
        """The rows in the index and their vectors as stored, decoded by faiss (`reconstruct_n`)."""
        assert self._index is not None and self._order is not None, "build or load first"
        return self._order, np.asarray(self._index.reconstruct_n(0, self._index.ntotal), dtype=np.float32)

    def stored_queries(self, queries: np.ndarray) -> np.ndarray:
        """Unchanged: faiss compares float queries with the decoded codes (module doc)."""
        return np.ascontiguousarray(queries, dtype=np.float32)

    def graph(self) -> HnswGraph:
        """The built graph in the engine's form (indexer.science.graph), for the diagnostics."""
        from indexer.backends.faiss_graph import faiss_hnsw_graph

        return faiss_hnsw_graph(self)

    def _search_params(self, k: int, ef: int | None, sel: Any = None) -> Any:
        import faiss

        ef_search = max(ef or k, k)
        if sel is None:
            return faiss.SearchParametersHNSW(efSearch=ef_search)  # type: ignore[attr-defined]
        return faiss.SearchParametersHNSW(efSearch=ef_search, sel=sel)  # type: ignore[attr-defined]

    def distance_computations(self, queries: np.ndarray, k: int, ef: int,
                              allowed: np.ndarray | None = None) -> float:
        """Mean distance computations per query at this ef (under the filter `allowed`, a mask over the
        dataset's rows as in `search_filtered`, when given): the library's own count of the work a search
        does, which unlike QPS does not depend on the machine or its load.

        faiss counts in a process-wide `hnsw_stats` that its OpenMP threads add to, so this search runs
        on one thread (the caller's thread count is restored) and the count is read right after it. A
        faiss HNSW search running concurrently in another Python thread would still add to it. Under a
        filter every neighbour's distance is computed, passing or not (HNSW.cpp search_from_candidates).
        """
        import faiss

        assert self._index is not None, "build or load first"
        if len(queries) == 0:
            raise ValueError("distance_computations needs at least one query")
        bits, sel = (None, None) if allowed is None else self._selector(allowed)
        q = np.ascontiguousarray(queries, dtype=np.float32)
        stats: Any = faiss.cvar.hnsw_stats  # type: ignore[attr-defined]
        threads = faiss.omp_get_max_threads()
        faiss.omp_set_num_threads(1)
        try:
            stats.reset()
            self._index.search(q, k, params=self._search_params(k, ef, sel))
            ndis = int(stats.ndis)
        finally:
            faiss.omp_set_num_threads(threads)
        del bits  # alive through the search: the selector reads it
        return ndis / len(queries)

    def nbytes(self) -> int:
        import faiss

        assert self._index is not None
        return int(faiss.serialize_index(self._index).nbytes)


def _training_sample(vectors: np.ndarray, order: np.ndarray, seed: int) -> np.ndarray:
    """The inserted vectors a PQ trains on: all of them, or PQ_TRAIN of them drawn by `seed` (in row order)."""
    rows = np.asarray(order, dtype=np.int64)
    if len(rows) > PQ_TRAIN:
        rows = np.sort(np.random.default_rng(seed).choice(rows, PQ_TRAIN, replace=False))
    return np.ascontiguousarray(vectors[rows], dtype=np.float32)


def _min_max_rows(vectors: np.ndarray, order: np.ndarray) -> np.ndarray:
    """Two rows, each dimension's minimum then maximum over `vectors[order]`, gathered a chunk at a time: faiss's
    RS_minmax training on them gives what training on every inserted vector would (module doc)."""
    low = np.full(vectors.shape[1], np.inf, dtype=np.float32)
    high = np.full(vectors.shape[1], -np.inf, dtype=np.float32)
    for rows in chunks(order):
        part = vectors[rows]
        np.minimum(low, part.min(axis=0), out=low)
        np.maximum(high, part.max(axis=0), out=high)
    return np.ascontiguousarray(np.stack([low, high]), dtype=np.float32)


BACKEND = Backend(name="faiss_hnsw", params=FaissHnswParams, ef_search=(16,), index=FaissHnswIndex, library=FAISS,
                  build_cost=1.2,
                  capabilities=Capabilities(spaces=frozenset({"ip", "l2"}), order_controlled=True,
                                            deterministic=True, graph=True, seeded=True,
                                            # SearchParametersHNSW(sel=IDSelectorBitmap): faiss/impl/HNSW.cpp
                                            # v1.15.0 search_from_candidates, lines 913-981 (module doc)
                                            filtering="in_graph",
                                            # Index::remove_ids throws: faiss/Index.cpp v1.15.0 lines 56-59
                                            deletes="none"))
