"""Exact (brute-force) search with faiss IndexFlat: the reference every HNSW row is measured against."""

from __future__ import annotations

from pathlib import Path

import faiss
import numpy as np


class ExactIndex:
    name = "exact"

    def __init__(self, dim: int, metric: str, *, seed: int = 0, search_threads: int = 1, **_: object):
        self.dim, self.metric = dim, metric
        self._index: faiss.IndexFlat | None = None
        self._order: np.ndarray | None = None

    def build(self, vectors: np.ndarray, order: np.ndarray) -> None:
        index = faiss.IndexFlatIP(self.dim) if self.metric == "ip" else faiss.IndexFlatL2(self.dim)
        index.add(np.ascontiguousarray(vectors[order]))
        self._index, self._order = index, np.asarray(order, dtype=np.int64)

    def search(self, queries: np.ndarray, k: int, ef: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        assert self._index is not None and self._order is not None, "build or load first"
        dist, internal = self._index.search(queries, k)
        ids = np.where(internal >= 0, self._order[np.maximum(internal, 0)], -1)
        return ids.astype(np.int64), dist.astype(np.float32)

    def nbytes(self) -> int:
        assert self._index is not None
        return int(self._index.ntotal * self.dim * 4)

    def save(self, path: Path) -> None:
        assert self._index is not None and self._order is not None
        faiss.write_index(self._index, str(path))
        np.save(str(path) + ".order.npy", self._order)

    def load(self, path: Path, n: int) -> None:
        self._index = faiss.read_index(str(path))
        self._order = np.load(str(path) + ".order.npy")
