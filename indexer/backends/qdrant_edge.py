"""Qdrant Edge (qdrant-edge-py 0.9.0, Qdrant's segment engine in-process) behind the VectorIndex protocol.

The wheel is compiled Rust, so the source was read in qdrant/qdrant at the commit that bumps the edge
packages to 0.9.0 (6d546f607f). Defaults are `HnswConfig::default()` (lib/segment/src/types.rs:1643-1649):
m 16, ef_construct 100, and the installed package agrees (a shard made with no hnsw_config writes m 16,
ef_construct 100, ef 100 to its hnsw_config.json); the search ef defaults to ef_construct
(hnsw_index/config.rs:49, read in hnsw/read_view/search.rs:41), and a search never uses an ef below k
(graph_layers.rs:551).

A shard only gets an HNSW graph when the optimizer indexes a segment above `indexing_threshold` (10,000 KB
by default, shard/src/optimizers/config.rs:17), and an unfiltered search still scans a segment of fewer
vectors than `full_scan_threshold` (10,000 KB) exactly (hnsw/read_view/dispatch.rs:62-65), so a build sets
both to their minimum and runs `optimize()`: every search here walks the graph (a test shows recall well
below 1 at a low ef on a lean graph).

Order: the optimizer copies points into the indexed segment sorted by point id (id_tracker/mod.rs:70,
`kmerge_by` external id) and links them in that internal order (hnsw/build.rs:317-355) on a rayon pool of
`max_indexing_threads` threads; a one-thread pool runs them in order. So each point is labelled with its
insertion position (id i for vectors[order[i]], mapped back to order[i] on search) and the pool gets one
thread: points are linked one after another in this order (Qdrant's default, 0, sizes the pool from the
CPU count and links concurrently). Not deterministic and not seeded: levels come from `rand::rng()`, an
unseeded thread RNG (shard/src/optimize.rs:363). Distances: ip is Qdrant's Dot (its score is the inner
product); l2 is Euclid, whose score is the plain L2 distance, squared here. The shard (vectors, graph; no
WAL) lives in a scratch directory removed by close(); it is not saved to one file, so the backend is not
servable.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import Field

from indexer.backends.base import chunks
from indexer.backends.declaration import Backend, BuildParams, Capabilities, Library
from indexer.common.fileio import scratch_dir

DEFAULT_EF = 100  # = ef_construct's default: HnswGraphConfig.ef starts at ef_construct (config.rs:49)
BATCH = 4096  # points per upsert: only bounds the Python lists alive at once, the ids fix the link order
LIBRARY = Library(distribution="qdrant-edge-py", module="qdrant_edge", extra="qdrant-edge")


class QdrantEdgeParams(BuildParams):
    """Qdrant's graph parameters under the common names, and its vector storage type."""

    M: int = Field(default=16, ge=2, le=512)  # m: HnswConfig::default (segment/src/types.rs:1648, 0.9.0)
    # ef_construct: DEFAULT_HNSW_EF_CONSTRUCT (types.rs:1643); Qdrant validates it >= 4 (types.rs:818)
    ef_construction: int = Field(default=100, ge=4)
    datatype: Literal["float32", "float16"] = "float32"  # EdgeVectorParams.datatype; None stores Float32



class QdrantEdgeIndex:
    name = "qdrant_edge"

    def __init__(self, dim: int, metric: str, *, M: int, ef_construction: int, datatype: str = "float32",
                 seed: int, search_threads: int = 1):
        self.dim, self.metric = dim, metric
        self.M, self.ef_construction, self.datatype = M, ef_construction, datatype
        self.search_threads = search_threads
        self._shard: Any = None  # qdrant_edge.EdgeShard
        self._dir: str | None = None
        self._order: np.ndarray | None = None

    def _config(self) -> Any:
        import qdrant_edge as qe

        distance = qe.Distance.Dot if self.metric == "ip" else qe.Distance.Euclid
        dtype = getattr(qe.VectorStorageDatatype, self.datatype.capitalize())  # Float32 or Float16
        return qe.EdgeConfig(
            vectors=qe.EdgeVectorParams(size=self.dim, distance=distance, datatype=dtype),
            # full_scan_threshold 0: never scan instead of walking the graph; one indexing thread: the order
            hnsw_config=qe.HnswIndexConfig(m=self.M, ef_construct=self.ef_construction, full_scan_threshold=0,
                                           max_indexing_threads=1),
            optimizers=qe.EdgeOptimizersConfig(indexing_threshold=1),  # KB; 0 would disable indexing
            max_search_threads=self.search_threads,
            wal_enabled=False,  # nothing to recover: the shard lives as long as this object
        )

    def build(self, vectors: np.ndarray, order: np.ndarray) -> None:
        import qdrant_edge as qe

        self.close()
        self._dir = str(scratch_dir("indexer-qdrant_edge-"))
        shard = qe.EdgeShard.create(os.path.join(self._dir, "shard"), self._config())
        self._shard = shard
        start = 0  # point id = insertion position
        for ids in chunks(order, BATCH):
            rows = np.asarray(vectors[ids], dtype=np.float32).tolist()
            points = [qe.Point(start + i, row) for i, row in enumerate(rows)]
            shard.update(qe.UpdateOperation.upsert_points(points))
            start += len(ids)
        shard.optimize()  # builds the graph now, in this thread's call
        self._order = np.asarray(order, dtype=np.int64)

    def search(self, queries: np.ndarray, k: int, ef: int | None) -> tuple[np.ndarray, np.ndarray]:
        """Up to k results per query, padded with id -1 and score nan where the graph yields fewer."""
        import qdrant_edge as qe

        assert self._shard is not None and self._order is not None, "build first"
        params = qe.SearchParams(hnsw_ef=ef)  # None: the segment's own ef (= ef_construct)
        requests = [qe.QueryRequest(limit=k, query=qe.Query.Nearest(q), params=params)
                    for q in np.asarray(queries, dtype=np.float32).tolist()]
        ids = np.full((len(requests), k), -1, dtype=np.int64)
        scores = np.full((len(requests), k), np.nan, dtype=np.float32)
        for row, hits in enumerate(self._shard.query_batch(qe.QueryBatchRequest(requests))):
            ids[row, : len(hits)] = self._order[[int(hit.id) for hit in hits]]
            scores[row, : len(hits)] = [hit.score for hit in hits]
        if self.metric == "l2":
            scores = scores * scores  # Euclid scores are the L2 distance itself
        return ids, scores

    def nbytes(self) -> int:
        """The bytes the shard occupies on disk (its mmap files are sparse: allocated blocks, not lengths)."""
        assert self._shard is not None and self._dir is not None
        self._shard.flush()
        return sum(os.stat(os.path.join(root, f)).st_blocks * 512
                   for root, _, files in os.walk(self._dir) for f in files)

    def save(self, path: Path) -> None:
        raise NotImplementedError("qdrant_edge keeps its shard as a directory of segment files, not one file")

    def load(self, path: Path, n: int) -> None:
        raise NotImplementedError("qdrant_edge keeps its shard as a directory of segment files, not one file")

    def close(self) -> None:
        """Close the shard and remove its scratch directory; safe twice and after a failed build."""
        shard, self._shard = self._shard, None
        if shard is not None:
            shard.close()
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None


BACKEND = Backend(name="qdrant_edge", params=QdrantEdgeParams, ef_search=(DEFAULT_EF,), index=QdrantEdgeIndex,
                  build_cost=2.0, library=LIBRARY, capabilities=Capabilities(
                      spaces=frozenset({"ip", "l2"}), order_controlled=True, deterministic=False, graph=False,
                      seeded=False, servable=False))
