"""hnswlib behind the VectorIndex protocol, and its declaration as a backend.

Insertion order holds only with one insertion thread; with a fixed random_seed the graph is then
reproducible. `set_ef` is index-wide state, so a search holds a lock across set_ef + knn_query: a
per-request ef never leaks into a concurrent request. hnswlib (and scipy, for the graph) is imported
on first use: the spec imports this file for its declaration alone.

Filtered search uses hnswlib's own filter: `knn_query(..., filter=callable)`, a function of the label
that hnswlib 0.8.0 wraps in a `BaseFilterFunctor` (python_bindings/bindings.cpp:83-95, 616-640). Its
layer-0 search with a filter (`searchBaseLayerST<false>`, hnswlib/hnswalg.h:308-440) follows every link
as without one, but puts a point in its results only when `(*isIdAllowed)(getExternalLabel(id))`: points
that do not pass are traversed, never returned (in_graph). The filter is a Python callable, called with
the GIL for each point the search visits; hnswlib's README (README.md:80 at v0.8.0, knn_query: "search
with a filter works slow in python in multithreaded mode. It is recommended to set num_threads=1") and
bindings.cpp:638 say to search on one thread, so a filtered search does, whatever `search_threads` is.
"""

from __future__ import annotations

import shutil
import threading
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from pydantic import Field

from indexer.backends.base import chunks, passing
from indexer.backends.declaration import Backend, BuildParams, Capabilities, Library
from indexer.backends.shared_setting import SharedSetting
from indexer.common.fileio import scratch_dir

if TYPE_CHECKING:
    import hnswlib

    from indexer.backends.hnswlib_graph import HnswGraph as HnswlibGraph
    from indexer.backends.hnswlib_graph import ReachableCounts
    from indexer.model.graph import HnswGraph


class HnswlibParams(BuildParams):
    """What decides an HNSW graph: links per node and the candidate list while inserting."""

    M: int = Field(default=16, ge=2, le=512)
    ef_construction: int = Field(default=200, ge=1)



class HnswlibIndex:
    name = "hnswlib"

    def __init__(self, dim: int, metric: str, *, M: int, ef_construction: int, seed: int, search_threads: int = 1):
        self.dim, self.metric = dim, metric
        self.M, self.ef_construction, self.seed = M, ef_construction, seed
        self.search_threads = search_threads
        self._index: hnswlib.Index | None = None
        self._ef = SharedSetting[int](lambda ef: self._live().set_ef(ef))  # concurrent searches at one ef
        self._reach_lock = threading.Lock()
        self._reachable: ReachableCounts | None = None

    def _new(self, max_elements: int) -> hnswlib.Index:
        import hnswlib

        index = hnswlib.Index(space=self.metric, dim=self.dim)
        index.init_index(
            max_elements=max_elements, M=self.M, ef_construction=self.ef_construction, random_seed=self.seed
        )
        return index

    def build(self, vectors: np.ndarray, order: np.ndarray) -> None:
        index = self._new(len(order))
        # one thread: hnswlib splits a batch across threads, which would scramble the order; with one it adds
        # the rows one by one, so consecutive chunks of `order` build the graph one call would
        for rows in chunks(order):
            index.add_items(vectors[rows], ids=rows, num_threads=1)
        self._ef.forget()
        self._index, self._reachable = index, None

    def search(self, queries: np.ndarray, k: int, ef: int | None) -> tuple[np.ndarray, np.ndarray]:
        """Up to k results per query, padded with id -1 where the graph reaches fewer points.

        hnswlib raises when a query finds fewer than k points and leaks its buffers on every raised
        call, so no call here ever asks a query for more than it can reach (see hnswlib_graph).
        """
        assert self._index is not None, "build or load first"
        k_eff = min(k, self._index.get_current_count())
        labels = np.full((len(queries), k_eff), -1, dtype=np.int64)
        dist = np.full((len(queries), k_eff), np.nan, dtype=np.float32)
        reach = self._reach()
        with self._ef.holding(max(ef or k_eff, k_eff)):
            answerable = (
                np.full(len(queries), k_eff) if k_eff <= reach.safe_k else reach.for_queries(queries, k_eff)
            )
            for kk in np.unique(answerable):
                rows = np.flatnonzero(answerable == kk)
                got, d = self._index.knn_query(queries[rows], k=int(kk), num_threads=self.search_threads)
                labels[rows, : int(kk)], dist[rows, : int(kk)] = got, d
        ids = labels.astype(np.int64)
        # hnswlib's ip distance is 1 - <q, x>; l2 is already squared L2
        scores = (1.0 - dist) if self.metric == "ip" else dist
        return _pad(ids, scores.astype(np.float32), k)

    def search_filtered(self, queries: np.ndarray, k: int, ef: int | None,
                        allowed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Up to k passing results per query, through hnswlib's filter (see the module's doc), padded with -1.

        With a filter hnswlib's layer-0 search stops only once it holds max(ef, k) passing points, so a
        query whose descent starts layer 0 at s returns min(k, passing points in R(s)); asked for more it
        raises, and leaks, as in `search`. So each query is asked for exactly that many (_PassingReach).
        """
        assert self._index is not None, "build or load first"
        reach = self._reach()
        ok = passing(allowed, reach.graph.labels)  # per internal id: does its row pass?
        k_eff = min(k, int(ok.sum()))
        labels = np.full((len(queries), k_eff), -1, dtype=np.int64)
        dist = np.full((len(queries), k_eff), np.nan, dtype=np.float32)
        if k_eff and len(queries):
            answerable = _PassingReach(reach, ok).for_queries(queries, k_eff)
            allowed_at = allowed.tolist().__getitem__  # the label's row -> bool, no numpy scalar per call
            with self._ef.holding(max(ef or k_eff, k_eff)):
                for kk in np.unique(answerable[answerable > 0]):
                    rows = np.flatnonzero(answerable == kk)
                    got, d = self._index.knn_query(queries[rows], k=int(kk), num_threads=1, filter=allowed_at)
                    labels[rows, : int(kk)], dist[rows, : int(kk)] = got, d
        scores = (1.0 - dist) if self.metric == "ip" else dist  # NaN padding stays NaN
        return _pad(labels, scores.astype(np.float32), k)

    def _reach(self) -> ReachableCounts:
        """What layer-0 searches can reach, read from the graph once per built or loaded index."""
        with self._reach_lock:
            if self._reachable is None:
                from indexer.backends.hnswlib_graph import ReachableCounts

                self._reachable = ReachableCounts(self._read_graph())
            return self._reachable

    def _live(self) -> hnswlib.Index:
        assert self._index is not None, "build or load first"
        return self._index

    def graph(self) -> HnswGraph:
        """The built graph in the form every reader fills (indexer.model.graph), for the diagnostics."""
        from indexer.backends.hnswlib_graph import to_model_graph

        return to_model_graph(self._read_graph())

    def _read_graph(self) -> HnswlibGraph:
        """The graph, through a save to a private temporary file read back in blocks.

        `__getstate__` would copy all of level 0 (vectors included) into this process: one more index
        size in the cell's peak. The file is removed as soon as it is read, also on error.
        """
        from indexer.backends.hnswlib_graph import read_graph_file

        assert self._index is not None
        tmp = scratch_dir("hnswlib-graph-")  # private, and swept after a kill -9 (indexer.common.fileio)
        try:
            path = tmp / "index.bin"
            self._index.save_index(str(path))
            return read_graph_file(path, self.metric)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def nbytes(self) -> int:
        assert self._index is not None
        return int(self._index.index_file_size())

    def save(self, path: Path) -> None:
        assert self._index is not None
        self._index.save_index(str(path))

    def load(self, path: Path, n: int) -> None:
        import hnswlib

        index = hnswlib.Index(space=self.metric, dim=self.dim)
        index.load_index(str(path), max_elements=n)
        self._ef.forget()
        self._index, self._reachable = index, None

    def close(self) -> None:
        """Nothing outside this process's memory."""


class _PassingReach:
    """How many passing points a filtered hnswlib search can return, per query: min(k, |R(s) & passing|),
    where s is the layer-0 start node of its descent and R(s) the nodes reachable from s along layer-0
    links (hnswlib_graph's module doc, the same argument with the points that pass counted instead of all).

    It counts over ReachableCounts' strong components of layer 0 and their condensation (its `_comp` and
    `_dag`): the passing points of each component, summed over the components a start's component reaches.
    """

    def __init__(self, reach: ReachableCounts, ok: np.ndarray) -> None:
        self._reach = reach
        self._weight = np.bincount(reach._comp[ok], minlength=len(reach._comp_size))
        self._memo: dict[int, int] = {}

    def of_component(self, c: int) -> int:
        from scipy.sparse.csgraph import breadth_first_order

        if c not in self._memo:
            reached = breadth_first_order(self._reach._dag, c, directed=True, return_predecessors=False)
            self._memo[c] = int(self._weight[reached].sum())
        return self._memo[c]

    def for_queries(self, queries: np.ndarray, k: int) -> np.ndarray:
        graph, comp = self._reach.graph, self._reach._comp
        counts = [self.of_component(int(c)) for c in np.unique(comp[graph.start_nodes()])]
        least, most = min(k, min(counts)), min(k, max(counts))
        if least == most:  # every start answers the same: no descent to replay
            return np.full(len(queries), least, dtype=np.int64)
        out = np.empty(len(queries), dtype=np.int64)
        for i, q in enumerate(queries):
            start, uncertain = graph.descend(q)
            # a near-tie may send hnswlib to another start: the least any start answers is safe
            out[i] = least if uncertain else min(k, self.of_component(int(comp[start])))
        return out


def _pad(ids: np.ndarray, scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Pad to k columns with id -1 when the index holds fewer than k points."""
    if ids.shape[1] == k:
        return ids, scores
    q = ids.shape[0]
    pid = np.full((q, k), -1, dtype=np.int64)
    psc = np.full((q, k), np.nan, dtype=np.float32)
    pid[:, : ids.shape[1]] = ids
    psc[:, : ids.shape[1]] = scores
    return pid, psc


BACKEND = Backend(name="hnswlib", params=HnswlibParams, ef_search=(10,), index=HnswlibIndex,
                  library=Library(distribution="hnswlib", module="hnswlib"),
                  capabilities=Capabilities(spaces=frozenset({"ip", "l2"}), order_controlled=True,
                                            deterministic=True, graph=True, seeded=True,
                                            # knn_query(filter=...): hnswlib 0.8.0 hnswalg.h:308-440
                                            # searchBaseLayerST, bindings.cpp:83-95 (module doc)
                                            filtering="in_graph"))
