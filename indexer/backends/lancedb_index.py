"""LanceDB (lancedb 0.40.0, lance 13.0.0 inside) IVF_HNSW_* with one partition, behind the VectorIndex protocol.

LanceDB has HNSW only as the sub-index of an IVF partition; with num_partitions=1 it is one HNSW graph over
every row. `index_type` picks the vector storage beside the graph: IVF_HNSW_SQ (8-bit scalar codes), the
HNSW type LanceDB's docs and its cloud client point to (lancedb/remote/table.py:531 "use IVF_HNSW_SQ"), or
IVF_HNSW_FLAT (raw float32). IVF_HNSW_PQ is left out: its PQ codebook is trained by an unseeded k-means,
so two builds differ (checked), and this backend is declared deterministic.

Defaults: m 20 and ef_construction 300, the HnswSq / HnswFlat dataclasses (lancedb/index.py:445-446 and
536-537, 0.40.0; lance's own Rust default efC 150 is not what Python users get). ef left unset is lance's
HnswQueryParams `k + k / 2` (lance-index 13.0.0 src/vector/hnsw/builder.rs; lancedb query.py:1766 "1.5 *
limit"); lance refuses ef < k, so an ef below k searches with k. lance validates m >= 4 and ef_construction
>= m, and so does the params model.

Order and determinism (lance source read at lance-format/lance 1c9ae2db, a 13.0.0 beta; the installed
binary carries the same messages): the ordered table scan is transformed batch by batch in order
(`buffered`, lance src/index/vector/builder.rs shuffle_data) and the default TwoFileShuffler's counting sort
by partition is stable (lance-index src/vector/v3/shuffler.rs sort_to_interleave_indices), so with one
partition graph node i is table row i, written in `order` with an `id` column holding the dataset row
number. Levels come from SmallRng seeded with the constant HNSW_LEVEL_RNG_SEED 42 (lance-index
src/vector/hnsw/builder.rs `with_params`): fixed, not a user seed (seeded=False). The nodes
are inserted by `(0..n).into_par_iter()` on rayon's global pool; RAYON_NUM_THREADS=1 makes that one thread,
inserting node 0, 1, 2, ... one at a time. One exception to "exactly this order": the node that draws the
highest level (its position is fixed by the seed) is the entry point and is placed first. The variable is
read once, when lance's rayon pool starts (its first build in this process), so every build runs with it
set to 1 (restored afterwards) and refuses to run if lancedb was imported elsewhere first without it. With
it two builds are identical (and faster here); without it they differ.

Scores: SQ distances are approximate (and a cosine SQ index reports squared L2 of normalised vectors), so
search computes the exact score of each returned id from the vectors in float64 (ip: inner product, l2:
squared L2) and orders each row by it; LanceDB's own ranking picks the ids. ip is searched with distance
cosine (what a cosine user picks; vectors arrive normalised), l2 with l2. The table and index live in a
scratch directory removed by close(); nbytes is LanceDB's size of the index files (graph and codes, not the
table's vectors). Not saved to one file, so not servable.

Filtering is LanceDB's own: the mask becomes an SQL predicate on the `id` column every row already stores
(no extra storage), `id IN (...)` over the passing rows or `id NOT IN (...)` over the failing ones, whichever
list is shorter (`TRUE`/`FALSE` when one is empty), given to `.where(...)`. LanceDB has two modes:
- prefilter, the default and `search_filtered`'s: lancedb 0.40.0 `LanceVectorQueryBuilder.where(where,
  prefilter=None)` leaves the query's mode unset (lancedb/query.py:1904-1932, `_postfilter = None` at 1631),
  table.py:6420-6421 calls `postfilter()` only when it is set, and the Rust QueryRequest's default is
  `prefilter: true` (lancedb rust/lancedb/src/query.rs:853, 899 at 45cd0534, 0.38.0-beta.4; "By default filtering will be
  performed before the search", lancedb/query.py:3372-3390). lance evaluates the predicate over the table
  first (the plan's `LanceRead ... full_filter=` feeding `ANNSubIndex`) and hands the HNSW sub-index the
  passing rows as a bitset. lance-index 13's `impl IvfSubIndex for HNSW`, `fn search`
  (rust/lance-index/src/vector/hnsw/builder.rs, lance-format/lance 1c9ae2db) then picks by how many pass:
  all: the unfiltered search; fewer than 10% of the partition's rows (`remained < self.len() * 10 / 100`,
  "few matching rows: brute force is cheaper and exact"): `flat_search`, brute force over the passing rows
  (pre); otherwise, unless ApproxMode::Fast asks for ACORN (lancedb 0.40's Python API has no approx_mode,
  and the default is Normal), `search_basic` with the bitset: `beam_search_borrowed` and its
  `beam_search_loop!` (rust/lance-index/src/vector/graph.rs) score every neighbour and push it onto the
  candidates when it is nearer than the furthest result, passing or not; the bitset (`accepts_result`) only
  gates the results, a list of ef: in_graph. So the declared strategy is
  in_graph, with exact brute force below 10% passing (checked against the installed binary in
  test_filtered_lancedb: on a lean graph of 500 points at the default ef, 49 passing rows are answered
  exactly, 50 are not). With IVF_HNSW_SQ both rank by the 8-bit codes.
- postfilter (`search_filtered(..., mode="postfilter")`, `.where(..., prefilter=False)`): the unfiltered
  ANN search for `limit` rows, then a FilterExec over them; "it can cause the query to return fewer than
  `limit` results (or even no results) if none of the nearest results match the filter" (lancedb/query.py,
  AsyncStandardQuery.postfilter, 3372-3390). Such rows are padded with id -1.
Cost: lance plans each query of a batch with the whole list in it, and a batch's planning grows faster than
its size, so filtered queries go FILTER_BATCH at a time (100 queries over 100,000 rows with a 50,000-id list:
0.07 s a query in tens, 0.18 s in one batch of 100; a BTREE index on `id`, not built here, made it about 3x
faster).

Deletes and inserts (base.Mutable, for a runbook); lance's Rust read at lancedb/lance d2039d75 and 00ae1f87
(line numbers of the first; the wheel of lancedb 0.40.0 ships no sources), what the binary does checked by
hand:
- `table.delete("id IN (...)")` (lancedb/table.py:4357-4359) writes a deletion file for each fragment it
  touches (`_deletions/*.arrow`, seen on disk) and leaves the data and the index as they are. At search time
  the deleted rows go into the same row mask as a filter (`DatasetPreFilter.deleted_ids`,
  rust/lance/src/index/prefilter.rs:51), which the HNSW search reads as the prefilter bitset above: deleted
  nodes are walked, never returned (and below 10% of the partition left, brute force over the rest). A
  tombstone. Ids are a column nothing keeps unique, so a deleted id is added again as a new row: ids are
  reused.
- `table.add(rows)` writes a new fragment and leaves the index alone: `index_stats` counts the rows as
  unindexed, and a search's plan is a UnionExec of the HNSW search over the indexed fragments and a flat
  KNNVectorDistance over a LanceScan of the unindexed ones (its `explain_plan`; "Skip a flat search of
  unindexed data" is what `fast_search` turns off, lancedb/query.py:1990-2000). New rows are searched exactly.
- with the build parameter `optimize: true`, each delete and each insert is followed by `table.optimize()`
  (lancedb/table.py:4539), which compacts, prunes and indexes. Compaction rewrites a fragment without its
  deleted rows once more than 10% of them are deleted (`CompactionOptions::default`,
  materialize_deletions_threshold 0.1, rust/lance/src/dataset/optimize.rs:168) and remaps the index; HNSW's
  remap rebuilds that partition's graph from the remapped storage ("the graph needs to be rebuilt", `impl
  IvfSubIndex for HNSW`, rust/lance-index/src/vector/hnsw/builder.rs:777-785): "compact" (a fragment with
  fewer than 10% deleted keeps its deletion file, a tombstone, until more go). The index step adds the
  unindexed rows as a delta index, a second HNSW graph over them searched beside the first (`num_indices` 2
  and `deltas=2` in the plan, seen). Old versions are pruned at once (cleanup_older_than 0: nothing else reads
  this scratch table).

Exact scores need each id's vector: an insert copies the vectors into one array by id (the build's array is
the caller's, by row, until then).
"""

from __future__ import annotations

import os
import shutil
import sys
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import Field, model_validator

from indexer.backends.base import chunks, passing
from indexer.backends.declaration import (
    Backend,
    BuildParams,
    Capabilities,
    FilterModes,
    FilterStrategy,
    Library,
)
from indexer.common.errors import UserError
from indexer.common.fileio import scratch_dir

DEFAULT_EF = 15  # lance's ef for k=10 when none is given: k + k / 2 (HnswQueryParams, lance-index 13.0.0)
LIBRARY = Library(distribution="lancedb", module="lancedb", extra="lancedb")
RAYON_THREADS = "RAYON_NUM_THREADS"
BATCH = 1024  # queries per LanceDB multi-vector search: bounds the result table, not the answers
FILTER_BATCH = 10  # queries per filtered search: the fastest batch measured with a long id list (module doc)
SCORE_CELLS = 1 << 22  # float64 cells (queries x k x dim) gathered at once for the exact scores
DISTANCE: dict[str, Literal["cosine", "l2"]] = {"ip": "cosine", "l2": "l2"}  # LanceDB distance_type
_imported_here = False  # lancedb was first imported by this module, with its rayon pool pinned to one thread


class LancedbParams(BuildParams):
    """LanceDB's HNSW parameters under the common names (M is its `m`), and the storage beside the graph."""

    M: int = Field(default=20, ge=4, le=512)  # HnswSq.m / HnswFlat.m (lancedb/index.py:445, 536; 0.40.0)
    ef_construction: int = Field(default=300, ge=4)  # HnswSq.ef_construction (index.py:446, 537; 0.40.0)
    index_type: Literal["IVF_HNSW_SQ", "IVF_HNSW_FLAT"] = "IVF_HNSW_SQ"
    # left out of rows and keys while false, so every index built before it keeps its key
    optimize: bool = Field(default=False, exclude_if=lambda v: not v,
                           description="table.optimize() after each delete and insert")

    def label(self) -> str:
        return super().label().replace(" True", " optimize") if self.optimize else super().label()

    @model_validator(mode="after")
    def _ef_construction_covers_m(self) -> LancedbParams:
        if self.ef_construction < self.M:  # lance's HnswBuildParams::validate refuses it at build time
            raise ValueError(f"lancedb needs ef_construction >= M, got {self.ef_construction} < {self.M}")
        return self



@contextmanager
def _one_rayon_thread() -> Iterator[Any]:
    """lancedb, with RAYON_NUM_THREADS=1 while the block runs (and the previous value back afterwards).

    rayon reads the variable once, when lance's global pool starts on its first parallel iterator: the
    first build of the process, which runs in this block. If lancedb was imported by someone else first,
    that pool may already run on every core, and the build could not be reproduced.
    """
    global _imported_here
    if "lancedb" in sys.modules and not _imported_here and os.environ.get(RAYON_THREADS) != "1":
        raise UserError("lancedb was imported before the lancedb backend could pin its build to one thread; "
                        f"set {RAYON_THREADS}=1 before starting the process")
    previous = os.environ.get(RAYON_THREADS)
    os.environ[RAYON_THREADS] = "1"
    # lance 0.40 warns on stderr, once per table, that its index statistics will stop counting centroids; the
    # statistics are not read here, so opt in to the coming behaviour and keep a run's output quiet
    os.environ.setdefault("LANCE_INCLUDE_VECTOR_CENTROIDS", "false")
    try:
        import lancedb

        _imported_here = True
        yield lancedb
    finally:
        if previous is None:
            os.environ.pop(RAYON_THREADS, None)
        else:
            os.environ[RAYON_THREADS] = previous


class LancedbIndex:
    name = "lancedb"

    def __init__(self, dim: int, metric: str, *, M: int, ef_construction: int, index_type: str, seed: int,
                 search_threads: int = 1, optimize: bool = False):
        self.dim, self.metric = dim, metric
        self.M, self.ef_construction, self.index_type = M, ef_construction, index_type
        self.optimize = optimize
        self.seed = seed  # lance takes no seed: its level RNG has the fixed seed 42
        self.search_threads = search_threads  # unused: LanceDB runs a batch's queries on its own runtime
        self._dir: str | None = None
        self._table: Any = None  # lancedb.table.LanceTable
        self._vectors: np.ndarray | None = None  # the vectors by id, for the exact scores
        self._owned = False  # `_vectors` is this index's own copy (after an insert), not the caller's array
        self._rows: np.ndarray | None = None  # the ids the table holds, sorted: what a filter names

    def _schema(self) -> Any:
        import pyarrow as pa

        return pa.schema([("id", pa.int64()), ("vector", pa.list_(pa.float32(), self.dim))])

    def _reader(self, vectors: np.ndarray, rows: np.ndarray, ids: np.ndarray) -> Any:
        """`vectors[rows]` labelled `ids`, as one stream of record batches gathered a chunk at a time."""
        import pyarrow as pa

        schema = self._schema()

        def batches() -> Iterator[pa.RecordBatch]:
            for at in chunks(np.arange(len(rows))):
                ordered = np.ascontiguousarray(vectors[rows[at]], dtype=np.float32)
                yield pa.RecordBatch.from_arrays([
                    pa.array(np.asarray(ids[at], dtype=np.int64)),
                    pa.FixedSizeListArray.from_arrays(pa.array(ordered.reshape(-1)), self.dim),
                ], schema=schema)

        return pa.RecordBatchReader.from_batches(schema, batches())

    def _create(self, rows: Any) -> None:
        """The table of `rows` (a record batch reader) and its HNSW index, in a new scratch directory."""
        with _one_rayon_thread() as lancedb:
            from lancedb.index import HnswFlat, HnswSq

            self._dir = str(scratch_dir("indexer-lancedb-"))  # after the check: a refusal leaves nothing
            config = HnswSq if self.index_type == "IVF_HNSW_SQ" else HnswFlat
            table = lancedb.connect(self._dir).create_table("t", rows)
            table.create_index("vector", config=config(
                distance_type=DISTANCE[self.metric], num_partitions=1, m=self.M, ef_construction=self.ef_construction,
            ))
        self._table = table

    def build(self, vectors: np.ndarray, order: np.ndarray) -> None:
        self.close()
        order = np.asarray(order, dtype=np.int64)
        # one streamed write: lance lays the rows out in files and row groups as it would one table's
        self._create(self._reader(vectors, order, order))
        self._vectors = vectors
        self._rows = np.sort(order)

    @property
    def reuses_ids(self) -> bool:
        """`id` is a column nothing keeps unique: a deleted id is added again as a new row (module doc)."""
        return True

    @property
    def delete_mode(self) -> str:
        """Deletion files (tombstone); with `optimize`, compaction rebuilds the graph without them."""
        return "compact" if self.optimize else "tombstone"

    def insert(self, vectors: np.ndarray, ids: np.ndarray) -> None:
        """Add `vectors` under `ids` as one new fragment (the first insert creates the table and its index),
        searched flat until `optimize` indexes it (module doc)."""
        ids = np.asarray(ids, dtype=np.int64)
        self._keep(vectors, ids)
        rows = self._reader(vectors, np.arange(len(ids)), ids)
        if self._table is None:
            self._create(rows)
        else:
            self._table.add(rows)
            self._optimize()
        held = self._rows if self._rows is not None else np.empty(0, dtype=np.int64)
        self._rows = np.union1d(held, ids)

    def delete(self, ids: np.ndarray) -> None:
        """`table.delete("id IN (...)")`, a chunk of ids a call (module doc)."""
        assert self._table is not None and self._rows is not None, "build or insert first"
        ids = np.asarray(ids, dtype=np.int64)
        for at in chunks(ids):
            self._table.delete(f"id IN ({', '.join(map(str, at.tolist()))})")
        self._optimize()
        self._rows = np.setdiff1d(self._rows, ids, assume_unique=True)

    def _optimize(self) -> None:
        """`table.optimize()` when the index is built with `optimize`: compaction, pruning, a delta index."""
        if self.optimize:
            with warnings.catch_warnings():  # it warns of other readers; none reads this scratch table
                warnings.filterwarnings("ignore", r"optimize\(cleanup_older_than=0\)", UserWarning)
                self._table.optimize(cleanup_older_than=timedelta(0))

    def _keep(self, vectors: np.ndarray, ids: np.ndarray) -> None:
        """Hold `vectors` under `ids` for the exact scores, in this index's own array (grown by doubling)."""
        held = self._vectors
        need = int(ids.max()) + 1 if len(ids) else 0
        if held is None or not self._owned or need > len(held):
            size = max(need, len(held) if held is not None else 0)
            if self._owned and held is not None:
                size = max(size, 2 * len(held))
            grown = np.zeros((size, self.dim), dtype=np.float32)
            if held is not None:
                grown[: len(held)] = held
            self._vectors, self._owned = grown, True
        assert self._vectors is not None
        self._vectors[ids] = vectors

    def search(self, queries: np.ndarray, k: int, ef: int | None) -> tuple[np.ndarray, np.ndarray]:
        """Up to k results per query, padded with id -1 and score nan where the index holds fewer."""
        assert self._table is not None and self._vectors is not None, "build first"
        q = np.ascontiguousarray(queries, dtype=np.float32)
        return _exact_and_sorted(self._vectors, q, self._ids(q, k, ef, None, True, BATCH), self.metric)

    def search_filtered(self, queries: np.ndarray, k: int, ef: int | None, allowed: np.ndarray, *,
                        mode: str = "prefilter") -> tuple[np.ndarray, np.ndarray]:
        """Up to k passing results per query, through LanceDB's `where` on the `id` column (module doc), padded
        with id -1 and score nan, in `mode`: prefilter (LanceDB's default) or postfilter."""
        assert self._table is not None and self._vectors is not None and self._rows is not None, "build first"
        prefilter = _prefilter(mode)
        where = _where(self._rows, passing(allowed, self._rows))
        q = np.ascontiguousarray(queries, dtype=np.float32)
        return _exact_and_sorted(self._vectors, q, self._ids(q, k, ef, where, prefilter, FILTER_BATCH), self.metric)

    def _ids(self, q: np.ndarray, k: int, ef: int | None, where: str | None, prefilter: bool,
             batch: int) -> np.ndarray:
        """The ids LanceDB returns for each query (at most k; -1 after them), `batch` queries a call."""
        ids = np.full((len(q), k), -1, dtype=np.int64)
        if k == 0:
            return ids
        for start in range(0, len(q), batch):
            chunk = q[start : start + batch]
            # selecting _distance keeps lance from warning that it adds the column unasked
            search = self._table.search(list(chunk)).distance_type(DISTANCE[self.metric]).limit(k)
            if ef is not None:
                search = search.ef(max(int(ef), k))
            if where is not None:
                search = search.where(where, prefilter=prefilter)
            got = search.select(["id", "_distance"]).to_arrow()
            # a batch of one query comes back without query_index
            which = got["query_index"].to_numpy() if "query_index" in got.column_names else np.zeros(got.num_rows)
            which = which.astype(np.int64)
            found = got["id"].to_numpy().astype(np.int64)
            by_query = np.argsort(which, kind="stable")
            which, found = which[by_query], found[by_query]
            first = np.searchsorted(which, which, side="left")
            rank = np.arange(len(which)) - first
            keep = rank < k
            ids[start + which[keep], rank[keep]] = found[keep]
        return ids

    def plan(self, query: np.ndarray, k: int, allowed: np.ndarray | None = None, mode: str = "prefilter") -> str:
        """LanceDB's physical plan of one search (filtered by `allowed` in `mode` when given), to show that it
        walks the index and where the filter runs."""
        assert self._table is not None and self._rows is not None, "build first"
        search = self._table.search(np.asarray(query, dtype=np.float32)).distance_type(DISTANCE[self.metric])
        if allowed is not None:
            search = search.where(_where(self._rows, passing(allowed, self._rows)), prefilter=_prefilter(mode))
        return str(search.limit(k).select(["id", "_distance"]).explain_plan(verbose=True))

    def nbytes(self) -> int:
        """LanceDB's size of the index files: graph and SQ codes (or float32 vectors, for FLAT)."""
        assert self._table is not None, "build first"
        return int(sum(index.size_bytes or 0 for index in self._table.list_indices()))

    def save(self, path: Path) -> None:
        raise NotImplementedError("lancedb keeps its table and index as a directory of lance files, not one file")

    def load(self, path: Path, n: int) -> None:
        raise NotImplementedError("lancedb indexes are not saved (see save)")

    def close(self) -> None:
        """Drop the table and remove the scratch directory (safe twice, and after a failed build)."""
        self._table, self._vectors, self._rows, self._owned = None, None, None, False
        directory, self._dir = self._dir, None
        if directory is not None:
            shutil.rmtree(directory, ignore_errors=True)


def _where(rows: np.ndarray, passes: np.ndarray) -> str:
    """The mask as an SQL predicate on `id`: the shorter of the passing rows' IN list and the failing rows'
    NOT IN list (ids are never null, so NOT IN means what it says); TRUE or FALSE when one list is empty."""
    kept, dropped = rows[passes], rows[~passes]
    if not len(dropped):
        return "TRUE"
    if not len(kept):
        return "FALSE"
    if len(kept) <= len(dropped):
        return f"id IN ({', '.join(map(str, kept.tolist()))})"
    return f"id NOT IN ({', '.join(map(str, dropped.tolist()))})"


def _exact_and_sorted(vectors: np.ndarray, queries: np.ndarray, ids: np.ndarray, metric: str
                      ) -> tuple[np.ndarray, np.ndarray]:
    """The exact score of each returned id (float64: inner product, or squared L2), each row ordered by it
    (best first, padding last)."""
    scores = np.full(ids.shape, np.nan, dtype=np.float64)
    rows = max(1, SCORE_CELLS // max(1, ids.shape[1] * vectors.shape[1]))
    for start in range(0, len(ids), rows):
        block = ids[start : start + rows]
        xs = vectors[np.maximum(block, 0)].astype(np.float64)
        q = queries[start : start + rows].astype(np.float64)
        got = np.einsum("qkd,qd->qk", xs, q) if metric == "ip" else ((xs - q[:, None]) ** 2).sum(-1)
        scores[start : start + rows] = np.where(block >= 0, got, np.nan)
    key = np.where(np.isnan(scores), np.inf, -scores if metric == "ip" else scores)
    rank = np.argsort(key, axis=1, kind="stable")
    return np.take_along_axis(ids, rank, axis=1), np.take_along_axis(scores, rank, axis=1).astype(np.float32)


def _prefilter(mode: str) -> bool:
    """`where`'s prefilter flag for a filter mode (module doc)."""
    if mode not in FILTER_MODES:
        raise ValueError(f"lancedb's filter modes are {', '.join(FILTER_MODES)}, not {mode!r}")
    return mode == "prefilter"


FILTER_MODES: dict[str, FilterStrategy] = {
    # lance-index 13 HNSW `search` with the bitset, beam_search_borrowed (graph.rs) returns passing nodes only
    # but traverses all; below 10% passing, flat_search (module doc); lancedb's default (query.rs:853, 899)
    "prefilter": "in_graph",
    # the unfiltered ANN search for `limit` rows, then a FilterExec over them (lancedb/query.py:3372-3390)
    "postfilter": "post",
}
BACKEND = Backend(name="lancedb", params=LancedbParams, ef_search=(DEFAULT_EF,), index=LancedbIndex,
                  library=LIBRARY, build_cost=1.4,
                  capabilities=Capabilities(spaces=frozenset({"ip", "l2"}), order_controlled=True,
                                            deterministic=True, graph=False, seeded=False, servable=False,
                                            # prefilter, the default (FILTER_MODES)
                                            filtering="in_graph",
                                            filter_modes=FilterModes(strategies=FILTER_MODES),
                                            # deletion files, walked but never returned (prefilter.rs); the
                                            # optimize variant compacts (lance optimize.rs; module doc)
                                            deletes="tombstone"))
