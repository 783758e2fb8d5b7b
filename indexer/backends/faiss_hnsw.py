"""faiss IndexHNSWFlat behind the VectorIndex protocol.

faiss reorders every batch passed to `add` (by level, then a seeded shuffle), so to keep the
insertion order each vector goes in its own `add` call. faiss numbers points by insertion, so the
order array maps internal ids back to the dataset's rows. efSearch is passed per call
(SearchParametersHNSW), which is thread-safe.
"""

from __future__ import annotations

from pathlib import Path

import faiss
import numpy as np


class FaissHnswIndex:
    name = "faiss_hnsw"

    def __init__(self, dim: int, metric: str, *, M: int, ef_construction: int, seed: int, search_threads: int = 1):
        self.dim, self.metric = dim, metric
        self.M, self.ef_construction, self.seed = M, ef_construction, seed
        self._index: faiss.IndexHNSWFlat | None = None
        self._order: np.ndarray | None = None

    def _new(self) -> faiss.IndexHNSWFlat:
        faiss_metric = faiss.METRIC_INNER_PRODUCT if self.metric == "ip" else faiss.METRIC_L2
        index = faiss.IndexHNSWFlat(self.dim, self.M, faiss_metric)
        index.hnsw.efConstruction = self.ef_construction
        # level assignment draws from this generator: seed it so the graph follows the spec's seed
        index.hnsw.rng = faiss.RandomGenerator(self.seed)
        return index

    def build(self, vectors: np.ndarray, order: np.ndarray) -> None:
        index = self._new()
        ordered = np.ascontiguousarray(vectors[order])
        for i in range(len(ordered)):
            index.add(ordered[i : i + 1])
        self._index, self._order = index, np.asarray(order, dtype=np.int64)

    def search(self, queries: np.ndarray, k: int, ef: int | None) -> tuple[np.ndarray, np.ndarray]:
        assert self._index is not None and self._order is not None, "build or load first"
        params = faiss.SearchParametersHNSW(efSearch=max(ef or k, k))
        dist, internal = self._index.search(queries, k, params=params)
        ids = np.where(internal >= 0, self._order[np.maximum(internal, 0)], -1)
        return ids.astype(np.int64), dist.astype(np.float32)

    def nbytes(self) -> int:
        assert self._index is not None
        return int(faiss.serialize_index(self._index).nbytes)

    def save(self, path: Path) -> None:
        assert self._index is not None and self._order is not None
        faiss.write_index(self._index, str(path))
        np.save(str(path) + ".order.npy", self._order)

    def load(self, path: Path, n: int) -> None:
        self._index = faiss.read_index(str(path))
        self._order = np.load(str(path) + ".order.npy")
