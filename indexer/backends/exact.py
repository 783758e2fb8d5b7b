"""Exact (brute-force) search with faiss IndexFlat: the reference every HNSW row is measured against.

It has no build parameters and no search parameter: one search per cell, recall 1 up to ties.

Filtered search (faiss_base) passes the selector as `SearchParameters(sel=...)`. IndexFlat::search hands it
to knn_L2sqr / knn_inner_product (faiss/IndexFlat.cpp at v1.15.0, lines 36-45), which with a selector take
the sequential scan that skips a point before computing its distance (`if (!res.is_in_selection(j))
continue;`, faiss/utils/distances.cpp lines 313, 352, 566, 585): brute force over the passing points (pre).
"""

from __future__ import annotations

import numpy as np

from indexer.backends.base import chunks
from indexer.backends.declaration import Backend, BuildParams, Capabilities
from indexer.backends.faiss_base import FAISS, FaissOrderedIndex


class ExactIndex(FaissOrderedIndex):
    name = "exact"

    def __init__(self, dim: int, metric: str, *, seed: int = 0, search_threads: int = 1, **_: object):
        super().__init__()
        self.dim, self.metric = dim, metric

    def build(self, vectors: np.ndarray, order: np.ndarray) -> None:
        import faiss

        index = faiss.IndexFlatIP(self.dim) if self.metric == "ip" else faiss.IndexFlatL2(self.dim)
        for rows in chunks(order):  # IndexFlat appends each chunk's vectors after the last
            index.add(np.ascontiguousarray(vectors[rows]))
        self._index, self._order = index, np.asarray(order, dtype=np.int64)

    def nbytes(self) -> int:
        assert self._index is not None
        return int(self._index.ntotal * self.dim * 4)


# it inserts in the order given, though no order can change an exact answer
BACKEND = Backend(name="exact", params=BuildParams, ef_search=None, index=ExactIndex, library=FAISS, capabilities=Capabilities(
    spaces=frozenset({"ip", "l2"}), order_controlled=True, deterministic=True, graph=False, seeded=False,
    # SearchParameters(sel=IDSelectorBitmap): faiss/utils/distances.cpp v1.15.0 skips non-members before any
    # distance is computed (module doc)
    filtering="pre"))
