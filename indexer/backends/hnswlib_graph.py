"""The graph inside an hnswlib index, read from its saved file (or pickled state), and what a search
can reach in it.

Reading: `read_graph_file` reads the file `save_index` writes with plain buffered reads, level 0 in
blocks of `BLOCK_BYTES`, never whole and never mmap-ed. Why: a cell's memory is measured as PSS, and
both a whole-index copy (what `__getstate__` makes, vectors included) and mapped file pages count in
it, so either would add one index size to a cell's peak. Only what `HnswGraph` holds is kept: layer-0
links (one int32 CSR, no (row, col) pairs over all edges), levels, labels, the upper link lists and
the vectors of the nodes the descent visits. `read_graph` parses a `__getstate__` state through the
same code, for callers that already hold one.

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

import io
import os
import struct
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import scipy.sparse as sp
from scipy.sparse.csgraph import breadth_first_order, connected_components

from indexer.model.graph import HnswGraph as ModelGraph

_COUNT_MASK = 0xFFFF  # hnswlib keeps a link list's length in the low 16 bits of its header word
# and the deleted mark in bit 0 of its third byte: `DELETE_MARK = 0x01` set at `get_linklist0(id) + 2`
# (hnswlib 0.8.0 hnswalg.h:21, markDeletedInternal 873-889, isMarkedDeleted 934-937)
_DELETED_BIT = 16
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
    # (n,) bool: marked deleted (`mark_deleted`): traversed by a search, never returned (None: read before marks)
    deleted: np.ndarray | None = None

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


def read_graph_file(path: str | os.PathLike[str], space: str) -> HnswGraph:
    """Read the graph from a file `hnswlib.Index.save_index` wrote (hnswlib 0.8.0 `saveIndex`).

    The link lists at the end of the file are read first, in one piece (4 bytes a node beside the
    upper lists the graph keeps anyway): they give the levels, so which vectors the descent needs.
    Level 0 is then read `BLOCK_BYTES` at a time, never whole and never mapped.
    """
    with open(path, "rb") as f:
        layout = _read_header(f)
        level0_end = _FILE_HEADER.size + layout.n * layout.row_bytes
        tail_bytes = os.fstat(f.fileno()).st_size - level0_end
        if tail_bytes < 4 * layout.n or tail_bytes % 4:
            raise ValueError(f"{path}: {tail_bytes} bytes after level 0 cannot hold {layout.n} link lists")
        f.seek(level0_end)
        levels, upper = _split_link_lists(_read_array(f, tail_bytes // 4, np.uint32), layout)
        f.seek(_FILE_HEADER.size)
        return _assemble(layout, _file_blocks(f, layout), levels, upper, space)


def read_graph(state: dict[str, Any], space: str) -> HnswGraph:
    """Parse `hnswlib.Index.__getstate__()[0]` (hnswlib 0.8.0's serialisation, version 1).

    The state already holds a copy of all of level 0: prefer `read_graph_file` for a live index.
    """
    if state.get("ser_version") != 1:
        raise ValueError(f"unsupported hnswlib state version {state.get('ser_version')}")
    layout = _Layout(
        n=int(state["cur_element_count"]), row_bytes=int(state["size_data_per_element"]),
        links_at=int(state["offset_level0"]), data_at=int(state["offset_data"]),
        label_at=int(state["label_offset"]), max_m0=int(state["max_M0"]),
        level_bytes=int(state["size_links_per_element"]), max_level=int(state["max_level"]),
        entry_point=int(state["enterpoint_node"]),
    )
    level0 = np.asarray(state["data_level0"]).view(np.uint8)[: layout.n * layout.row_bytes]
    level0 = level0.reshape(layout.n, layout.row_bytes)
    blocks = (level0[r0:r1] for r0, r1 in _row_blocks(layout.n, _rows_per_block(layout.row_bytes)))
    levels = np.asarray(state["element_levels"], dtype=np.int64)[: layout.n]
    upper = np.asarray(state["link_lists"]).view(np.uint8).view(np.uint32)
    return _assemble(layout, blocks, levels, upper, space)


# --- the saved file, and what the two readers share -------------------------------------------------

BLOCK_BYTES = 2 << 20  # bytes of level-0 rows read at a time (and the scale of every other block here)

# saveIndex's header: offsetLevel0, max_elements, cur_element_count, size_data_per_element, label_offset,
# offsetData (size_t); maxlevel (int); enterpoint_node (uint32); maxM, maxM0, M (size_t); mult (double);
# ef_construction (size_t). Then level 0 (cur_element_count rows), then per element a uint32 byte count
# and that many bytes of upper link lists.
_FILE_HEADER = struct.Struct("<6QiI3QdQ")
_PAD = np.uint32(0xFFFFFFFF)  # sorts after every node id


@dataclass(frozen=True)
class _Layout:
    """Where a level-0 row keeps its links, vector and label, and the sizes the graph needs."""

    n: int
    row_bytes: int  # size_data_per_element
    links_at: int  # offsetLevel0: the count word, then max_m0 link slots
    data_at: int
    label_at: int
    max_m0: int
    level_bytes: int  # size_links_per_element: one upper level's count word and maxM slots
    max_level: int
    entry_point: int

    @property
    def dim(self) -> int:
        return (self.label_at - self.data_at) // 4

    def check(self) -> None:
        """Rows are read as uint32 words: every field must sit on a 4-byte boundary."""
        if any(v % 4 for v in (self.row_bytes, self.links_at, self.data_at, self.label_at, self.level_bytes)):
            raise ValueError(f"hnswlib row layout not word-aligned: {self}")
        if self.n < 1 or not 0 <= self.entry_point < self.n:
            raise ValueError(f"entry point {self.entry_point} in an index of {self.n} elements")


def _read_header(f: io.BufferedReader) -> _Layout:
    raw = f.read(_FILE_HEADER.size)
    if len(raw) != _FILE_HEADER.size:
        raise ValueError("hnswlib index file shorter than its header")
    at0, _, n, row_bytes, label_at, data_at, max_level, entry, max_m, max_m0, _, _, _ = _FILE_HEADER.unpack(raw)
    layout = _Layout(n=n, row_bytes=row_bytes, links_at=at0, data_at=data_at, label_at=label_at, max_m0=max_m0,
                     level_bytes=4 * (max_m + 1), max_level=max_level, entry_point=entry)
    layout.check()
    return layout


def _read_array(f: io.BufferedReader, count: int, dtype: type[np.generic]) -> np.ndarray:
    out = np.empty(count, dtype=dtype)
    _read_into(f, out)
    return out


def _read_into(f: io.BufferedReader, out: np.ndarray) -> None:
    """Fill `out` from the file's current position (a short read is an error, not a partial array)."""
    view = out.data.cast("B")
    got = 0
    while got < len(view):
        k = f.readinto(view[got:])
        if not k:
            raise ValueError(f"hnswlib index file ends {len(view) - got} bytes early")
        got += k


def _rows_per_block(row_bytes: int) -> int:
    return max(1, BLOCK_BYTES // max(1, row_bytes))


def _row_blocks(n: int, step: int) -> Iterator[tuple[int, int]]:
    for r0 in range(0, n, step):
        yield r0, min(n, r0 + step)


def _file_blocks(f: io.BufferedReader, layout: _Layout) -> Iterator[np.ndarray]:
    """Level 0 in consecutive row blocks, all read into one reused buffer (so used before the next)."""
    buf = np.empty((_rows_per_block(layout.row_bytes), layout.row_bytes), dtype=np.uint8)
    for r0, r1 in _row_blocks(layout.n, len(buf)):
        block = buf[: r1 - r0]
        _read_into(f, block)
        yield block


def _split_link_lists(words: np.ndarray, layout: _Layout) -> tuple[np.ndarray, np.ndarray]:
    """Levels (n,) and the upper link lists packed as in `__getstate__`'s link_lists, from the file's
    tail: per element a byte count (0 for a layer-0-only node), then that many bytes of lists.

    Only nodes with upper levels are visited: a run of zero words is a run of layer-0-only nodes.
    """
    n, level_words = layout.n, layout.level_bytes // 4
    levels = np.zeros(n, dtype=np.int64)
    nonzero = np.flatnonzero(words)
    node, at = 0, 0  # `at`: the word holding `node`'s byte count
    k = int(np.searchsorted(nonzero, at))
    while k < len(nonzero):
        word = int(nonzero[k])
        node += word - at
        size = int(words[word])
        if node >= n or size % layout.level_bytes:
            raise ValueError(f"malformed hnswlib link lists at word {word}")
        levels[node] = size // layout.level_bytes
        at, node = word + 1 + size // 4, node + 1
        k = int(np.searchsorted(nonzero, at))
    if n + int(levels.sum()) * level_words != len(words):
        raise ValueError("hnswlib link lists do not fill the rest of the file")
    counts_at = np.arange(n) + _upper_offsets(levels, level_words, every=True)
    return levels, np.delete(words, counts_at)


def _upper_offsets(levels: np.ndarray, level_words: int, every: bool = False) -> np.ndarray:
    """Word offset of each node's upper lists in the packed words (-1 for a layer-0-only node, unless
    `every`: then the offset its lists would start at)."""
    sizes = levels * level_words
    starts = np.cumsum(sizes) - sizes
    return starts if every else np.where(levels > 0, starts, -1)


def _assemble(layout: _Layout, blocks: Iterable[np.ndarray], levels: np.ndarray, upper: np.ndarray,
              space: str) -> HnswGraph:
    """One pass over level 0's row blocks, in order, keeping what `HnswGraph` holds."""
    layout.check()
    descended = np.union1d(np.flatnonzero(levels >= 1), [layout.entry_point]).astype(np.int64)
    level0 = _Layer0(layout, descended)
    for block in blocks:
        level0.add(block)
    vector_row = np.full(layout.n, -1, dtype=np.int64)
    vector_row[descended] = np.arange(len(descended))
    return HnswGraph(
        layer0=level0.adjacency(), levels=levels, labels=level0.labels, entry_point=layout.entry_point,
        max_level=layout.max_level, space=space, _upper_words=upper,
        _upper_offset=_upper_offsets(levels, layout.level_bytes // 4), _words_per_level=layout.level_bytes // 4,
        _vectors=level0.vectors, _vector_row=vector_row, deleted=level0.deleted,
    )


class _Layer0:
    """Level-0 rows, added block by block in id order, boiled down to layer-0 links, labels and the
    vectors of the nodes the descent visits. Links go straight into one int32 array sized for the
    fullest graph and trimmed at the end: no (row, col) pairs over all edges. It is written front to
    back, so the pages past the links actually kept are never touched, never resident (tracemalloc
    counts them; PSS does not)."""

    def __init__(self, layout: _Layout, descended: np.ndarray) -> None:
        self.layout, self.descended = layout, descended
        index_dtype = np.int32 if layout.n * layout.max_m0 < np.iinfo(np.int32).max else np.int64
        self.indices = np.empty(layout.n * layout.max_m0, dtype=index_dtype)
        self.indptr = np.zeros(layout.n + 1, dtype=index_dtype)
        self.labels = np.empty(layout.n, dtype=np.int64)
        self.deleted = np.zeros(layout.n, dtype=bool)
        self.vectors = np.empty((len(descended), layout.dim), dtype=np.float32)
        self.rows = 0

    def add(self, block: np.ndarray) -> None:
        """The next rows of level 0, (rows, row_bytes) uint8; nothing of `block` is kept."""
        r0, r1 = self.rows, self.rows + len(block)
        if r1 > self.layout.n:
            raise ValueError(f"more than {self.layout.n} level-0 rows")
        words = block.view(np.uint32)
        self._add_links(r0, words)
        self._add_labels(r0, words)
        self._add_vectors(r0, block)
        self.rows = r1

    def _add_links(self, r0: int, words: np.ndarray) -> None:
        """Each row's list sorted, repeats dropped (as a summed (row, col) matrix would hold them)."""
        lay, at = self.layout, self.layout.links_at // 4
        counts = (words[:, at] & _COUNT_MASK).astype(np.int64)
        self.deleted[r0 : r0 + len(words)] = (words[:, at] >> _DELETED_BIT) & 1 == 1
        if counts.size and counts.max() > lay.max_m0:
            raise ValueError(f"a layer-0 list longer than max_M0 = {lay.max_m0}")
        valid = np.arange(lay.max_m0)[None, :] < counts[:, None]
        ids = np.where(valid, words[:, at + 1 : at + 1 + lay.max_m0], _PAD)
        ids.sort(axis=1)
        valid[:, 1:] &= ids[:, 1:] != ids[:, :-1]
        kept = ids[valid]
        if kept.size and int(kept.max()) >= lay.n:
            raise ValueError(f"a layer-0 link beyond the {lay.n} elements")
        start = int(self.indptr[r0])
        self.indices[start : start + len(kept)] = kept
        self.indptr[r0 + 1 : r0 + 1 + len(words)] = start + np.cumsum(valid.sum(axis=1))

    def _add_labels(self, r0: int, words: np.ndarray) -> None:
        at = self.layout.label_at // 4  # a uint64, little-endian, possibly on a 4-byte boundary only
        lo, hi = words[:, at].astype(np.uint64), words[:, at + 1].astype(np.uint64)
        self.labels[r0 : r0 + len(words)] = lo | (hi << np.uint64(32))

    def _add_vectors(self, r0: int, block: np.ndarray) -> None:
        lo, hi = np.searchsorted(self.descended, [r0, r0 + len(block)])
        rows = self.descended[lo:hi] - r0
        at = self.layout.data_at
        self.vectors[lo:hi] = block[rows, at : at + 4 * self.layout.dim].view(np.float32)

    def adjacency(self) -> sp.csr_matrix:
        """The (n, n) layer-0 CSR over the gathered links.

        Its data is one float64 1.0 repeated with stride 0: scipy's csgraph routines cast data to
        float64 (`validate_graph`), which with any other dtype copies data, indices and indptr.
        """
        if self.rows != self.layout.n:
            raise ValueError(f"{self.rows} of {self.layout.n} level-0 rows read")
        nnz = int(self.indptr[-1])
        self.indices.resize(nnz, refcheck=False)  # realloc: shrinks in place, no second array
        ones = np.broadcast_to(np.float64(1.0), (nnz,))
        layer0 = sp.csr_matrix((ones, self.indices, self.indptr), shape=(self.layout.n, self.layout.n))
        layer0.has_canonical_format = True  # sorted, no repeats: spares scipy a check
        return layer0


class ReachableCounts:
    """|R(s)| for layer-0 start nodes, through the graph's strongly connected components."""

    def __init__(self, graph: HnswGraph) -> None:
        n_comp, comp = connected_components(graph.layer0, directed=True, connection="strong")
        self._comp = comp
        self._comp_size = np.bincount(comp, minlength=n_comp)
        self._dag = _condensation(graph.layer0, comp, n_comp)
        self._memo: dict[int, int] = {}
        self.safe_k = self._least_over_starts(graph.start_nodes())
        # the descent needs the upper layers only: layer 0 (4 bytes a link, ~100 MB at 1M points) is
        # not kept for the life of the index
        self.graph = replace(graph, layer0=sp.csr_matrix((graph.n, graph.n), dtype=np.float64))

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


def _condensation(adjacency: sp.csr_matrix, comp: np.ndarray, n_comp: int) -> sp.csr_matrix:
    """The DAG of links between strong components, gathered a block of rows at a time: the edges of
    the whole graph are never expanded to (row, col) pairs at once."""
    indptr, indices = adjacency.indptr, adjacency.indices
    n = adjacency.shape[0]
    per_row = max(1, -(-int(indptr[-1]) // max(1, n)))  # mean out-degree, rounded up
    codes = []
    for r0, r1 in _row_blocks(n, max(1, BLOCK_BYTES // (16 * per_row))):
        src = np.repeat(comp[r0:r1].astype(np.int64), np.diff(indptr[r0 : r1 + 1]))
        dst = comp[indices[indptr[r0] : indptr[r1]]]
        between = src != dst
        codes.append(np.unique(src[between] * n_comp + dst[between]))
    src, dst = np.divmod(np.unique(np.concatenate(codes)), n_comp)
    # float64 data: breadth_first_order would otherwise copy the DAG on every call
    return sp.csr_matrix((np.ones(len(src)), (src, dst)), shape=(n_comp, n_comp))


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


def to_model_graph(graph: HnswGraph) -> ModelGraph:
    """The graph in the form every reader fills (indexer.model.graph), upper layers as dicts, for the diagnostics."""
    levels = np.asarray(graph.levels, dtype=np.int64)
    upper = tuple(
        {int(v): graph.upper_neighbors(int(v), level) for v in np.flatnonzero(levels >= level)}
        for level in range(1, int(levels.max()) + 1)
    )
    return ModelGraph(layer0=graph.layer0, upper=upper, levels=levels, entry_point=int(graph.entry_point),
                     labels=np.asarray(graph.labels, dtype=np.int64))
