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

Filtering is Milvus Lite's own boolean expression on the primary key, which already holds the dataset row
(no extra storage): `id in [...]` over the passing rows, or `id not in [...]` over the failing ones,
whichever list is shorter, passed as `Collection.search(expr=...)`. Milvus Lite parses and compiles it
(engine/collection.py:819, cached per expression string in an LRU of FILTER_CACHE_SIZE 256 compiled
filters, constants.py:54, collection.py:1351-1374), evaluates it over each segment's Arrow table into a
bool mask (search/executor_indexed.py:145, search/indexed_filter.py:15-25; `in` is pyarrow.compute.is_in,
search/filter/eval/arrow_backend.py:147-162), ANDs it with its dedup and tombstone mask
(executor_indexed.py:186), skips a segment none of whose rows pass (201) and hands the rest to the
segment's index as `valid_mask` (211). The faiss HNSW index turns it into `faiss.IDSelectorBatch` in
`SearchParametersHNSW(sel=..., efSearch=ef)` ("HNSW skips excluded ids DURING graph traversal, not after",
index/faiss_hnsw.py:143-147, 183-189). faiss's layer-0 search then traverses the points that do not pass
but returns only passing ones (faiss/impl/HNSW.cpp v1.15.0 search_from_candidates, as in faiss_hnsw.py):
in_graph, with the search's ef. It has one filtering mode. A query that reaches fewer than k passing points
(a very selective mask at a small ef) comes back short, padded with id -1. Cost: the expression is parsed
in Python, about 0.45 s for a 50,000-id list (once per distinct mask; a cached one is evaluated per search).

Precision (indexer.backends.precision): `f32` is index_type HNSW (FaissHnswIndex, IndexHNSWFlat), `i8` is
HNSW_SQ (milvus_lite/index/faiss_hnsw_sq.py:60-90, 3.2.2): faiss's `IndexHNSWSQ(dim, QT_8bit, M, metric)`
trained on the segment's own vectors before one `add`, so the codes are faiss's SQ8 with each dimension's
minimum and maximum over the segment (as faiss_hnsw's i8 over the whole index when there is one segment).
Its search takes only `ef` (faiss_hnsw_sq.py:117-135): no re-ranking by the original vectors, so no rescore.
The factory's other quantized types are IVF (IVF_SQ8; IVF_PQ "reserved for a future phase",
index/factory.py:10, 106-116), not HNSW: not offered here. The stored vectors are each segment's faiss index
decoded (`reconstruct_n`), local id i being the segment's pks[i] (search/executor_indexed.py:224-241).

Deletes and inserts (base.Mutable, for a runbook), each followed by `flush()` and a wait for the background
worker, as the build does: `Collection.delete(pks)` (engine/collection.py:559-603) writes one tombstone for
the batch, which the flush folds into the delta index. A search drops a tombstoned row from its segment's mask
(search/executor_indexed.py:163-187, `delta_index.is_deleted`) and hands the mask to the segment's faiss HNSW
as `valid_mask` (209-213), the IDSelectorBatch above: a deleted point is traversed, never returned, a
tombstone. It leaves the segment only when compaction merges its data file (a size bucket of 4 files or more,
engine/compaction.py:87-120, constants.py:25-26) and drops rows with a newer tombstone (`_filter_deleted`,
compaction.py:365-385); the background worker then builds the merged segment's index
(collection.py:2020-2055). `Collection.insert` of a pk that was deleted is a newer version (a larger seq than
its tombstone): ids are reused. A flushed insert is a new segment, searched by brute force until the
background worker has built its index (executor_indexed.py:203-204), which the wait covers. That worker builds
with faiss's default OpenMP threads (the setting is per thread), so churned indexes are not reproducible as
builds are.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Literal

import numpy as np
from pydantic import Field

from indexer.backends.base import chunks, passing
from indexer.backends.declaration import Backend, BuildParams, Capabilities, Library
from indexer.backends.scratch import KeptBySystem, release
from indexer.common.fileio import scratch_dir

LIBRARY = Library(distribution="milvus-lite", module="milvus_lite", extra="milvus-lite")
DEFAULT_EF = 64  # FaissHnswIndex.search: params.get("ef", 64) (milvus_lite/index/faiss_hnsw.py:170)
BATCH = 10_000  # rows per insert: bounds the Python lists alive at once
COLLECTION, PK, VECTOR = "vectors", "id", "vector"
INDEX_TYPES = {"f32": "HNSW", "i8": "HNSW_SQ"}  # precision -> Milvus Lite's index_type (module doc)


class MilvusLiteParams(BuildParams):
    """Milvus Lite's HNSW parameters (its `M`, `efConstruction`) under the common names."""

    M: int = Field(default=16, ge=2, le=512)  # params.get("M", 16): faiss_hnsw.py:109, milvus-lite 3.2.2
    ef_construction: int = Field(default=200, ge=1)  # params.get("efConstruction", 200): faiss_hnsw.py:110
    # HNSW or HNSW_SQ (module doc); left out of keys and rows at f32, so every index built before keeps its key
    precision: Literal["f32", "i8"] = Field(default="f32", exclude_if=lambda v: v == "f32",
                                            description="f32: index_type HNSW; i8: HNSW_SQ (faiss SQ8)")



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
                 search_threads: int = 1, precision: str = "f32"):
        self.dim, self.metric = dim, metric
        self.M, self.ef_construction, self.precision = M, ef_construction, precision
        self.search_threads = search_threads
        self._dir: str | None = None
        self._db: Any = None  # milvus_lite.MilvusLite
        self._col: Any = None  # its Collection
        self._rows: np.ndarray | None = None  # the row numbers (primary keys) it holds, sorted: what a filter names
        self._lock = threading.Lock()  # a search sets efSearch on the shared faiss index, then searches

    def _insert(self, col: Any, vectors: np.ndarray, rows: np.ndarray, ids: np.ndarray) -> None:
        """`vectors[rows]` under primary keys `ids`, BATCH rows a call, then flushed."""
        for at in chunks(np.arange(len(rows)), BATCH):
            # vectors must be lists; float32 -> Python float -> float32 is exact
            records = zip(ids[at].tolist(), vectors[rows[at]].tolist(), strict=True)
            col.insert([{PK: i, VECTOR: v} for i, v in records])
            col._wait_for_bg()  # an insert past 128 MiB flushed: let compaction run before more rows arrive
        col.flush()
        col._wait_for_bg()

    def build(self, vectors: np.ndarray, order: np.ndarray) -> None:
        order = np.asarray(order, dtype=np.int64)
        self._create(vectors, order, order)

    def _create(self, vectors: np.ndarray, rows: np.ndarray, ids: np.ndarray) -> None:
        """A new database holding `vectors[rows]` under `ids`, and its index built in this thread."""
        from milvus_lite import CollectionSchema, DataType, FieldSchema, MilvusLite

        self.close()
        self._dir = str(scratch_dir("indexer-milvus_lite-"))
        self._db = MilvusLite(self._dir)
        schema = CollectionSchema(fields=[
            FieldSchema(name=PK, dtype=DataType.INT64, is_primary=True),
            FieldSchema(name=VECTOR, dtype=DataType.FLOAT_VECTOR, dim=self.dim),
        ])
        col = self._db.create_collection(COLLECTION, schema)
        self._insert(col, vectors, rows, ids)
        # the collection has no index yet, so it is loaded and create_index builds every segment's index
        # here, in this thread, with one OpenMP thread (deterministic)
        with _omp_threads(1):
            col.create_index(VECTOR, {
                "index_type": INDEX_TYPES[self.precision], "metric_type": "IP" if self.metric == "ip" else "L2",
                "params": {"M": self.M, "efConstruction": self.ef_construction},
            })
        assert col.load_state == "loaded"
        self._col, self._rows = col, np.sort(ids)

    reuses_ids = True  # A deleted pk inserted again is a newer version than its tombstone (module doc).
    delete_mode = "tombstone"

    def insert(self, vectors: np.ndarray, ids: np.ndarray) -> None:
        """Insert under `ids` and flush: a new segment, indexed by the background worker before this returns
        (the first insert creates the database, as a build)."""
        ids = np.asarray(ids, dtype=np.int64)
        if self._col is None:
            self._create(vectors, np.arange(len(ids)), ids)
            return
        assert self._rows is not None
        self._insert(self._col, vectors, np.arange(len(ids)), ids)
        self._rows = np.union1d(self._rows, ids)

    def delete(self, ids: np.ndarray) -> None:
        """`Collection.delete` of the pks, BATCH a call, then flushed: tombstones (module doc)."""
        assert self._col is not None and self._rows is not None, "build or insert first"
        ids = np.asarray(ids, dtype=np.int64)
        for at in chunks(ids, BATCH):
            self._col.delete(at.tolist())
        self._col.flush()
        self._col._wait_for_bg()
        self._rows = np.setdiff1d(self._rows, ids, assume_unique=True)

    def search(self, queries: np.ndarray, k: int, ef: int | None) -> tuple[np.ndarray, np.ndarray]:
        """Up to k results per query, padded with id -1 and nan; ef None leaves Milvus Lite's default (64)."""
        return self._search(queries, k, ef, None)

    def search_filtered(self, queries: np.ndarray, k: int, ef: int | None,
                        allowed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Up to k passing results per query, through Milvus Lite's filter expression on the primary key
        (module doc), padded with id -1 and nan."""
        assert self._col is not None and self._rows is not None, "build first"
        return self._search(queries, k, ef, _expression(self._rows, passing(allowed, self._rows)))

    def _search(self, queries: np.ndarray, k: int, ef: int | None, expr: str | None) -> tuple[np.ndarray, np.ndarray]:
        assert self._col is not None, "build first"
        ids = np.full((len(queries), k), -1, dtype=np.int64)
        scores = np.full((len(queries), k), np.nan, dtype=np.float32)
        if len(queries) == 0 or k == 0:
            return ids, scores
        params = None if ef is None else {"ef": int(ef)}
        with self._lock, _omp_threads(self.search_threads):
            hits = self._col.search(np.asarray(queries, dtype=np.float32).tolist(), top_k=k, output_fields=[],
                                    search_params=params, expr=expr)
        for row, found in enumerate(hits):
            for col, hit in enumerate(found):
                # IP: the inner product; L2: Milvus squares its sqrt distance back (collection.py:2450)
                ids[row, col], scores[row, col] = hit["id"], hit["distance"]
        return ids, scores

    def stored_vectors(self) -> tuple[np.ndarray, np.ndarray]:
        """Each segment's pks and its faiss index's vectors decoded (`reconstruct_n`; module doc)."""
        assert self._col is not None, "build first"
        rows, vectors = [], []
        for seg in self._col._segment_cache.values():
            index = seg.indexes.get(VECTOR)
            if index is None or len(seg.pks) == 0:
                continue
            rows.append(np.asarray(list(seg.pks), dtype=np.int64))
            vectors.append(np.asarray(index._index.reconstruct_n(0, index._index.ntotal), dtype=np.float32))
        return np.concatenate(rows), np.concatenate(vectors)

    def stored_queries(self, queries: np.ndarray) -> np.ndarray:
        """Unchanged: faiss's SQ compares float queries with the decoded codes."""
        return np.ascontiguousarray(queries, dtype=np.float32)

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
        self._db = self._col = self._dir = self._rows = None
        release(db.close if db is not None else None, directory)


def _expression(rows: np.ndarray, passes: np.ndarray) -> str:
    """The mask as a Milvus boolean expression on the primary key: the shorter of the passing rows' `in` list
    and the failing rows' `not in` list (Milvus Lite takes an empty list: `in []` passes nothing)."""
    kept, dropped = rows[passes], rows[~passes]
    if len(kept) <= len(dropped):
        return f"{PK} in [{', '.join(map(str, kept.tolist()))}]"
    return f"{PK} not in [{', '.join(map(str, dropped.tolist()))}]"


BACKEND = Backend(name="milvus_lite", params=MilvusLiteParams, ef_search=(DEFAULT_EF,), index=MilvusLiteIndex,
                  build_cost=1.3, library=LIBRARY,
                  capabilities=Capabilities(spaces=frozenset({"ip", "l2"}), order_controlled=False,
                                            deterministic=True, graph=False, seeded=False, servable=False,
                                            # expr -> valid_mask -> faiss IDSelectorBatch in SearchParametersHNSW
                                            # (milvus_lite/index/faiss_hnsw.py:183-189): faiss's layer-0 search
                                            # traverses points that fail, returns passing ones (module doc)
                                            filtering="in_graph",
                                            # a tombstone in the segment's mask, traversed by faiss, never
                                            # returned (search/executor_indexed.py:163-213; module doc)
                                            deletes="tombstone"))
