"""What the faiss-backed indexes share: faiss numbers points by insertion, so an `order` array maps
internal ids back to dataset rows, saved beside the index. faiss is imported on first use: the spec
imports the faiss backends' files for their declarations alone.

Filtered search passes faiss an IDSelector in the search parameters (`SearchParameters.sel`, "if non-null,
only these IDs will be considered during search", faiss/swigfaiss.py of faiss-cpu 1.15.1). The selector
speaks faiss's ids, the internal (insertion) ones, not dataset rows: internal id i holds row `order[i]`, so
the mask is read through `order` into an `IDSelectorBitmap` over internal ids (bit i%8 of byte i/8, numpy's
little-endian packbits).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from indexer.backends.base import passing
from indexer.backends.declaration import Library

FAISS = Library(distribution="faiss-cpu", module="faiss")


class FaissOrderedIndex:
    def __init__(self) -> None:
        self._index: Any = None  # a faiss index; its SWIG stubs are incomplete
        self._order: np.ndarray | None = None

    def _search_params(self, k: int, ef: int | None, sel: Any = None) -> Any:
        """The search's parameters: with a selector, plain SearchParameters carrying it; else none."""
        if sel is None:
            return None
        import faiss

        return faiss.SearchParameters(sel=sel)  # type: ignore[call-arg]

    def search(self, queries: np.ndarray, k: int, ef: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        assert self._index is not None and self._order is not None, "build or load first"
        params = self._search_params(k, ef)
        dist, internal = self._index.search(queries, k, params=params) if params else self._index.search(queries, k)
        ids = np.where(internal >= 0, self._order[np.maximum(internal, 0)], -1)
        return ids.astype(np.int64), dist.astype(np.float32)

    def search_filtered(self, queries: np.ndarray, k: int, ef: int | None,
                        allowed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """`search` with the mask as faiss's own IDSelectorBitmap over internal ids (see the module's doc).

        faiss pads a row it cannot fill with label -1 (and distance +-inf), which comes back as -1 and NaN.
        """
        assert self._index is not None and self._order is not None, "build or load first"
        bits, sel = self._selector(allowed)  # `bits` held here: the selector keeps no reference to it
        q = np.ascontiguousarray(queries, dtype=np.float32)
        dist, internal = self._index.search(q, k, params=self._search_params(k, ef, sel))
        del bits
        found = internal >= 0
        ids = np.where(found, self._order[np.maximum(internal, 0)], -1).astype(np.int64)
        return ids, np.where(found, dist, np.nan).astype(np.float32)

    def _selector(self, allowed: np.ndarray) -> tuple[np.ndarray, Any]:
        """The mask as an IDSelectorBitmap over internal ids, and the bytes it reads: the selector holds no
        reference of its own, so the caller keeps them alive through the search."""
        import faiss

        assert self._order is not None, "build or load first"
        bits = np.packbits(passing(allowed, self._order), bitorder="little")  # internal id i -> row order[i]
        return bits, faiss.IDSelectorBitmap(len(bits), faiss.swig_ptr(bits))

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
