"""An HNSW graph as every reader fills it (hnswlib's file, faiss's arrays): the vocabulary the backends write
and the diagnostics (indexer.science.graph) read."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp


@dataclass(frozen=True, eq=False, kw_only=True)
class HnswGraph:
    """An HNSW graph over internal ids, as every reader fills it.

    `levels` follows hnswlib: a node's top level, 0 for a node on layer 0 only (faiss counts levels
    from 1; its reader converts). `upper[l - 1]` holds level l's out-links of the nodes on it.
    """

    layer0: sp.csr_matrix  # (n, n): row i = the layer-0 out-links of internal node i
    upper: tuple[dict[int, np.ndarray], ...]  # upper[l - 1][node] = node's out-links on level l >= 1
    levels: np.ndarray  # (n,) int64 top level of each node
    entry_point: int
    labels: np.ndarray  # (n,) int64 internal node -> dataset row

    def __post_init__(self) -> None:
        n = len(self.levels)
        if self.layer0.shape != (n, n) or len(self.labels) != n:
            raise ValueError(f"layer0 {self.layer0.shape}, {n} levels and {len(self.labels)} labels disagree")
        if n == 0 or not 0 <= self.entry_point < n:
            raise ValueError(f"entry point {self.entry_point} is not a node of a {n}-node graph")
        if len(self.upper) != int(self.levels.max()):
            raise ValueError(f"{len(self.upper)} upper levels for a top level of {int(self.levels.max())}")
        if len(np.unique(self.labels)) != n:
            raise ValueError("labels must name each dataset row once")

    @property
    def n(self) -> int:
        return int(len(self.levels))

    @property
    def max_level(self) -> int:
        return len(self.upper)

    def start_nodes(self) -> np.ndarray:
        """Every node a greedy descent can end on, so every layer-0 start: nodes with a level >= 1,
        and the entry point (the only start of a graph with no upper level)."""
        return np.union1d(np.flatnonzero(self.levels >= 1), [self.entry_point]).astype(np.int64)
