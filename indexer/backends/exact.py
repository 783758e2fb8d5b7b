"""Exact (brute-force) search with faiss IndexFlat: the reference every HNSW row is measured against.

It has no build parameters and no search parameter: one search per cell, recall 1 up to ties.

Filtered search (faiss_base) passes the selector as `SearchParameters(sel=...)`. IndexFlat::search hands it
to knn_L2sqr / knn_inner_product (faiss/IndexFlat.cpp at v1.15.0, lines 36-45), which with a selector take
the sequential scan that skips a point before computing its distance (`if (!res.is_in_selection(j))
continue;`, faiss/utils/distances.cpp lines 313, 352, 566, 585): brute force over the passing points (pre).

Deletes (base.Mutable, for a runbook) call `remove_ids` with an IDSelectorArray of the points' internal ids:
IndexFlatCodes::remove_ids (faiss/IndexFlatCodes.cpp at v1.15.0, lines 56-76) moves every kept vector down
over the removed ones and shrinks the storage (`ntotal = j; codes.resize(ntotal * code_size)`): a compaction,
after which no search can meet a deleted point. The `order` array is compacted alike, so internal id i still
holds row order[i]; a deleted id may be inserted again (appended at the end).
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

    reuses_ids = True
    delete_mode = "compact"

    def insert(self, vectors: np.ndarray, ids: np.ndarray) -> None:
        """Append `vectors` under `ids` (an empty index is made first)."""
        if self._index is None:
            self.build(vectors, np.zeros(0, dtype=np.int64))
        for at in chunks(np.arange(len(ids))):
            self._index.add(np.ascontiguousarray(vectors[at]))
        self._order = np.concatenate([self._order, np.asarray(ids, dtype=np.int64)])

    def delete(self, ids: np.ndarray) -> None:
        """remove_ids over their internal ids: the storage is compacted (see the module's doc)."""
        import faiss

        assert self._index is not None and self._order is not None, "build or insert first"
        gone = np.isin(self._order, np.asarray(ids, dtype=np.int64))
        internal = np.ascontiguousarray(np.flatnonzero(gone).astype(np.int64))
        removed = self._index.remove_ids(faiss.IDSelectorArray(len(internal), faiss.swig_ptr(internal)))
        if removed != len(internal):
            raise RuntimeError(f"faiss removed {removed} of {len(internal)} points")
        self._order = self._order[~gone]

    def nbytes(self) -> int:
        assert self._index is not None
        return int(self._index.ntotal * self.dim * 4)


# it inserts in the order given, though no order can change an exact answer
BACKEND = Backend(name="exact", params=BuildParams, ef_search=None, index=ExactIndex, library=FAISS, capabilities=Capabilities(
    spaces=frozenset({"ip", "l2"}), order_controlled=True, deterministic=True, graph=False, seeded=False,
    # SearchParameters(sel=IDSelectorBitmap): faiss/utils/distances.cpp v1.15.0 skips non-members before any
    # distance is computed (module doc)
    filtering="pre",
    # remove_ids: faiss/IndexFlatCodes.cpp v1.15.0 lines 56-76 compacts the storage (module doc)
    deletes="compact"))
