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

Filtered search is Qdrant's own: a `Filter(must=[HasIdCondition(ids)])` on the point ids, which are already
stored (the insertion positions of the passing rows; nothing is added at build). HasId is resolved to the
segment's internal offsets, its cardinality exact (struct_payload_index/read_view/filtering.rs:121-138,
condition_converter.rs:85-95). Qdrant's query planner then picks per segment
(hnsw/read_view/dispatch.rs:83-173): a filter whose cardinality is under `full_scan_threshold` is searched
plain, brute force over the passing points listed by the payload index (`search_vectors_plain`,
read_view/search.rs:279-312); above it, the HNSW graph with the filter in its scorer: a neighbour that fails
the filter is dropped before it is scored (point_scorer.rs:265-280, graph_layers.rs:125-145), so it is
neither returned nor expanded, and the entry point is the first one that passes (entry_points.rs:96-112).
Either way only passing points are searched: "pre". (Qdrant keeps such a filtered graph connected with extra
links per value of an indexed payload field, `payload_m`; a mask over ids has none.) The installed wheel was
built from a later tree than that commit (its panic paths name hnsw_index/graph_layers_batched.rs, which
6d546f607f lacks), so what it does was measured too, with the graph forced (full_scan_kb=0), on the dense
graph of 500 16-d points (M=32, ef_construction 500) at ef = 500, 20 queries: with 3 points passing, one
build in 20 found 1 or 2 of them for every query; with 25, one build in 8 answered 94 of 200 neighbours
wrong; with 250, one build in 20 left a query with 1 result. The search stays in the piece of the passing
points' subgraph it enters, as a walk over passing points only does. With ACORN at 25 passing, every answer
of 8 builds was exact.

The planner is the default, with Qdrant's default threshold: this shard is built with full_scan_threshold 0
so that an unfiltered search walks the graph (above), which would send every filtered search to the graph
too; `search_filtered` instead makes the decision Qdrant makes at its default 10,000 KB
(`DEFAULT_FULL_SCAN_THRESHOLD`, segment/src/types.rs:2321; in vectors, KB * 1024 / the vector's bytes,
hnsw/build.rs:96-105: 20,000 vectors at 128 float32 dimensions), on the exact count of passing points: under
it the search asks for Qdrant's plain search (`SearchParams(exact=True)`, which runs the same
`search_vectors_plain`, dispatch.rs:89-104), otherwise the graph (at exactly the threshold, where Qdrant
samples, dispatch.rs:146-172). The filter modes (Capabilities.filter_modes, `search_filtered(..., mode=)`):
- planner (the default): as above, at `full_scan_kb` (Qdrant's 10,000 unless a test gives another): pre;
- graph: the filtered graph for every mask that passes any point (full_scan_threshold 0), scoring and
  expanding passing points only: pre, the search confined to the passing points' subgraph;
- acorn: the graph forced as in `graph`, with Qdrant's ACORN-1 on (off by default): the graph search also
  looks at the neighbours of neighbours that fail the filter, when the filter's estimated selectivity is at
  most `max_selectivity`, 0.4 by default (read_view/search.rs:42-86, graph_layers.rs:150-243, types.rs:622):
  failing points are passed through, never returned: in_graph (above 0.4 it is the `graph` search). The
  graph is forced because under the default threshold the planner would search plain and ACORN never run.
`SearchParams(exact=True)` is the brute-force mode on its own.

Precision (indexer.backends.precision; the parameter was `datatype`, float32 or float16, still accepted in a
spec, and a cell's key still spells it so, `_key_params`):
- `f32`: Float32 vectors; `f16`: `EdgeVectorParams.datatype` Float16, the vectors themselves stored in half
  precision (read back by `retrieve(with_vector=True)`);
- `i8`: Float32 vectors and Qdrant's scalar quantization, `ScalarQuantizationConfig(type=Int8)` at its default
  quantile (None: the whole range), lib/quantization/src/encoded_vectors_u8.rs (Metadata actual_dim, alpha,
  offset, multiplier; ALIGNMENT 16). Measured on the installed 0.9.0 (the wheel ships no sources): offset = the
  smallest coordinate of all vectors, alpha = (largest - smallest) / 127, code = round((x - offset) / alpha)
  clamped to 0..127, each vector stored as a 4-byte float (its correction term) and its codes padded to a
  multiple of 16 dimensions (segment file vector_storage/quantized.data, meta in quantized.meta.json); decoded
  offset + alpha * code. Queries are coded the same way (EncodedQueryU8);
- `binary`: Float32 vectors and `BinaryQuantizationConfig()` (one bit, the default encoding and query encoding):
  bit i is x_i > 0, little-endian within each byte, a vector padded to 16 bytes (measured: 24 dimensions take
  16); compared with the query's own bits (Hamming), so both decoded as +-1.
The stored codes are read from the indexed segment's quantized.data (`stored_vectors`): Qdrant has no call that
returns them. Point ids follow insertion (module doc: Order), and the optimizer copies points into the indexed
segment sorted by id, so code row i is point id i (checked in tests against numpy's codes of the inserted rows).
bytes_per_vector is the precision's table (1 a dimension, ceil(d / 8)), not Qdrant's padding and correction.

Rescoring (`rescore: {oversample: x}` -> `QuantizationSearchParams(rescore=True, oversampling=x)`, Qdrant's own
names): the graph search over the codes takes ceil(k * x) candidates, which are scored again with the original
vectors and cut to k (Qdrant's quantization guide, "Searching with Quantization"). Qdrant rescores by default
(measured on 0.9.0: `rescore` unset with oversampling 4 answers as rescore=True, recall 0.995 against 0.49 with
rescore=False, binary, 600 points); without oversampling it re-ranks only the k it found, which changes their
order, not the set. A quantized cell without `rescore` here searches with `rescore=False` and no oversampling:
the codes' own answer, the same set Qdrant's default returns.
`search_unrescored` sends the same oversampling with rescore=False: the same candidates, cut to k in the codes'
order (base.Rescores).

Deletes and inserts (base.Mutable, for a runbook), read at the same commit. Edge runs no optimizer of its own:
`EdgeShard::optimize` runs them "in-process and blocking" when called
(lib/edge/src/edge_shard/optimize.rs:25-28), and `update` applies an operation to the segments and nothing
more (edge_shard/update.rs:14-92). So each insert (`upsert_points`, as the build, under the next point ids)
and each delete (`delete_points`) is followed by `optimize()`, as a Qdrant server's background optimizers
would follow them. A delete marks the point deleted in its segment; a search then drops it in the scorer with
the filter, before it is scored (`check_vector`: "exists, not deleted, and satisfies filter context",
lib/segment/src/index/hnsw_index/point_scorer.rs:76-84), so a deleted point is neither returned nor expanded:
not a tombstone that routes. The vacuum optimizer rebuilds a segment whose deleted share is over
`deleted_threshold` and which holds at least `vacuum_min_vector_number` points
(shard/src/optimizers/vacuum_optimizer.rs:56-112): a new segment of the live points, indexed anew. At Qdrant's
defaults (0.2 and 1000) deleted points would stay as holes in the graph until then, which none of the declared
modes is; this shard sets both to their least (VACUUM_DELETED, VACUUM_MIN_VECTORS), so every `optimize()`
after a delete removes the deleted points from storage and graph: "compact" (after deleting a seventh of 1,500
points, `indexed_vectors_count` fell from 1,500 to 1,285: checked). A build has nothing deleted, so these
settings change no build. An id deleted and inserted again is a new point under the next point id: ids are
reused. New points land in an appendable segment, which the indexing optimizer indexes (indexing_threshold 1
KB) in the same `optimize()`.
"""

from __future__ import annotations

import glob
import json
import os
import shutil
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import AliasChoices, BeforeValidator, Field, model_validator

from indexer.backends.base import chunks, passing
from indexer.backends.declaration import (
    Backend,
    BuildParams,
    Capabilities,
    FilterModes,
    FilterStrategy,
    Library,
)
from indexer.backends.precision import Rescore, RescoreParam, rescore_field
from indexer.common.fileio import scratch_dir

DEFAULT_EF = 100  # = ef_construct's default: HnswGraphConfig.ef starts at ef_construct (config.rs:49)
BATCH = 4096  # points per upsert: only bounds the Python lists alive at once, the ids fix the link order
FULL_SCAN_KB = 10_000  # Qdrant's default full_scan_threshold, KB: DEFAULT_FULL_SCAN_THRESHOLD (types.rs:2321)
# ids held by the filtered requests of one query_batch call: each QueryRequest holds its own copy of the filter's
# id set (the pyo3 class is taken by value), so a mask of 500,000 rows is searched 8 queries a call
FILTER_IDS_PER_CALL = 1 << 22
LIBRARY = Library(distribution="qdrant-edge-py", module="qdrant_edge", extra="qdrant-edge")
# vacuum a segment with any deleted point (Qdrant's defaults: over 0.2 deleted, at least 1000 points,
# shard/src/optimizers/config.rs:18-19; module doc)
VACUUM_DELETED = 0.0
VACUUM_MIN_VECTORS = 1
QdrantPrecision = Literal["f32", "f16", "i8", "binary"]
# each precision under the parameter's earlier name, `datatype` (module doc): what a cell's key spells
EARLIER_SPELLING: dict[str, str] = {"f32": "float32", "f16": "float16", "i8": "int8", "binary": "binary"}
QUANTIZED = ("i8", "binary")  # Qdrant's quantization over float32 vectors, which rescoring re-ranks by


def _earlier_spelling(value: Any) -> Any:
    return next((p for p, earlier in EARLIER_SPELLING.items() if earlier == value), value)


class QdrantEdgeParams(BuildParams):
    """Qdrant's graph parameters under the common names, and its vector storage type."""

    M: int = Field(default=16, ge=2, le=512)  # m: HnswConfig::default (segment/src/types.rs:1648, 0.9.0)
    # ef_construct: DEFAULT_HNSW_EF_CONSTRUCT (types.rs:1643); Qdrant validates it >= 4 (types.rs:818)
    ef_construction: int = Field(default=100, ge=4)
    # EdgeVectorParams.datatype (None stores Float32) and quantization_config (module doc)
    precision: Annotated[QdrantPrecision, BeforeValidator(_earlier_spelling)] = Field(
        default="f32", validation_alias=AliasChoices("precision", "datatype"))
    rescore: RescoreParam = rescore_field("QuantizationSearchParams(rescore=True, oversampling): re-rank the "
                                          "quantized index's candidates by the float32 vectors (module doc)")

    @model_validator(mode="after")
    def _rescore_needs_quantized(self) -> QdrantEdgeParams:
        if self.rescore is not None and self.precision not in QUANTIZED:
            raise ValueError("Qdrant's rescore re-ranks a quantized index's candidates: precision i8 or binary, "
                             f"not {self.precision}")
        return self



class QdrantEdgeIndex:
    name = "qdrant_edge"

    def __init__(self, dim: int, metric: str, *, M: int, ef_construction: int, precision: str = "f32",
                 rescore: float | Rescore | None = None, seed: int, search_threads: int = 1):
        self.dim, self.metric = dim, metric
        self.M, self.ef_construction, self.precision = M, ef_construction, precision
        self.datatype = "float16" if precision == "f16" else "float32"
        self.oversample = rescore.oversample if isinstance(rescore, Rescore) else rescore
        self.search_threads = search_threads
        self._shard: Any = None  # qdrant_edge.EdgeShard
        self._dir: str | None = None
        self._order: np.ndarray | None = None  # point id -> the id it holds (-1: deleted)
        self._point: np.ndarray | None = None  # id -> its point id (-1: not in the shard)

    def _config(self) -> Any:
        import qdrant_edge as qe

        distance = qe.Distance.Dot if self.metric == "ip" else qe.Distance.Euclid
        dtype = getattr(qe.VectorStorageDatatype, self.datatype.capitalize())  # Float32 or Float16
        quantization: Any = None
        if self.precision == "i8":
            quantization = qe.ScalarQuantizationConfig(type=qe.ScalarType.Int8)
        elif self.precision == "binary":
            quantization = qe.BinaryQuantizationConfig()
        return qe.EdgeConfig(
            vectors=qe.EdgeVectorParams(size=self.dim, distance=distance, datatype=dtype,
                                        quantization_config=quantization),
            # full_scan_threshold 0: never scan instead of walking the graph; one indexing thread: the order
            hnsw_config=qe.HnswIndexConfig(m=self.M, ef_construct=self.ef_construction, full_scan_threshold=0,
                                           max_indexing_threads=1),
            # indexing_threshold in KB (0 would disable indexing); vacuum any segment with a deleted point
            # (module doc: Deletes)
            optimizers=qe.EdgeOptimizersConfig(indexing_threshold=1, deleted_threshold=VACUUM_DELETED,
                                               vacuum_min_vector_number=VACUUM_MIN_VECTORS),
            max_search_threads=self.search_threads,
            wal_enabled=False,  # nothing to recover: the shard lives as long as this object
        )

    def _create(self) -> None:
        """A new, empty shard in a new scratch directory."""
        import qdrant_edge as qe

        self.close()
        self._dir = str(scratch_dir("indexer-qdrant_edge-"))
        self._shard = qe.EdgeShard.create(os.path.join(self._dir, "shard"), self._config())
        self._order = np.empty(0, dtype=np.int64)
        self._point = np.empty(0, dtype=np.int64)

    def _upsert(self, vectors: np.ndarray, rows: np.ndarray, ids: np.ndarray) -> None:
        """`vectors[rows]` under the next point ids (the insertion positions), labelled `ids`; then the
        optimizer indexes them, in this thread's call."""
        import qdrant_edge as qe

        assert self._order is not None and self._point is not None
        start = len(self._order)
        for at in chunks(np.arange(len(rows)), BATCH):
            points = [qe.Point(start + int(i), row) for i, row in
                      zip(at.tolist(), np.asarray(vectors[rows[at]], dtype=np.float32).tolist(), strict=True)]
            self._shard.update(qe.UpdateOperation.upsert_points(points))
        if len(ids) and int(ids.max()) >= len(self._point):
            grow = np.full(int(ids.max()) + 1 - len(self._point), -1, dtype=np.int64)
            self._point = np.concatenate([self._point, grow])
        self._point[ids] = np.arange(start, start + len(ids))
        self._order = np.concatenate([self._order, ids])
        self._shard.optimize()

    def build(self, vectors: np.ndarray, order: np.ndarray) -> None:
        self._create()
        order = np.asarray(order, dtype=np.int64)
        self._upsert(vectors, order, order)  # the optimizer builds the graph now

    reuses_ids = True  # An id deleted and inserted again is a new point, under the next point id.
    delete_mode = "compact"

    def insert(self, vectors: np.ndarray, ids: np.ndarray) -> None:
        """Upsert `vectors` as new points labelled `ids`, then optimize (the first insert makes the shard)."""
        if self._shard is None:
            self._create()
        ids = np.asarray(ids, dtype=np.int64)
        self._upsert(vectors, np.arange(len(ids)), ids)

    def delete(self, ids: np.ndarray) -> None:
        """Delete the points of `ids` (`delete_points`, BATCH a call), then optimize: the vacuum optimizer
        rebuilds the segments that held them (module doc)."""
        import qdrant_edge as qe

        assert self._shard is not None and self._order is not None and self._point is not None, "build first"
        ids = np.asarray(ids, dtype=np.int64)
        points = self._point[ids]
        for at in chunks(points, BATCH):
            self._shard.update(qe.UpdateOperation.delete_points(at.tolist()))
        self._order[points] = -1
        self._point[ids] = -1
        self._shard.optimize()

    def _quantization(self, rescored: bool) -> Any:
        """A quantized index's search parameters: rescored or not, at the cell's oversampling (module doc)."""
        import qdrant_edge as qe

        if self.precision not in QUANTIZED:
            return None
        return qe.QuantizationSearchParams(rescore=rescored, oversampling=self.oversample)

    def search_unrescored(self, queries: np.ndarray, k: int, ef: int | None) -> tuple[np.ndarray, np.ndarray]:
        """The same oversampled candidates as `search`, cut to k in the codes' order (base.Rescores); scores
        are Qdrant's over the codes."""
        return self._search(queries, k, ef, rescored=False)

    def search(self, queries: np.ndarray, k: int, ef: int | None) -> tuple[np.ndarray, np.ndarray]:
        """Up to k results per query, padded with id -1 and score nan where the graph yields fewer."""
        return self._search(queries, k, ef, rescored=self.oversample is not None)

    def _search(self, queries: np.ndarray, k: int, ef: int | None, *, rescored: bool) -> tuple[np.ndarray, np.ndarray]:
        import qdrant_edge as qe

        assert self._shard is not None and self._order is not None, "build first"
        # ef None: the segment's own ef (= ef_construct)
        params = qe.SearchParams(hnsw_ef=ef, quantization=self._quantization(rescored))
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

    def search_filtered(self, queries: np.ndarray, k: int, ef: int | None, allowed: np.ndarray, *,
                        mode: str = "planner", full_scan_kb: int = FULL_SCAN_KB) -> tuple[np.ndarray, np.ndarray]:
        """Up to k passing results per query through Qdrant's HasId filter in `mode` (planner, at the threshold
        `full_scan_kb`; graph; acorn: see the module's doc), padded with id -1 and score nan; ef None is the
        segment's own ef, as in `search`."""
        import qdrant_edge as qe

        if mode not in FILTER_MODES:
            raise ValueError(f"qdrant_edge's filter modes are {', '.join(FILTER_MODES)}, not {mode!r}")
        acorn = mode == "acorn"
        full_scan_kb = full_scan_kb if mode == "planner" else 0
        assert self._shard is not None and self._order is not None, "build first"
        positions = np.flatnonzero(passing(allowed, self._order))  # point id i holds row order[i]
        ids = np.full((len(queries), k), -1, dtype=np.int64)
        scores = np.full((len(queries), k), np.nan, dtype=np.float32)
        if len(queries) == 0 or k == 0:
            return ids, scores
        itemsize = 4 if self.datatype == "float32" else 2
        threshold = full_scan_kb * 1024 // (self.dim * itemsize)  # in vectors, as hnsw/build.rs:96-105
        params = qe.SearchParams(hnsw_ef=ef, exact=len(positions) < threshold,
                                 acorn=qe.AcornSearchParams(enable=True) if acorn else None,
                                 quantization=self._quantization(self.oversample is not None))
        where = qe.Filter(must=[qe.HasIdCondition(set(positions.tolist()))])
        vectors = np.asarray(queries, dtype=np.float32).tolist()
        per_call = max(1, FILTER_IDS_PER_CALL // max(1, len(positions)))
        for start in range(0, len(vectors), per_call):
            requests = [qe.QueryRequest(limit=k, query=qe.Query.Nearest(q), params=params, filter=where)
                        for q in vectors[start : start + per_call]]
            for row, hits in enumerate(self._shard.query_batch(qe.QueryBatchRequest(requests)), start):
                ids[row, : len(hits)] = self._order[[int(hit.id) for hit in hits]]
                scores[row, : len(hits)] = [hit.score for hit in hits]
        if self.metric == "l2":
            scores = scores * scores  # Euclid scores are the L2 distance itself; NaN stays NaN
        return ids, scores

    def stored_vectors(self) -> tuple[np.ndarray, np.ndarray]:
        """The rows in the shard and their vectors as it stores them (module doc): f16 as `retrieve` gives them
        back, i8 and binary decoded from the indexed segment's codes."""
        assert self._shard is not None and self._order is not None and self._dir is not None, "build first"
        live = np.flatnonzero(self._order >= 0)
        if self.precision == "f16":
            records = self._shard.retrieve(live.tolist(), with_payload=False, with_vector=True)
            by_point = {int(r.id): r.vector for r in records}
            return self._order[live], np.array([by_point[int(p)] for p in live], dtype=np.float32)
        codes, meta = self._codes()
        if len(codes) != len(self._order) or len(live) != len(self._order):
            raise ValueError("qdrant_edge's codes are read from a shard with nothing deleted only")
        return self._order, self._decode(codes, meta, self.dim)

    def _codes(self) -> tuple[np.ndarray, dict[str, Any]]:
        """The indexed segment's quantized.data as rows of bytes, and its quantized.meta.json."""
        assert self._dir is not None and self._order is not None
        found = [p for p in glob.glob(os.path.join(self._dir, "shard", "segments", "*", "vector_storage",
                                                   "quantized.data")) if os.path.getsize(p) > 0]
        if len(found) != 1:
            raise ValueError(f"qdrant_edge: expected one segment with quantized codes, found {len(found)}")
        self._shard.flush()
        raw = np.fromfile(found[0], dtype=np.uint8)
        with open(os.path.join(os.path.dirname(found[0]), "quantized.meta.json")) as f:
            meta = json.load(f)
        return raw.reshape(len(self._order), -1), meta

    def _decode(self, codes: np.ndarray, meta: dict[str, Any], dim: int) -> np.ndarray:
        if self.precision == "i8":  # a 4-byte correction, then the codes (module doc)
            return (np.float32(meta["offset"]) + np.float32(meta["alpha"]) * codes[:, 4 : 4 + dim]).astype(np.float32)
        bits = np.unpackbits(codes, axis=1, bitorder="little")[:, :dim]
        return np.where(bits == 1, 1.0, -1.0).astype(np.float32)

    def stored_queries(self, queries: np.ndarray) -> np.ndarray:
        """The queries as Qdrant compares them with the codes: rounded to half for f16 (the query is converted to
        the storage's type), coded as the vectors are for i8 (EncodedQueryU8), their sign bits for binary."""
        q = np.asarray(queries, dtype=np.float32)
        if self.precision == "f16":
            return q.astype(np.float16).astype(np.float32)
        if self.precision == "binary":
            return np.where(q > 0, 1.0, -1.0).astype(np.float32)
        _, meta = self._codes()
        alpha, offset = np.float32(meta["alpha"]), np.float32(meta["offset"])
        code = np.clip(np.round((q - offset) / alpha), 0, 127)
        return (offset + alpha * code).astype(np.float32)

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


FILTER_MODES: dict[str, FilterStrategy] = {
    # HasId filter; planner hnsw/read_view/dispatch.rs:83-173: plain over the passing points, or the graph
    # scoring only passing points (point_scorer.rs:265-280) (module doc)
    "planner": "pre",
    # the graph forced: a failing neighbour is dropped before it is scored, neither returned nor expanded
    # (point_scorer.rs:265-280, graph_layers.rs:125-145): a walk over the passing points only
    "graph": "pre",
    # ACORN-1 on the forced graph: failing neighbours' own neighbours are explored (graph_layers.rs:150-243),
    # failing points passed through, never returned, at an estimated selectivity <= 0.4 (types.rs:622)
    "acorn": "in_graph",
}
def _key_params(params: dict[str, Any]) -> dict[str, Any]:
    """The parameters as a cell's key spells them: `precision` under its earlier name, datatype (module doc),
    so every index built before the rename keeps its key."""
    out = {k: v for k, v in params.items() if k != "precision"}
    if "precision" in params:
        out["datatype"] = EARLIER_SPELLING[params["precision"]]
    return out


BACKEND = Backend(name="qdrant_edge", params=QdrantEdgeParams, ef_search=(DEFAULT_EF,), index=QdrantEdgeIndex,
                  build_cost=2.0, library=LIBRARY, key_params=_key_params, capabilities=Capabilities(
                      spaces=frozenset({"ip", "l2"}), order_controlled=True, deterministic=False, graph=False,
                      seeded=False, servable=False,
                      filtering="pre", filter_modes=FilterModes(strategies=FILTER_MODES),  # planner's
                      # delete_points, then optimize(): the vacuum optimizer copies a segment's live points
                      # into a new one (vacuum_optimizer.rs:56-112 at 6d546f607f; module doc)
                      deletes="compact"))
