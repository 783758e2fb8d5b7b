"""Exact (brute-force) search with faiss IndexFlat: the reference every HNSW row is measured against."""

from __future__ import annotations

import faiss
import numpy as np

from indexer.backends.faiss_base import FaissOrderedIndex


class ExactIndex(FaissOrderedIndex):
    name = "exact"

    def __init__(self, dim: int, metric: str, *, seed: int = 0, search_threads: int = 1, **_: object):
        super().__init__()
        self.dim, self.metric = dim, metric

    def build(self, vectors: np.ndarray, order: np.ndarray) -> None:
        index = faiss.IndexFlatIP(self.dim) if self.metric == "ip" else faiss.IndexFlatL2(self.dim)
        index.add(np.ascontiguousarray(vectors[order]))
        self._index, self._order = index, np.asarray(order, dtype=np.int64)

    def nbytes(self) -> int:
        assert self._index is not None
        return int(self._index.ntotal * self.dim * 4)
