"""faiss IndexHNSWFlat behind the VectorIndex protocol, and its declaration as a backend.

faiss reorders every batch passed to `add` (by level, then a seeded shuffle), so to keep the
insertion order each vector goes in its own `add` call. Level assignment draws from the index's own
generator, seeded from the spec. efSearch is passed per call (SearchParametersHNSW), which is
thread-safe, so no per-request state leaks between concurrent searches.

Filtered search (faiss_base) passes the selector in the same SearchParametersHNSW. faiss 1.15's layer-0
search (`search_from_candidates`, faiss/impl/HNSW.cpp at v1.15.0, lines 913-981) adds a neighbour to the
results only `if (!sel || sel->is_member(idx))` but pushes every neighbour onto its candidates: points that
do not pass are traversed, never returned (in_graph). The upper-layer descent ignores the selector.

It has no delete: IndexHNSW does not override `Index::remove_ids`, which throws "remove_ids not implemented
for this type of index" (faiss/Index.cpp at v1.15.0, lines 56-59). In a runbook it runs only as the rebuild
baseline (Capabilities.deletes "none"): a fresh index over the points in the index at every checkpoint.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
from pydantic import Field

from indexer.backends.base import chunks
from indexer.backends.declaration import Backend, Capabilities
from indexer.backends.faiss_base import FAISS, FaissOrderedIndex
from indexer.backends.hnswlib_index import HnswlibParams

if TYPE_CHECKING:
    from indexer.model.graph import HnswGraph


class FaissHnswParams(HnswlibParams):
    """The same graph parameters as hnswlib's, with faiss's own default efConstruction."""

    ef_construction: int = Field(default=40, ge=1)


class FaissHnswIndex(FaissOrderedIndex):
    name = "faiss_hnsw"

    def __init__(self, dim: int, metric: str, *, M: int, ef_construction: int, seed: int, search_threads: int = 1):
        super().__init__()
        self.dim, self.metric = dim, metric
        self.M, self.ef_construction, self.seed = M, ef_construction, seed

    def _new(self) -> Any:
        import faiss

        faiss_metric = faiss.METRIC_INNER_PRODUCT if self.metric == "ip" else faiss.METRIC_L2
        index = faiss.IndexHNSWFlat(self.dim, self.M, faiss_metric)
        index.hnsw.efConstruction = self.ef_construction
        index.hnsw.rng = faiss.RandomGenerator(self.seed)  # type: ignore[attr-defined]
        return index

    def build(self, vectors: np.ndarray, order: np.ndarray) -> None:
        index = self._new()
        # rows are gathered a chunk at a time, but still added one per call: a batch `add` would be reordered
        for rows in chunks(order):
            ordered = np.ascontiguousarray(vectors[rows])
            for i in range(len(ordered)):
                index.add(ordered[i : i + 1])
        self._index, self._order = index, np.asarray(order, dtype=np.int64)

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


BACKEND = Backend(name="faiss_hnsw", params=FaissHnswParams, ef_search=(16,), index=FaissHnswIndex, library=FAISS,
                  build_cost=1.2,
                  capabilities=Capabilities(spaces=frozenset({"ip", "l2"}), order_controlled=True,
                                            deterministic=True, graph=True, seeded=True,
                                            # SearchParametersHNSW(sel=IDSelectorBitmap): faiss/impl/HNSW.cpp
                                            # v1.15.0 search_from_candidates, lines 913-981 (module doc)
                                            filtering="in_graph",
                                            # Index::remove_ids throws: faiss/Index.cpp v1.15.0 lines 56-59
                                            deletes="none"))
