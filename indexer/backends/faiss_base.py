"""What the faiss-backed indexes share: faiss numbers points by insertion, so an `order` array maps
internal ids back to dataset rows, saved beside the index. faiss is imported on first use: the spec
imports the faiss backends' files for their declarations alone."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from indexer.backends.declaration import Library

FAISS = Library(distribution="faiss-cpu", module="faiss")


class FaissOrderedIndex:
    def __init__(self) -> None:
        self._index: Any = None  # a faiss index; its SWIG stubs are incomplete
        self._order: np.ndarray | None = None

    def _search_params(self, k: int, ef: int | None) -> Any:
        return None

    def search(self, queries: np.ndarray, k: int, ef: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        assert self._index is not None and self._order is not None, "build or load first"
        params = self._search_params(k, ef)
        dist, internal = self._index.search(queries, k, params=params) if params else self._index.search(queries, k)
        ids = np.where(internal >= 0, self._order[np.maximum(internal, 0)], -1)
        return ids.astype(np.int64), dist.astype(np.float32)

    def save(self, path: Path) -> None:
        import faiss

        assert self._index is not None and self._order is not None
        faiss.write_index(self._index, str(path))
        np.save(str(path) + ".order.npy", self._order)

    def load(self, path: Path, n: int) -> None:
        import faiss

        self._index = faiss.read_index(str(path))
        self._order = np.load(str(path) + ".order.npy", allow_pickle=False)

    def close(self) -> None:
        """Nothing outside this process's memory."""
