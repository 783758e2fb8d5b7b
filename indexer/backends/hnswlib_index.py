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

Deletes (base.Mutable, for a runbook): `mark_deleted(label)` sets a mark on the point (hnswalg.h:853-889,
"Marks an element with the given label deleted, does NOT really change the current graph"); a search with
deletions takes `searchBaseLayerST<false>` (hnswalg.h:1306) and returns a point only `if
(!isMarkedDeleted(candidate_id) && ...)` (hnswalg.h:407) while following its links: a tombstone. Re-adding a
deleted label unmarks it and updates its vector in place (`addPoint`, hnswalg.h:1153-1174): ids are reused.
With the build parameter `replace_deleted: true` the index is made with `allow_replace_deleted=True` and
inserts pass `replace_deleted=True` (bindings.cpp:197-202, 251-299): a new point takes a deleted point's slot
and `updatePoint` relinks it (hnswalg.h:954-994): a repair. Then a deleted label cannot be added again
("Can't use addPoint to update deleted elements if replacement of deleted elements is enabled",
hnswalg.h:1162-1165), so a re-insert takes a new id. Line numbers are of hnswlib v0.8.0's sources, the
version installed (its wheel ships no headers).
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


class HnswlibOwnParams(HnswlibParams):
    """hnswlib's own: the graph's, and whether inserts take the places of deleted points (the repair variant;
    left out of rows and keys while false, so every index built before it keeps its key)."""

    replace_deleted: bool = Field(default=False, exclude_if=lambda v: not v,
                                  description="allow_replace_deleted at build, replace_deleted on insert")

    def label(self) -> str:
        return super().label().replace(" True", " replace_deleted") if self.replace_deleted else super().label()



class HnswlibIndex:
    name = "hnswlib"

    def __init__(self, dim: int, metric: str, *, M: int, ef_construction: int, seed: int, search_threads: int = 1,
                 replace_deleted: bool = False):
        self.dim, self.metric = dim, metric
        self.M, self.ef_construction, self.seed = M, ef_construction, seed
        self.replace_deleted = replace_deleted
        self.search_threads = search_threads
        self._index: hnswlib.Index | None = None
        self._ef = SharedSetting[int](lambda ef: self._live().set_ef(ef))  # concurrent searches at one ef
        self._reach_lock = threading.Lock()
        self._reachable: ReachableCounts | None = None

    def _new(self, max_elements: int) -> hnswlib.Index:
        import hnswlib

        index = hnswlib.Index(space=self.metric, dim=self.dim)
        index.init_index(
            max_elements=max_elements, M=self.M, ef_construction=self.ef_construction, random_seed=self.seed,
            allow_replace_deleted=self.replace_deleted,
        )
        return index

    @property
    def reuses_ids(self) -> bool:
        """A tombstoned label can be added again (unmarked, updated in place); not once replacement is on."""
        return not self.replace_deleted

    @property
    def delete_mode(self) -> str:
        return "repair" if self.replace_deleted else "tombstone"

    def insert(self, vectors: np.ndarray, ids: np.ndarray) -> None:
        """Add `vectors` under `ids` one by one in order (one thread), growing the index when it is full."""
        ids = np.asarray(ids, dtype=np.int64)
        if self._index is None:
            self._index = self._new(max(len(ids), 1))
        index = self._index
        need = index.get_current_count() + len(ids)  # slots, deleted ones included (a repair may reuse them)
        if need > index.get_max_elements():
            index.resize_index(max(need, 2 * index.get_max_elements()))
        for at in chunks(np.arange(len(ids))):
            index.add_items(vectors[at], ids=ids[at], num_threads=1, replace_deleted=self.replace_deleted)
        self._reachable = None

    def delete(self, ids: np.ndarray) -> None:
        """`mark_deleted` each id: a tombstone (see the module's doc)."""
        index = self._live()
        for i in np.asarray(ids, dtype=np.int64).tolist():
            index.mark_deleted(i)
        self._reachable = None

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
        reach = self._reach()
        deleted = reach.graph.deleted if reach.graph.deleted is not None else np.zeros(reach.graph.n, dtype=bool)
        tombstones = bool(deleted.any())
        k_eff = min(k, self._index.get_current_count() - int(deleted.sum()))
        labels = np.full((len(queries), k_eff), -1, dtype=np.int64)
        dist = np.full((len(queries), k_eff), np.nan, dtype=np.float32)
        with self._ef.holding(max(ef or k_eff, k_eff)):
            if tombstones:  # a search returns only the live points it reaches, as a filter's passing ones
                answerable = _PassingReach(reach, ~deleted).for_queries(queries, k_eff) if k_eff else \
                    np.zeros(len(queries), dtype=np.int64)
            else:
                answerable = (
                    np.full(len(queries), k_eff) if k_eff <= reach.safe_k else reach.for_queries(queries, k_eff)
                )
            for kk in np.unique(answerable[answerable > 0]):
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
        if reach.graph.deleted is not None:
            ok &= ~reach.graph.deleted  # a tombstone is never returned either
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


BACKEND = Backend(name="hnswlib", params=HnswlibOwnParams, ef_search=(10,), index=HnswlibIndex,
                  library=Library(distribution="hnswlib", module="hnswlib"),
                  capabilities=Capabilities(spaces=frozenset({"ip", "l2"}), order_controlled=True,
                                            deterministic=True, graph=True, seeded=True,
                                            # knn_query(filter=...): hnswlib 0.8.0 hnswalg.h:308-440
                                            # searchBaseLayerST, bindings.cpp:83-95 (module doc)
                                            filtering="in_graph",
                                            # mark_deleted: hnswalg.h:853-889, 407 (module doc); "repair" with
                                            # replace_deleted: true (hnswalg.h:954-994)
                                            deletes="tombstone"))
