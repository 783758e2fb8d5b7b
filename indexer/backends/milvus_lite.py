"""Milvus Lite (milvus-lite 3.2.2: pure Python over faiss) behind the VectorIndex protocol.

Defaults are milvus_lite/index/faiss_hnsw.py's: M 16 and efConstruction 200 (lines 109-110), search ef 64
(line 170); AUTOINDEX, what a collection gets when no index type is named, builds this same index when
faiss is installed (index/factory.py:91-96). Each segment gets its own faiss `IndexHNSWFlat`.

The database runs in this process through milvus_lite's own API (`MilvusLite(dir)`), the engine that
`MilvusClient("x.db")` reaches through a gRPC server on a loopback port: same insert, flush, index build
and search code, without the server. It also keeps the build in this thread, so the OpenMP thread count
set here applies (omp_set_num_threads is per thread: a gRPC worker thread keeps faiss's default, every CPU).

Rows are inserted in `order`, primary key = dataset row number, then flushed; the index is created after
the flush, so Milvus Lite builds it inline, in one `add` of the whole segment. faiss reorders that batch
(by level, then a fixed shuffle), so the order is not controlled. With one OpenMP thread and faiss's fixed
level generator (Milvus Lite never seeds it) two builds are identical; there is no seed to pass.

Segments: a memtable flush (128 MiB of rows, constants.py:21) becomes a segment; background compaction
merges small ones up to 100,000 rows (constants.py:33). Above about 128 MiB of vectors the index is
several graphs, each searched and the results merged by distance. The build waits for the background
worker after each insert, so segmentation does not depend on timing.

Distances: ip is Milvus's IP metric, whose score is the inner product; l2 is L2, reported as the squared
distance. The database (parquet segments, manifest, faiss files) lives in a scratch directory removed by
close(); it is not one file, so the backend is not servable.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
from pydantic import Field

from indexer.backends.base import chunks
from indexer.backends.declaration import Backend, BuildParams, Capabilities, Library
from indexer.backends.scratch import KeptBySystem, release
from indexer.common.fileio import scratch_dir

LIBRARY = Library(distribution="milvus-lite", module="milvus_lite", extra="milvus-lite")
DEFAULT_EF = 64  # FaissHnswIndex.search: params.get("ef", 64) (milvus_lite/index/faiss_hnsw.py:170)
BATCH = 10_000  # rows per insert: bounds the Python lists alive at once
COLLECTION, PK, VECTOR = "vectors", "id", "vector"


class MilvusLiteParams(BuildParams):
    """Milvus Lite's HNSW parameters (its `M`, `efConstruction`) under the common names."""

    M: int = Field(default=16, ge=2, le=512)  # params.get("M", 16): faiss_hnsw.py:109, milvus-lite 3.2.2
    ef_construction: int = Field(default=200, ge=1)  # params.get("efConstruction", 200): faiss_hnsw.py:110



@contextmanager
def _omp_threads(n: int) -> Iterator[None]:
    """OpenMP threads for faiss in this thread, restored afterwards (the setting is per thread)."""
    import faiss

    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(n)
    try:
        yield
    finally:
        faiss.omp_set_num_threads(before)


class MilvusLiteIndex(KeptBySystem):
    KEPT_AS = "milvus-lite keeps a directory (parquet segments, manifest, faiss files)"
    name = "milvus_lite"

    def __init__(self, dim: int, metric: str, *, M: int, ef_construction: int, seed: int,
                 search_threads: int = 1):
        self.dim, self.metric = dim, metric
        self.M, self.ef_construction = M, ef_construction
        self.search_threads = search_threads
        self._dir: str | None = None
        self._db: Any = None  # milvus_lite.MilvusLite
        self._col: Any = None  # its Collection
        self._lock = threading.Lock()  # a search sets efSearch on the shared faiss index, then searches

    def build(self, vectors: np.ndarray, order: np.ndarray) -> None:
        from milvus_lite import CollectionSchema, DataType, FieldSchema, MilvusLite

        self.close()
        self._dir = str(scratch_dir("indexer-milvus_lite-"))
        self._db = MilvusLite(self._dir)
        schema = CollectionSchema(fields=[
            FieldSchema(name=PK, dtype=DataType.INT64, is_primary=True),
            FieldSchema(name=VECTOR, dtype=DataType.FLOAT_VECTOR, dim=self.dim),
        ])
        col = self._db.create_collection(COLLECTION, schema)
        for rows in chunks(np.asarray(order), BATCH):
            # vectors must be lists; float32 -> Python float -> float32 is exact
            records = zip(rows.tolist(), vectors[rows].tolist(), strict=True)
            col.insert([{PK: i, VECTOR: v} for i, v in records])
            col._wait_for_bg()  # an insert past 128 MiB flushed: let compaction run before more rows arrive
        col.flush()
        col._wait_for_bg()
        # the collection has no index yet, so it is loaded and create_index builds every segment's index
        # here, in this thread, with one OpenMP thread (deterministic)
        with _omp_threads(1):
            col.create_index(VECTOR, {
                "index_type": "HNSW", "metric_type": "IP" if self.metric == "ip" else "L2",
                "params": {"M": self.M, "efConstruction": self.ef_construction},
            })
        assert col.load_state == "loaded"
        self._col = col

    def search(self, queries: np.ndarray, k: int, ef: int | None) -> tuple[np.ndarray, np.ndarray]:
        """Up to k results per query, padded with id -1 and nan; ef None leaves Milvus Lite's default (64)."""
        assert self._col is not None, "build first"
        params = None if ef is None else {"ef": int(ef)}
        with self._lock, _omp_threads(self.search_threads):
            hits = self._col.search(np.asarray(queries, dtype=np.float32).tolist(), top_k=k, output_fields=[],
                                    search_params=params)
        ids = np.full((len(queries), k), -1, dtype=np.int64)
        scores = np.full((len(queries), k), np.nan, dtype=np.float32)
        for row, found in enumerate(hits):
            for col, hit in enumerate(found):
                # IP: the inner product; L2: Milvus squares its sqrt distance back (collection.py:2450)
                ids[row, col], scores[row, col] = hit["id"], hit["distance"]
        return ids, scores

    def nbytes(self) -> int:
        """The faiss index files (graph and vectors) of every segment."""
        assert self._dir is not None
        return sum(
            os.path.getsize(os.path.join(root, f))
            for root, _, files in os.walk(self._dir) for f in files if f.endswith(".idx")
        )

    def close(self) -> None:
        """Close the database (it drains its background worker) and remove its directory."""
        db, directory = self._db, self._dir
        self._db = self._col = self._dir = None
        release(db.close if db is not None else None, directory)


BACKEND = Backend(name="milvus_lite", params=MilvusLiteParams, ef_search=(DEFAULT_EF,), index=MilvusLiteIndex,
                  build_cost=1.3, library=LIBRARY,
                  capabilities=Capabilities(spaces=frozenset({"ip", "l2"}), order_controlled=False,
                                            deterministic=True, graph=False, seeded=False, servable=False))
