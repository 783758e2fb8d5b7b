"""DuckDB's vss extension (an HNSW index over a FLOAT[d] column) behind the VectorIndex protocol.

Versions: duckdb 1.5.5 with the vss extension of duckdb-extension-vss 1.5.5 (built from duckdb/duckdb-vss
b833341, the `extension_version` duckdb_extensions() reports), LOADed by path from that package: nothing
is downloaded, and known extensions are not auto-installed. vss wraps a vendored usearch `index_dense`.

Defaults (vss src/hnsw/hnsw_index.cpp:192-217 at b833341): options left out keep usearch's
`index_dense_config_t`, i.e. src/include/usearch/index.hpp:1282-1298 default_connectivity 16 (M; M0 = 2*M,
index.hpp:1318), default_expansion_add 128 (ef_construction), default_expansion_search 64 (ef). The search
ef is the `hnsw_ef_search` setting (hnsw_index.cpp:318-333), set per search under a lock and RESET for None;
usearch searches with max(ef, k).

Order and determinism: each index has its own in-memory database opened with `threads=1`. The table is
filled in `order` (one INSERT; rows keep insertion order, an `id` column holds the dataset row number), and
CREATE INDEX then sinks the rows in scan order and inserts them with one construction task per thread
(hnsw_index_physical_create.cpp:138-246): one thread adds them one at a time in exactly this order. Levels
come from a default-constructed `std::default_random_engine` per thread context (index.hpp:2217): not
seedable, but fixed, so a one-thread build is reproducible and spec seeds change nothing.

Search: one SQL statement per query, `ORDER BY array_cosine_distance(vec, ?::FLOAT[d]) LIMIT k` (ip: metric
cosine, what a cosine user picks; vectors arrive normalised) or `array_distance` (l2: metric l2sq). The plan
is an HNSW_INDEX_SCAN; DuckDB 1.5's late materialisation then joins the k rows back to the table by rowid
(its default plan, kept). Scores are DuckDB's exact distances of the returned rows, converted: ip = 1 - cosine
distance, l2 = array_distance squared. Nothing is on disk: the HNSW index of an in-memory database cannot be
saved to one file without `hnsw_enable_experimental_persistence`, so the backend is not servable.

Filtered search (base.FilteredSearch) is a WHERE in the search statement, on the `id` column every row
already holds (nothing more is stored): `get_bit(getvariable('allowed_rows'), id::INTEGER) = 1`, the mask set
once per call as a BIT variable (bit i, counted from the left as get_bit does, is row i) and bound into each
statement as a constant. vss b833341 does not filter inside its graph search: its optimizer
(src/hnsw/hnsw_optimize_scan.cpp:30-199) rewrites only a TopN over a Projection over a `seq_scan` get (lines
34-80), asks the index for LIMIT rows (`top_n.limit`, line 146; HNSWIndex::InitializeScan runs usearch's
`ef_search(query, limit, ef)`, hnsw_index.cpp:315-341), and when DuckDB has pushed filters into that scan
it pulls them back up into a FILTER above the HNSW_INDEX_SCAN (lines 155-197; the scan function itself has
`filter_pushdown = false`, hnsw_index_scan.cpp:181). So a WHERE that DuckDB pushes into the scan - a
comparison or function of one column, like a user's `category = 'x'`, or this one - is a post-filter over
the k nearest the graph finds: never widened, whatever ef, so a query returns only the passing ones among
those k, padded here with -1 / NaN (the known limitation: duckdb/duckdb-vss issue #35; a later vss adds
pre-filtering, duckdb/duckdb-vss PR #89 and its `hnsw_prefilter` setting, which this build's binary does
not have). A WHERE that DuckDB does not push into the scan leaves the plan without an HNSW_INDEX_SCAN: an
exact, brute-force scan of the passing rows (pre-filtering by giving up the index). Measured with duckdb
1.5.5 (EXPLAIN): `id IN (<literal list>)` becomes a MARK join and `id = ANY(?)` or `id IN (SELECT ...)` a
join, each without the index; `id IN getvariable(...)`, `list_contains(...)` and `get_bit(...)` are pushed
and use it. The bitmask keeps a statement's cost near the unfiltered one: measured at 200,000 rows with
half passing, 5.2 ms per query against 4.2 unfiltered, where `id IN getvariable(<list of the passing ids>)`
took 87 ms. Only the default, post, is declared.

Deletes (base.Mutable, for a runbook): `delete` is `DELETE FROM t` of the rows whose `id` is in a registered
Arrow table of the ids (one statement, no SQL text growing with the ids); `insert` appends rows as `build`
does, after CREATE INDEX: vss adds each appended row to the graph (HNSWIndex::Append -> Construct,
src/hnsw/hnsw_index.cpp:519-530, 421-479 at b833341), keyed by DuckDB's row id, which a delete never gives
back (a re-inserted `id` is a new row with a new row id), and no constraint holds `id` unique: ids are
reused. The deleted rows leave the index when the DELETE commits (checked: a search for a deleted row's own
vector returns k live rows): HNSWIndex::Delete (hnsw_index.cpp:496-512) calls usearch's `remove` per row
id, which sets the node's key to the free key, drops it from the key lookup and pushes its slot on a free
list (src/include/usearch/index_dense.hpp:1228-1255); a search never returns a free-key node
(index_dense.hpp:1815-1826) but still walks its links, and an insert pops a free slot and relinks it
(`update`, index_dense.hpp:1766-1792). That would be a repair, as usearch's own (usearch_index.py), but
the free list is a `ring_gt` whose `size()` reads 0 when it is full (head == tail, index.hpp:1202-1209),
so the next `reserve` keeps its 64 slots and `push` overwrites them (index.hpp:1227-1254): at most the last
few freed slots are ever reused, the rest stay in the graph for good. Measured: 300 rows deleted, 300
inserted, level 0 holds 1,256 nodes (44 = 300 mod 64 reused). So "tombstone", the README's word too
("Deletes are not immediately reflected in the index, but are instead \"marked\" as deleted", README.md:67).
A query near tombstones may come back short whatever ef: measured on churn_kit's clusters, queries at
deleted points' own vectors got 7-160 of 900 answers missing at ef 10, 50 and 400 alike, the HNSW scan itself
returning fewer than k rows (EXPLAIN ANALYZE). A likely cause: the layer-0 search (index.hpp:3929-3997)
stops once the nearest candidate is past its radius, which it sets from the best allowed result so far
(`radius = top.top().distance`, line 3992) even while a marked node has left that list empty.

The build parameter `compact: true` makes it "compact", but not by the README's `PRAGMA
hnsw_compact_index` (README.md:69): in b833341 that calls usearch's `compact` (index_dense.hpp:1479-1496,
index.hpp:3405-3489), which renumbers every node, removed ones kept (measured: nodes and edges unchanged),
and leaves the key lookup and the free list on the old numbers. Measured after it: a later DELETE marks
other rows' nodes free while the deleted rows' nodes stay searchable (short answers: the late
materialisation's join drops the deleted rows), and a later INSERT reuses stale slots and crashed the
process (SIGSEGV). Fixed upstream after this build (duckdb/duckdb-vss PR #93: "rebuilds key and free-slot
mappings after compaction"). So `compact: true` takes the README's other way, re-creating the index after
each delete: DROP INDEX, then CREATE INDEX over the rows left, in table (insertion) order.
"""

from __future__ import annotations

import importlib.util
import threading
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import Field

from indexer.backends.base import chunks, passing
from indexer.backends.declaration import Backend, BuildParams, Capabilities, Library
from indexer.common.errors import UserError

DEFAULT_EF = 64  # usearch default_expansion_search (vss src/include/usearch/index.hpp:1296-1298, b833341)
EXTENSION_PACKAGE = "duckdb_extension_vss"  # ships vss.duckdb_extension under extensions/v<duckdb version>/
LIBRARY = Library(distribution="duckdb", module="duckdb", extra="duckdb-vss",
                  companions=(("duckdb-extension-vss", EXTENSION_PACKAGE),))
# (index metric, distance function the optimizer matches to it: hnsw_index.cpp:667-676)
METRICS = {"ip": ("cosine", "array_cosine_distance"), "l2": ("l2sq", "array_distance")}
MASK_VARIABLE = "allowed_rows"  # the BIT variable a filtered search sets, and resets after
# the WHERE of a filtered search: DuckDB pushes it into the table scan (a function of one column), so vss's
# optimizer keeps the HNSW_INDEX_SCAN and applies it above (module doc)
FILTER = f"WHERE get_bit(getvariable('{MASK_VARIABLE}'), id::INTEGER) = 1"
_BITS = bytes.maketrans(b"\x00\x01", b"01")  # a bool array's bytes as the characters of a BIT literal


class DuckdbVssParams(BuildParams):
    """vss's HNSW options under the common names (M is vss's `M`, ef_construction its `ef_construction`)."""

    M: int = Field(default=16, ge=2, le=512)  # usearch default_connectivity (index.hpp:1282-1284, b833341)
    ef_construction: int = Field(default=128, ge=1)  # default_expansion_add (index.hpp:1289-1291, b833341)
    # left out of rows and keys while false, so every index built before it keeps its key
    compact: bool = Field(default=False, exclude_if=lambda v: not v,
                          description="re-create the HNSW index after each delete (module doc)")

    def label(self) -> str:
        return super().label().replace(" True", " compact") if self.compact else super().label()


def _extension_path() -> Path:
    """The vss binary duckdb-extension-vss ships for the installed duckdb."""
    import duckdb

    spec = importlib.util.find_spec(EXTENSION_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise UserError(f"backend duckdb_vss needs the package duckdb-extension-vss, which is not installed: "
                        f"pip install -e '.[{LIBRARY.extra}]'")
    root = Path(next(iter(spec.submodule_search_locations)))
    path = root / "extensions" / f"v{duckdb.__version__}" / "vss.duckdb_extension"
    if not path.is_file():
        raise UserError(f"duckdb-extension-vss has no vss build for duckdb {duckdb.__version__} at {path}")
    return path


class DuckdbVssIndex:
    name = "duckdb_vss"

    def __init__(self, dim: int, metric: str, *, M: int, ef_construction: int, seed: int, search_threads: int = 1,
                 compact: bool = False):
        self.dim, self.metric = dim, metric
        self.M, self.ef_construction = M, ef_construction
        self.compact = compact
        self.seed = seed  # vss takes no seed: usearch's level generator is default-constructed
        # one query per statement is one HNSW scan on one thread; the database keeps threads=1 throughout
        self.search_threads = search_threads
        self._con: Any = None  # duckdb.DuckDBPyConnection
        self._lock = threading.Lock()  # hnsw_ef_search is database-wide state, and a connection is not shared
        index_metric, function = METRICS[metric]
        self._index_metric = index_metric
        self._sql = f"SELECT id, {function}(vec, ?::FLOAT[{dim}]) AS dist FROM t ORDER BY dist LIMIT "
        self._filtered_sql = self._sql.replace(" FROM t ", f" FROM t {FILTER} ")
        self._last_row = -1  # the largest row number the table holds: a mask must cover it

    def _connect(self) -> Any:
        import duckdb

        # threads=1: one construction task, so one insertion thread in table order; no autoload: offline
        con = duckdb.connect(":memory:", config={
            "threads": 1, "autoinstall_known_extensions": False, "autoload_known_extensions": False,
        })
        try:
            path = str(_extension_path()).replace("'", "''")
            con.execute(f"LOAD '{path}'")
        except BaseException:
            con.close()
            raise
        return con

    def build(self, vectors: np.ndarray, order: np.ndarray) -> None:
        self._start()
        # one thread: each INSERT appends its rows in this order after the last, so the table (and the scan
        # CREATE INDEX inserts from) is the same as after one INSERT of every row
        for ids in chunks(order):
            self._append(vectors[ids], ids)
        self._create_index()
        self._last_row = int(np.max(order)) if len(order) else -1

    def _start(self) -> None:
        """A fresh database holding an empty table."""
        self.close()
        self._con = self._connect()
        self._con.execute(f"CREATE TABLE t (id BIGINT, vec FLOAT[{self.dim}])")

    def _append(self, vectors: np.ndarray, ids: np.ndarray) -> None:
        """INSERT `vectors` under `ids`, in that order, after the table's last row."""
        import pyarrow as pa

        rows = pa.table({
            "id": pa.array(np.asarray(ids, dtype=np.int64)),
            "vec": pa.FixedSizeListArray.from_arrays(
                pa.array(np.ascontiguousarray(vectors, dtype=np.float32).reshape(-1)), self.dim),
        })
        self._con.register("rows_in_order", rows)
        try:
            self._con.execute("INSERT INTO t SELECT id, vec FROM rows_in_order")
        finally:
            self._con.unregister("rows_in_order")

    def _create_index(self) -> None:
        self._con.execute(f"CREATE INDEX hnsw ON t USING HNSW (vec) WITH (metric = '{self._index_metric}', "
                          f"M = {int(self.M)}, ef_construction = {int(self.ef_construction)})")

    @property
    def reuses_ids(self) -> bool:
        """`id` is a plain column: a deleted id is inserted again as a new row (module doc)."""
        return True

    @property
    def delete_mode(self) -> str:
        return "compact" if self.compact else "tombstone"

    def insert(self, vectors: np.ndarray, ids: np.ndarray) -> None:
        """Append `vectors` under `ids` in order; vss adds each to the graph (an index never built starts as an
        empty table with an empty index)."""
        ids = np.asarray(ids, dtype=np.int64)
        if self._con is None:
            self._start()
            self._create_index()
        with self._lock:
            for at in chunks(np.arange(len(ids))):
                self._append(vectors[at], ids[at])
        if len(ids):
            self._last_row = max(self._last_row, int(ids.max()))

    def delete(self, ids: np.ndarray) -> None:
        """DELETE the rows of `ids` (each must be in the table); with `compact`, re-create the index after."""
        import pyarrow as pa

        assert self._con is not None, "build or insert first"
        ids = np.asarray(ids, dtype=np.int64)
        with self._lock:
            self._con.register("ids_to_delete", pa.table({"id": pa.array(ids)}))
            try:
                sql = "DELETE FROM t WHERE id IN (SELECT id FROM ids_to_delete)"
                deleted = self._con.execute(sql).fetchone()[0]
            finally:
                self._con.unregister("ids_to_delete")
            if deleted != len(ids):
                raise ValueError(f"duckdb_vss deleted {deleted} of {len(ids)} rows: some were not in the table")
            if self.compact:  # not PRAGMA hnsw_compact_index, which corrupts this vss build (module doc)
                self._con.execute("DROP INDEX hnsw")
                self._create_index()

    def search(self, queries: np.ndarray, k: int, ef: int | None) -> tuple[np.ndarray, np.ndarray]:
        """Up to k results per query, padded with id -1 and score nan where the index holds fewer."""
        assert self._con is not None, "build first"
        with self._lock:
            return self._search(self._sql, queries, k, ef)

    def search_filtered(self, queries: np.ndarray, k: int, ef: int | None,
                        allowed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The rows `allowed` passes among the k the HNSW scan returns for each query, by the statement's
        WHERE (module doc), padded with id -1 and score nan."""
        assert self._con is not None, "build first"
        passing(allowed, np.array([self._last_row]))  # a bool mask covering every row, or ValueError
        with self._lock:
            self._set_mask(allowed)
            try:
                return self._search(self._filtered_sql, queries, k, ef)
            finally:
                self._con.execute(f"RESET VARIABLE {MASK_VARIABLE}")

    def _set_mask(self, allowed: np.ndarray) -> None:
        # one bit past the mask: a BIT value cannot be empty, and no row that far is held
        bits = allowed.view(np.uint8).tobytes().translate(_BITS).decode("ascii") + "0"
        self._con.execute(f"SET VARIABLE {MASK_VARIABLE} = ?::BIT", [bits])

    def _search(self, sql: str, queries: np.ndarray, k: int, ef: int | None) -> tuple[np.ndarray, np.ndarray]:
        """One statement per query (the lock held)."""
        ids = np.full((len(queries), k), -1, dtype=np.int64)
        dist = np.full((len(queries), k), np.nan, dtype=np.float64)
        sql += str(int(k))
        self._con.execute("RESET hnsw_ef_search" if ef is None else f"SET hnsw_ef_search = {int(ef)}")
        for row, query in enumerate(np.asarray(queries, dtype=np.float32)):
            got = self._con.execute(sql, [query.tolist()]).fetchnumpy()
            found = len(got["id"])
            ids[row, :found] = got["id"]
            dist[row, :found] = got["dist"]
        # cosine distance is 1 - cos (= 1 - ip on unit vectors); array_distance is the plain L2 distance
        scores = (1.0 - dist) if self.metric == "ip" else dist * dist
        return ids, scores.astype(np.float32)

    def plan(self, query: np.ndarray, k: int, allowed: np.ndarray | None = None) -> str:
        """DuckDB's physical plan of one search (filtered by `allowed` when given), to show that it scans the
        HNSW index."""
        assert self._con is not None, "build first"
        sql = "EXPLAIN " + (self._sql if allowed is None else self._filtered_sql) + str(int(k))
        with self._lock:
            if allowed is not None:
                self._set_mask(allowed)
            try:
                rows = self._con.execute(sql, [np.asarray(query).tolist()]).fetchall()
            finally:
                if allowed is not None:
                    self._con.execute(f"RESET VARIABLE {MASK_VARIABLE}")
        return "\n".join(str(r[1]) for r in rows)

    def nbytes(self) -> int:
        """The graph's allocated bytes (every level, pragma_hnsw_index_info) plus the f32 vectors usearch keeps
        in the index: what it would serialise. DuckDB's approx_memory_usage adds arena reservations (~20 MB).
        Vectors are counted per layer-0 node, deleted ones included: `count` leaves out the free list's
        (module doc), and reads low after deletes."""
        assert self._con is not None, "build first"
        levels = self._con.execute(
            "SELECT levels_stats FROM pragma_hnsw_index_info() WHERE index_name = 'hnsw'").fetchone()[0]
        vectors = levels[0]["nodes"] if levels else 0
        return int(sum(level["allocated_bytes"] for level in levels) + vectors * self.dim * 4)

    def save(self, path: Path) -> None:
        raise NotImplementedError("duckdb_vss keeps its HNSW index in an in-memory database; persisting it is "
                                  "experimental in vss (hnsw_enable_experimental_persistence)")

    def load(self, path: Path, n: int) -> None:
        raise NotImplementedError("duckdb_vss indexes are not saved (see save)")

    def close(self) -> None:
        """Close the in-memory database: nothing else outside this process's memory."""
        con, self._con = self._con, None
        if con is not None:
            con.close()


BACKEND = Backend(name="duckdb_vss", params=DuckdbVssParams, ef_search=(DEFAULT_EF,), index=DuckdbVssIndex,
                  library=LIBRARY, build_cost=2.8, capabilities=Capabilities(spaces=frozenset({"ip", "l2"}), order_controlled=True,
                                                             deterministic=True, graph=False, seeded=False,
                                                             servable=False,
                                                             # the WHERE is applied above an HNSW scan of the
                                                             # k nearest: vss b833341 hnsw_optimize_scan.cpp:
                                                             # 146, 155-197 (module doc)
                                                             filtering="post",
                                                             # DELETE: usearch `remove` marks the node, which
                                                             # keeps routing; few slots are ever reused
                                                             # (index_dense.hpp:1228-1255, index.hpp:1202-1254
                                                             # at b833341; module doc); "compact" with
                                                             # compact: true
                                                             deletes="tombstone"))
