"""Chroma (chromadb 1.5.9, its Rust engine in-process) behind the VectorIndex protocol.

Defaults are Chroma's: max_neighbors 16, ef_construction 100, ef_search 100, space l2
(chromadb/api/collection_configuration.py:437-449 populate_create_hnsw_defaults, and what a collection
created with no configuration reports in 1.5.9). The graph is Chroma's fork of hnswlib.

A build makes a PersistentClient in a scratch directory (removed by close(); anonymized telemetry off,
no embedding function, so nothing is downloaded or sent), creates one collection with the configuration
{"hnsw": {space, max_neighbors, ef_construction, ef_search}} and adds the vectors in batches of the
client's max batch size (5461 here), ids = the dataset row numbers as strings. Chroma does not insert a
batch in the order given, nor reproducibly: two builds of the same data in the same order answer
differently (measured, also with the `num_threads` setting at 1). One vector per call does reproduce the
order (measured) but costs ~30 ms a vector on a persistent client. Chroma takes no seed.

ef: 1.5 lets `collection.modify(configuration={"hnsw": {"ef_search": ef}})` change ef_search, but an index
already loaded keeps the ef it was opened with; so a search with another ef modifies the configuration,
then closes and reopens the client, which loads the index from disk with the new ef.

Distances: ip is Chroma's ip space, whose distance is 1 - <q, x> (converted back); l2's distance is
already the squared L2. The index files (the HNSW segment's directory) and the SQLite database stay in
the scratch directory; they are not one file, so the backend is not servable.

Filtered search is Chroma's own filter on the ids it already stores (the row numbers): `query(...,
ids=[passing rows])`, "Optional subset of IDs to search within" (chromadb/api/models/Collection.py:205,239),
applied to every query of the batch; nothing is added at build. The engine is compiled Rust, read in
chroma-core/chroma at tag 1.5.9 and its hnswlib fork at the commit Cargo.lock pins (chroma-core/hnswlib
6868102b): the local executor turns the filter into a list of allowed HNSW labels (an empty list answers
nothing; rust/frontend/src/executor/local.rs:160-225) and hands it to the HNSW reader, which searches the
graph unless the index is under 100 points with over 20% of them deleted (rust/segment/src/local_hnsw.rs:
293-359; never here). The fork's knn_query wraps the list in an `AllowAndDisallowListFilterFunctor`
(src/bindings.cpp:5-25, 197-221; the installed chromadb_rust_bindings .so holds that name), and `searchKnn`
walks the upper layers unfiltered, then layer 0 with `searchBaseLayerST`, which follows every link as
without a filter and puts a point among its results only when the functor passes it, and stops only once it
holds max(ef, k) passing points (hnswlib/hnswalg.h:534-629, 2044-2107): "in_graph", as hnswlib's own.

The other filter is `where` on metadata, which would need the row stored as metadata at build (one SQLite
row per point): the local executor first evaluates it in SQLite into the allowed ids (local.rs:173-205),
then searches the graph the same way. Its `{"row": {"$in": [...]}}` binds one SQL variable per value, and a
mask of 40,000 rows fails with "too many SQL variables" (measured, chromadb 1.5.9), so the mask goes as ids.

Deletes and inserts (base.Mutable, for a runbook), read at the same tag and fork commit:
`collection.delete(ids=...)` and `collection.add(...)`, in batches of the client's max batch size. The local
HNSW segment applies the log (`apply_log_chunk`, rust/segment/src/local_hnsw.rs:648-840): a delete
(local_hnsw.rs:718-731) drops the id's label from its id map and calls the index's `delete`
(rust/index/src/hnsw.rs:184-188), the fork's `mark_deleted` -> `markDelete`, which "Marks an element with the
given label deleted, does NOT really change the current graph" (hnswlib/hnswalg.h:1548-1550); the layer-0
search skips a marked point as a result but follows its links (hnswalg.h:614): a tombstone. The index is made
with allow_replace_deleted (src/hnsw.rs:217-230) but the fork's `add_item` calls `addPoint(data, id)` without
replace_deleted (src/bindings.cpp:137-145), and an add gets a fresh label (`next_label`,
local_hnsw.rs:673-695): deleted slots are never reused; the index grows to the next power of two of its
points, deleted ones included (local_hnsw.rs:775-783). The string id is free again once deleted, so ids are
reused (under a new label). The local segment has no compaction of its own; one exception: under 100 live
points with over 20% deleted, a query is answered by brute force over the live ones (local_hnsw.rs:293-330).
"""

from __future__ import annotations

import os
import threading
from typing import Any

import numpy as np
from pydantic import Field

from indexer.backends.base import chunks, passing
from indexer.backends.declaration import Backend, BuildParams, Capabilities, Library
from indexer.backends.scratch import KeptBySystem, release
from indexer.common.fileio import scratch_dir

LIBRARY = Library(distribution="chromadb", module="chromadb", extra="chroma")
DEFAULT_EF = 100  # ef_search: populate_create_hnsw_defaults (collection_configuration.py:448), chromadb 1.5.9
COLLECTION = "vectors"  # Chroma wants 3-512 characters


class ChromaParams(BuildParams):
    """Chroma's HNSW parameters (max_neighbors, ef_construction) under the common names."""

    M: int = Field(default=16, ge=2, le=512)  # max_neighbors: collection_configuration.py:446, chromadb 1.5.9
    ef_construction: int = Field(default=100, ge=1)  # ef_construction: collection_configuration.py:444



class ChromaIndex(KeptBySystem):
    KEPT_AS = "Chroma keeps a directory (SQLite database and HNSW segment files)"
    name = "chroma"

    def __init__(self, dim: int, metric: str, *, M: int, ef_construction: int, seed: int,
                 search_threads: int = 1):
        self.dim, self.metric = dim, metric
        self.M, self.ef_construction = M, ef_construction
        self._dir: str | None = None
        self._client: Any = None  # chromadb ClientAPI
        self._col: Any = None  # its Collection
        self._ef = DEFAULT_EF  # the ef_search the open index was loaded with
        self._rows: np.ndarray | None = None  # the rows the collection holds (its ids), for filtered searches
        self._lock = threading.Lock()  # a search may reopen the client

    def _open(self) -> None:
        import chromadb
        from chromadb.config import Settings

        assert self._dir is not None
        settings = Settings(anonymized_telemetry=False)
        self._client = chromadb.PersistentClient(path=self._dir, settings=settings)

    def _create(self) -> None:
        """A new client in a new scratch directory, and its one empty collection."""
        self.close()
        self._dir = str(scratch_dir("indexer-chroma-"))
        self._open()
        hnsw = {"space": self.metric, "max_neighbors": self.M, "ef_construction": self.ef_construction,
                "ef_search": DEFAULT_EF}
        self._col = self._client.create_collection(COLLECTION, configuration={"hnsw": hnsw},
                                                   embedding_function=None)  # None: no model to download
        self._ef = DEFAULT_EF
        self._rows = np.empty(0, dtype=np.int64)

    def _add(self, vectors: np.ndarray, rows: np.ndarray, ids: np.ndarray) -> None:
        """`vectors[rows]` under `ids` (as strings), a max batch at a time."""
        batch = int(self._client.get_max_batch_size())
        for at in chunks(np.arange(len(rows)), batch):
            self._col.add(ids=[str(i) for i in ids[at].tolist()],
                          embeddings=np.ascontiguousarray(vectors[rows[at]]))
        assert self._rows is not None
        self._rows = np.union1d(self._rows, ids)

    def build(self, vectors: np.ndarray, order: np.ndarray) -> None:
        self._create()
        order = np.asarray(order, dtype=np.int64)
        self._add(vectors, order, order)

    reuses_ids = True  # A deleted id is free again: added back, it gets a new label (module doc).
    delete_mode = "tombstone"

    def insert(self, vectors: np.ndarray, ids: np.ndarray) -> None:
        """`collection.add` under `ids` (the first insert creates the collection)."""
        if self._col is None:
            self._create()
        ids = np.asarray(ids, dtype=np.int64)
        self._add(vectors, np.arange(len(ids)), ids)

    def delete(self, ids: np.ndarray) -> None:
        """`collection.delete(ids=...)`, a max batch at a time: marked deleted in the graph (module doc)."""
        assert self._col is not None and self._rows is not None, "build or insert first"
        ids = np.asarray(ids, dtype=np.int64)
        for at in chunks(ids, int(self._client.get_max_batch_size())):
            self._col.delete(ids=[str(i) for i in at.tolist()])
        self._rows = np.setdiff1d(self._rows, ids, assume_unique=True)

    def _set_ef(self, ef: int) -> None:
        """Store ef_search in the collection's configuration, then reopen so the index is loaded with it."""
        if ef == self._ef:
            return
        self._col.modify(configuration={"hnsw": {"ef_search": ef}})
        self._client.close()
        self._col = None
        self._open()
        self._col = self._client.get_collection(COLLECTION, embedding_function=None)
        self._ef = ef

    def search(self, queries: np.ndarray, k: int, ef: int | None) -> tuple[np.ndarray, np.ndarray]:
        """Up to k results per query, padded with id -1 and nan; ef None is Chroma's default (100)."""
        return self._query(queries, k, ef, None)

    def search_filtered(self, queries: np.ndarray, k: int, ef: int | None,
                        allowed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Up to k passing results per query, through Chroma's id filter (see the module's doc), padded with
        id -1 and nan; an empty mask answers nothing (Chroma returns no result for an empty id list)."""
        assert self._rows is not None, "build first"
        rows = self._rows[passing(allowed, self._rows)]
        return self._query(queries, k, ef, [str(r) for r in rows.tolist()])

    def _query(self, queries: np.ndarray, k: int, ef: int | None,
               within: list[str] | None) -> tuple[np.ndarray, np.ndarray]:
        assert self._col is not None, "build first"
        if len(queries) == 0 or k == 0:
            return np.full((len(queries), k), -1, dtype=np.int64), np.full((len(queries), k), np.nan, np.float32)
        with self._lock:
            self._set_ef(DEFAULT_EF if ef is None else int(ef))
            found = self._col.query(query_embeddings=np.asarray(queries, dtype=np.float32), n_results=k,
                                    ids=within, include=["distances"])
        ids = np.full((len(queries), k), -1, dtype=np.int64)
        dist = np.full((len(queries), k), np.nan, dtype=np.float64)
        for row, (got, d) in enumerate(zip(found["ids"], found["distances"], strict=True)):
            ids[row, : len(got)] = [int(i) for i in got]
            dist[row, : len(d)] = d
        # ip space: Chroma's distance is 1 - <q, x>; l2: already the squared L2
        scores = (1.0 - dist) if self.metric == "ip" else dist
        return ids, scores.astype(np.float32)

    def nbytes(self) -> int:
        """The HNSW segment's files (vectors, links, id map); not the SQLite database beside them."""
        assert self._dir is not None
        return sum(
            os.path.getsize(os.path.join(root, f))
            for root, _, files in os.walk(self._dir) if root != self._dir for f in files
        )

    def close(self) -> None:
        """Close the client (its system stops with its last client) and remove the directory."""
        client, directory = self._client, self._dir
        self._client = self._col = self._dir = self._rows = None
        release(client.close if client is not None else None, directory)


BACKEND = Backend(name="chroma", params=ChromaParams, ef_search=(DEFAULT_EF,), index=ChromaIndex,
                  build_cost=1.8, library=LIBRARY,
                  capabilities=Capabilities(spaces=frozenset({"ip", "l2"}), order_controlled=False,
                                            deterministic=False, graph=False, seeded=False, servable=False,
                                            # query(ids=...): hnswlib fork's filter functor in searchBaseLayerST,
                                            # hnswalg.h:534-629 at chroma-core/hnswlib 6868102b (module doc)
                                            filtering="in_graph",
                                            # mark_deleted, never replaced: the fork's hnswalg.h:1548-1550,
                                            # bindings.cpp:137-145 at 6868102b (module doc)
                                            deletes="tombstone"))
