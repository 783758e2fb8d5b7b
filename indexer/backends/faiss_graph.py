"""The graph inside a faiss IndexHNSW(Flat), read into `indexer.science.graph.HnswGraph`.

faiss keeps every node's links for all its levels in one flat array: node i's level-l links sit at
`neighbors[offsets[i] + cum_nneighbor_per_level[l] : offsets[i] + cum_nneighbor_per_level[l + 1]]`,
padded with -1. Its search stops at a list's first -1, so the links read here are those before it.
faiss counts a node's levels from 1 (`levels[i]` = how many levels node i is on); the graph keeps
hnswlib's top level (levels - 1). Internal ids are insertion positions: `order[i]` is the dataset row
of internal id i (`FaissOrderedIndex._order`). faiss is imported on first use, as in the backends.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp

from indexer.backends.faiss_base import FaissOrderedIndex
from indexer.model.graph import HnswGraph


def read_faiss_graph(index: Any, order: np.ndarray) -> HnswGraph:
    """The graph of a built faiss IndexHNSW (`index.hnsw`), its nodes labelled through `order`."""
    import faiss

    hnsw = index.hnsw
    n = int(index.ntotal)
    if n == 0:
        raise ValueError("an empty faiss index has no graph")
    labels = np.asarray(order, dtype=np.int64)
    if len(labels) != n:
        raise ValueError(f"{len(labels)} order entries for {n} indexed points")
    neighbors = faiss.vector_to_array(hnsw.neighbors).astype(np.int64)
    offsets = faiss.vector_to_array(hnsw.offsets).astype(np.int64)[:n]
    cum = faiss.vector_to_array(hnsw.cum_nneighbor_per_level).astype(np.int64)
    levels = faiss.vector_to_array(hnsw.levels).astype(np.int64)[:n] - 1
    links0 = _links(neighbors, offsets + cum[0], int(cum[1] - cum[0]))
    counts = (links0 >= 0).sum(axis=1)
    layer0 = sp.csr_matrix(
        (np.ones(int(counts.sum()), dtype=np.int32), links0[links0 >= 0],
         np.concatenate([[0], np.cumsum(counts)])),
        shape=(n, n),
    )
    upper = []
    for level in range(1, int(levels.max()) + 1):
        nodes = np.flatnonzero(levels >= level)
        block = _links(neighbors, offsets[nodes] + cum[level], int(cum[level + 1] - cum[level]))
        upper.append({int(v): row[row >= 0] for v, row in zip(nodes, block, strict=True)})
    return HnswGraph(layer0=layer0, upper=tuple(upper), levels=levels, entry_point=int(hnsw.entry_point),
                     labels=labels)


def faiss_hnsw_graph(index: FaissOrderedIndex) -> HnswGraph:
    """The graph of a built `FaissHnswIndex` (or any ordered faiss index over an IndexHNSW)."""
    assert index._index is not None and index._order is not None, "build or load first"
    return read_faiss_graph(index._index, index._order)


def _links(neighbors: np.ndarray, starts: np.ndarray, width: int) -> np.ndarray:
    """(len(starts), width) link slots, every slot from a list's first -1 on set to -1."""
    block = neighbors[starts[:, None] + np.arange(width)[None, :]]
    return np.where(np.cumprod(block >= 0, axis=1).astype(bool), block, -1)
