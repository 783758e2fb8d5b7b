"""The graph inside an hnswlib index, read from its pickled state, and what a search can reach in it.

hnswlib's `knn_query` raises when any query finds fewer than k points, and hnswlib 0.8.0 leaks its
result buffers on every raised call, so the backend must never ask for more than a query can reach.
A search descends the upper layers greedily to a layer-0 start node s, then (with ef >= k) explores
layer 0 until it holds ef points or has seen every point reachable from s: it returns
min(k, |R(s)|) points, where R(s) is the set of nodes reachable from s along layer-0 links.

`ReachableCounts` answers two questions from the graph alone:
- `safe_k`: the least |R(s)| over every node a search can start layer 0 from (nodes with a level
  >= 1, or the entry point): any k up to it is answered in full by every query;
- `for_queries`: per query, the start node the greedy descent reaches (replayed in float64, the
  same comparisons as hnswlib's `searchKnn`) and |R| of it; a query whose descent meets a near-tie,
  where float32 rounding could send hnswlib elsewhere, gets `safe_k` instead.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.sparse as sp
from scipy.sparse.csgraph import breadth_first_order, connected_components

_COUNT_MASK = 0xFFFF  # hnswlib keeps a link list's length in the low 16 bits of its header word
_TIE = 1e-5  # relative gap under which float32 rounding might reverse a comparison


@dataclass(frozen=True)
class HnswGraph:
    """Layer 0 as a CSR adjacency over internal ids; upper layers kept raw for the descent."""

    layer0: sp.csr_matrix  # (n, n) directed: row i links to its layer-0 neighbours
    levels: np.ndarray  # (n,) top level of each internal id
    labels: np.ndarray  # (n,) internal id -> label (the dataset row)
    entry_point: int
    max_level: int
    space: str  # "ip" or "l2", as hnswlib computes distances
    _upper_words: np.ndarray = field(repr=False)  # link_lists as uint32 words
    _upper_offset: np.ndarray = field(repr=False)  # (n,) word offset of each node's upper lists, -1 if none
    _words_per_level: int = field(repr=False)
    # the descent only visits nodes with a level >= 1 (and the entry point, which has the top level):
    # their vectors alone are kept, about n/M of them, not a second copy of the whole index
    _vectors: np.ndarray = field(repr=False)  # (upper nodes, dim) float32 as stored by hnswlib
    _vector_row: np.ndarray = field(repr=False)  # (n,) node -> row of _vectors, -1 for layer-0-only nodes

    @property
    def n(self) -> int:
        return int(len(self.levels))

    def upper_neighbors(self, node: int, level: int) -> np.ndarray:
        start = int(self._upper_offset[node]) + (level - 1) * self._words_per_level
        count = int(self._upper_words[start]) & _COUNT_MASK
        return self._upper_words[start + 1 : start + 1 + count].astype(np.int64)

    def start_nodes(self) -> np.ndarray:
        """Every node the upper-layer descent can end on: layer 0 search starts there."""
        if self.max_level == 0:
            return np.array([self.entry_point], dtype=np.int64)
        return np.flatnonzero(self.levels >= 1).astype(np.int64)

    def distances(self, query: np.ndarray, nodes: np.ndarray) -> np.ndarray:
        v = self._vectors[self._vector_row[nodes]].astype(np.float64)
        q = query.astype(np.float64)
        if self.space == "ip":
            return np.asarray(1.0 - v @ q, dtype=np.float64)
        diff = v - q
        return np.asarray(np.einsum("ij,ij->i", diff, diff), dtype=np.float64)

    def descend(self, query: np.ndarray) -> tuple[int, bool]:
        """The layer-0 start node of hnswlib's greedy descent, and whether a near-tie made it uncertain.

        hnswlib scans a node's list and moves to each candidate strictly closer than the best so far,
        which ends on the first occurrence of the list's minimum when that minimum beats the current.
        """
        current = self.entry_point
        cur = float(self.distances(query, np.array([current]))[0])
        uncertain = False
        for level in range(self.max_level, 0, -1):
            while True:
                nbrs = self.upper_neighbors(current, level)
                if len(nbrs) == 0:
                    break
                d = self.distances(query, nbrs)
                best = int(np.argmin(d))
                scale = max(abs(cur), float(np.abs(d).max()), 1e-12)
                gaps = np.abs(d - d[best])
                gaps[best] = np.inf
                if abs(d[best] - cur) <= _TIE * scale or gaps.min() <= _TIE * scale:
                    uncertain = True
                if d[best] < cur:
                    current, cur = int(nbrs[best]), float(d[best])
                else:
                    break
        return current, uncertain


def read_graph(state: dict[str, Any], space: str) -> HnswGraph:
    """Parse `hnswlib.Index.__getstate__()[0]` (hnswlib 0.8.0's serialisation, version 1)."""
    if state.get("ser_version") != 1:
        raise ValueError(f"unsupported hnswlib state version {state.get('ser_version')}")
    n = int(state["cur_element_count"])
    size = int(state["size_data_per_element"])
    max_m0 = int(state["max_M0"])
    level0 = np.asarray(state["data_level0"]).view(np.uint8)[: n * size].reshape(n, size)
    header = int(state["offset_level0"])
    words = np.ascontiguousarray(level0[:, header : header + 4 * (1 + max_m0)]).view(np.uint32)
    counts = (words[:, 0] & _COUNT_MASK).astype(np.int64)
    rows = np.repeat(np.arange(n, dtype=np.int64), counts)
    mask = np.arange(max_m0)[None, :] < counts[:, None]
    cols = words[:, 1:][mask].astype(np.int64)
    layer0 = sp.csr_matrix((np.ones(len(cols), dtype=np.int32), (rows, cols)), shape=(n, n))
    dim = int(state["dim"])
    data_at = int(state["offset_data"])
    levels = np.asarray(state["element_levels"], dtype=np.int64)[:n]
    entry_point = int(state["enterpoint_node"])
    descended = np.union1d(np.flatnonzero(levels >= 1), [entry_point]).astype(np.int64)
    vector_row = np.full(n, -1, dtype=np.int64)
    vector_row[descended] = np.arange(len(descended))
    vectors = np.ascontiguousarray(level0[descended, data_at : data_at + 4 * dim]).view(np.float32)
    vectors = vectors.reshape(len(descended), dim)
    label_at = int(state["label_offset"])
    labels = np.ascontiguousarray(level0[:, label_at : label_at + 8]).view(np.uint64).reshape(n).astype(np.int64)
    per_level = int(state["size_links_per_element"]) // 4
    offsets = np.full(n, -1, dtype=np.int64)
    has_upper = levels > 0
    sizes = np.where(has_upper, levels * per_level, 0)
    offsets[has_upper] = (np.cumsum(sizes) - sizes)[has_upper]
    upper = np.asarray(state["link_lists"]).view(np.uint8).view(np.uint32)
    return HnswGraph(
        layer0=layer0, levels=levels, labels=labels, entry_point=entry_point,
        max_level=int(state["max_level"]), space=space, _upper_words=upper, _upper_offset=offsets,
        _words_per_level=per_level, _vectors=vectors, _vector_row=vector_row,
    )


class ReachableCounts:
    """|R(s)| for layer-0 start nodes, through the graph's strongly connected components."""

    def __init__(self, graph: HnswGraph) -> None:
        self.graph = graph
        n_comp, comp = connected_components(graph.layer0, directed=True, connection="strong")
        self._comp = comp
        self._comp_size = np.bincount(comp, minlength=n_comp)
        coo = graph.layer0.tocoo()
        between = comp[coo.row] != comp[coo.col]
        dag = sp.csr_matrix(
            (np.ones(int(between.sum()), dtype=np.int32), (comp[coo.row[between]], comp[coo.col[between]])),
            shape=(n_comp, n_comp),
        )
        self._dag = dag
        self._memo: dict[int, int] = {}
        self.safe_k = self._least_over_starts(graph.start_nodes())

    def of_node(self, node: int) -> int:
        """How many nodes a layer-0 search that starts at `node` can ever see (itself included)."""
        return self._count_component(int(self._comp[node]))

    def _least_over_starts(self, starts: np.ndarray) -> int:
        # R(a) contains R(b) whenever a reaches b, so the least count lies on a component that holds
        # start nodes and reaches no other such component: only those are counted.
        is_start = np.zeros(len(self._comp_size), dtype=bool)
        is_start[self._comp[starts]] = True
        reaches_start = np.zeros(len(self._comp_size), dtype=bool)
        indptr, children = self._dag.indptr, self._dag.indices
        for c in reversed(_topological_order(self._dag)):
            kids = children[indptr[c] : indptr[c + 1]]
            reaches_start[c] = bool((is_start[kids] | reaches_start[kids]).any())
        minimal = np.flatnonzero(is_start & ~reaches_start)
        return min(self._count_component(int(c)) for c in minimal)

    def _count_component(self, c: int) -> int:
        if c not in self._memo:
            reached = breadth_first_order(self._dag, c, directed=True, return_predecessors=False)
            self._memo[c] = int(self._comp_size[reached].sum())
        return self._memo[c]

    def for_queries(self, queries: np.ndarray, k: int) -> np.ndarray:
        """Per query, the number of results hnswlib can return for k: min(k, |R(start)|)."""
        out = np.empty(len(queries), dtype=np.int64)
        for i, q in enumerate(queries):
            start, uncertain = self.graph.descend(q)
            reach = self.safe_k if uncertain else self.of_node(start)
            out[i] = min(k, reach)
        return out


def _topological_order(dag: sp.csr_matrix) -> list[int]:
    """Kahn's algorithm over a DAG (the condensation of a graph into its strong components)."""
    indegree = np.bincount(dag.indices, minlength=dag.shape[0])
    ready = list(np.flatnonzero(indegree == 0))
    order: list[int] = []
    while ready:
        c = int(ready.pop())
        order.append(c)
        for child in dag.indices[dag.indptr[c] : dag.indptr[c + 1]]:
            indegree[child] -= 1
            if indegree[child] == 0:
                ready.append(child)
    return order
