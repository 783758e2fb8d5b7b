"""The typed results of a run: the rows, the index records and the run's extras, and their one JSON form.

The runner builds these; the store, the worker, the report writer and the API consume them. Each type
serialises to exactly the JSON the engine has always written (same keys, same order), through one
function per destination: `rows_to_json` (cell cache, report, database), `extras_to_json` (report) and
`IndexRecord.to_json` (cell meta.json, database `meta`). `parse_rows` reads rows back (the cell cache,
a published report.json).

Two JSON conventions are kept: a backend's build parameters sit flattened in a row (`M`,
`ef_construction`, between `backend` and `k`), and a measure a row did not take (IR metrics without
relevance judgements) is absent rather than null.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from types import MappingProxyType
from typing import Annotated, Any, ClassVar, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    GetJsonSchemaHandler,
    SerializerFunctionWrapHandler,
    TypeAdapter,
    model_serializer,
    model_validator,
)
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema

from indexer.model.options import ReductionSpec
from indexer.model.preflight import Preflight

BuildParam = int | float | str | bool  # a backend's build parameter value (M=16, ef_construction=200)
Measure = float | None  # NaN while in memory; null once published (plain JSON has no NaN)
IR_MEASURES = ("ndcg@10", "mrr@10", "recall@100")
# The fields of a dense row's `query_measures` file, each query's difficulty in its space from the data alone:
# LID, relative contrast and expansion (d_2k / d_k) at k, and the distance to the base's nearest k-means centre
# (indexer.science.query_hardness)
QUERY_MEASURE_FIELDS = ("lid", "relative_contrast", "expansion", "centre_distance")

# Where every registered backend's build parameter names (M, ef_construction, storage...) come from: the registry,
# a floor above, hands its lister over when it is built (indexer.backends), so a flattened row read back knows
# its parameters, also those of a backend registered later.
_build_param_names: list[Callable[[], Iterable[str]]] = []
ParamsOf = Callable[[str, Mapping[str, Any]], dict[str, Any] | None]
_backend_params: list[ParamsOf] = []
_earlier_names: list[Callable[[], Iterable[str]]] = []


def register_build_params(names: Callable[[], Iterable[str]], of_backend: ParamsOf | None = None,
                          earlier: Callable[[], Iterable[str]] | None = None) -> None:
    """Declare where the build parameter names come from: keys of a flattened row that go in `build_params`;
    with `of_backend`, a backend's build parameters among a row's values as the backend dumps them (None for a
    backend it does not know); with `earlier`, the names parameters had before a rename, which old rows carry."""
    _build_param_names.append(names)
    if earlier is not None:
        _build_param_names.append(earlier)
        _earlier_names.append(earlier)
    if of_backend is not None:
        _backend_params.append(of_backend)


def _params_of(backend: Any, given: Mapping[str, Any]) -> dict[str, Any] | None:
    """`backend`'s build parameters among `given`, as a registered lookup reads them (None when none knows it)."""
    for lookup in _backend_params:
        found = lookup(backend, given) if isinstance(backend, str) else None
        if found is not None:
            return found
    return None


class ResultModel(BaseModel):
    """Base of every result type: JSON keys by alias (`ndcg@10`), build parameters flattened, fields in
    `OMIT_UNSET` left out of the JSON unless they were given (a measure not taken is absent, not null).

    `row["key"]` reads a value by its JSON key, for readers that still work on plain rows.
    """

    model_config = ConfigDict(validate_by_name=True, validate_by_alias=True, serialize_by_alias=True,
                              extra="forbid")

    OMIT_UNSET: ClassVar[frozenset[str]] = frozenset()

    @model_serializer(mode="wrap")
    def _serialize(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        data: dict[str, Any] = handler(self)
        for name in self.OMIT_UNSET - self.model_fields_set:
            field = type(self).model_fields[name]
            data.pop(field.serialization_alias or field.alias or name, None)
        if "build_params" not in data:
            return data
        out: dict[str, Any] = {}
        for key, value in data.items():  # flattened where the field sits: the rows' column order
            if key == "build_params":
                out.update(value)
            else:
                out[key] = value
        return out

    @classmethod
    def __get_pydantic_json_schema__(cls, core: CoreSchema, handler: GetJsonSchemaHandler) -> JsonSchemaValue:
        """The schema of the JSON as written: a row's build parameters sit flattened beside its fields."""
        schema = handler(core)
        if "build_params" not in cls.model_fields or handler.mode != "serialization":
            return schema
        target = handler.resolve_ref_schema(schema)
        target.get("properties", {}).pop("build_params", None)
        if "build_params" in target.get("required", []):
            target["required"].remove("build_params")
        target["additionalProperties"] = {"anyOf": [{"type": t} for t in ("integer", "number", "string", "boolean")],
                                          "description": "the backend's build parameters (M, ef_construction, ...)"}
        return schema

    @model_validator(mode="before")
    @classmethod
    def _gather_build_params(cls, data: Any) -> Any:
        """Flattened build parameters (a row read back from JSON) into `build_params`: the keys the backend
        registry declared (register_build_params); any other unknown key is refused."""
        if "build_params" not in cls.model_fields or not isinstance(data, Mapping) or "build_params" in data:
            return data
        names = {name for lister in _build_param_names for name in lister()}
        # a key that is also the row's own field (a dense row's precision) stays the field's, and is a build
        # parameter too where the row's backend dumps it; a parameter under an earlier name is read as its
        # backend reads it now (usearch's dtype is its precision)
        own = names & set(cls.model_fields)
        given = {k: v for k, v in data.items() if k in names}
        read = _params_of(data.get("backend"), given)
        kept = {k: v for k, v in data.items() if k not in names or k in own}
        if read is None:
            return {**kept, "build_params": {k: v for k, v in given.items() if k not in own}}
        # another backend's parameter kept as it was written, as before the backend could say what is its own
        earlier = {name for lister in _earlier_names for name in lister()}
        other = {k: v for k, v in given.items() if k not in own and k not in earlier and k not in read}
        return {**{k: read[k] for k in own if k in read and k not in kept}, **kept,
                "build_params": {**read, **other}}

    def to_json(self) -> dict[str, Any]:
        """The plain dict this result is written as (floats kept as they are, NaN included)."""
        return self.model_dump()

    def __getitem__(self, key: str) -> Any:
        return self.to_json()[key]


class GroupRecall(ResultModel):
    """Mean recall over the queries of one group (a category)."""

    recall: Measure
    n: int


class BinRecall(ResultModel):
    """Mean recall over the queries whose value (LID) falls in one quantile bin [lo, hi]."""

    bin: int
    lo: Measure
    hi: Measure
    recall: Measure
    n: int


class CostAtRecall(ResultModel):
    """What one recall target costs on a built index: the smallest ef reaching it, and the speed there.

    The ef is searched for on the even-numbered queries (validation) and its recall confirmed on the odd
    ones (held out), so a choice made from these figures is not judged on the queries that made it."""

    target: float
    ef: int | None  # None: the largest ef tried (min(index size, 4096)) falls short
    recall: Measure  # on the validation half
    held_out_recall: Measure  # on the other half, at the same ef
    held_out_ci95: list[Measure]  # its normal-approximation 95% interval
    confirmed: bool | None = None  # the held-out half reaches the target at that ef too (None: rows from before)
    ef_both_halves: int | None = None  # the smallest ef at which both halves reach it (None: none up to the cap)
    qps: float | None  # all queries, at that ef: the median of the timed passes
    qps_range: list[float] | None = None  # the slowest and the fastest pass
    distance_computations: float | None  # per query, where the library counts them (faiss)


class InDegree(ResultModel):
    """The layer-0 in-degree distribution of a graph."""

    min: float
    p1: float
    median: float
    p99: float
    max: float
    mean: float


class GraphDiagnostics(ResultModel):
    """A built HNSW graph's layer 0: points no search can reach, points nothing links to, and hubness."""

    unreachable: int  # not reachable on layer 0 from the entry point
    unreachable_from_all_upper: int  # not reachable from any node of level >= 1 (no descent can reach them)
    zero_in_degree: int
    in_degree: InDegree
    hubness: float  # skewness of the layer-0 in-degrees
    data_hubness: float | None  # skewness of the exact k-occurrence of the data (k = the spec's k)


class GroupDiagnostics(ResultModel):
    """The diagnostics of one group of base points (a category, a LID bin), as fractions of the group."""

    group: str
    size: int
    self_miss: float | None  # of the sampled points of the group, at the row's ef
    unreachable: float | None = None  # only for backends that expose their graph
    zero_in_degree: float | None = None


class Latency(ResultModel):
    """One query per call from one client and from `clients` concurrent clients, on a sample of the
    queries (indexer.engine.latency)."""

    queries: int
    p50_ms: float
    p95_ms: float
    p99_ms: float
    qps_one_client: float
    clients: int | None = None  # the concurrent clients of qps_clients: one per core (absent before format 6)
    qps_clients: float | None = None


class IRMeasures(ResultModel):
    """Retrieval quality against relevance judgements: of the top k (nDCG, MRR) and of a depth-100 ranking."""

    ndcg_at_10: Measure = Field(alias="ndcg@10")
    mrr_at_10: Measure = Field(alias="mrr@10")
    recall_at_100: Measure = Field(alias="recall@100")


class _DenseSpace(ResultModel):
    """The space a dense index searches; its fields open every dense and hybrid row."""

    dataset: str
    model: str | None
    metric: str
    index_size: int
    reduction: str
    dims: int


class DenseRow(_DenseSpace):
    """One ANN cell at one ef: a dense index built in one insertion order, searched at one ef."""

    OMIT_UNSET = frozenset({"ndcg_at_10", "mrr_at_10", "recall_at_100", "ranking", "graph", "self_miss",
                            "self_miss_sampled", "diagnostics_by_category", "diagnostics_by_lid_bin", "index_file",
                            # measures newer than some cached and published rows: absent there, not null
                            "permutation_seed", "recall_ids", "recall_annb", "short_results", "duplicate_results",
                            "qps_all", "search_threads", "latency", "recall_file", "query_measures",
                            "precision", "recall_stored", "loss_representation", "loss_graph",
                            "recall_unrescored", "recovered_by_rescore",
                            "recall_hardest10", "recall_rest", "ef_full_p50", "ef_full_p90", "ef_full_p99",
                            "ef_full_capped", "ef_full_cap", "preset"})

    # what depends on the machine and the executor, not on the spec: timings, thread counts, file places
    VOLATILE: ClassVar[frozenset[str]] = frozenset({
        "build_seconds", "qps", "qps_passes", "qps_all", "latency", "search_threads", "neighbors",
        "recall_file", "query_measures", "ranking", "index_file"})

    representation: Literal["dense"] = "dense"
    ordering: str
    backend: str
    build_params: dict[str, BuildParam] = {}  # the backend's own, flattened into the JSON
    # the preset (indexer.backends.presets) whose defaults filled the spec entry's build parameters and ef
    # sweep (None: none; absent from the JSON then); not part of the cell's key: the same build either way
    preset: str | None = None
    k: int
    seed: int
    library_seed: int | None  # None: the library takes no seed
    permutation_seed: int | None = None  # seeds the insertion order's generator (None: rows from before)
    library_version: str  # of the package the backend runs on (indexer.backends.declaration.Library)
    order_controlled: bool  # the library inserted in `ordering`; False: left out of ordering comparisons
    build_seconds: float
    index_bytes: int
    bytes_per_vector: int  # as the index stores a vector (indexer.backends.precision; 4 x dims before precision)
    # how the index stores vectors (indexer.backends.precision): its backend's `precision`, or f32 for a backend
    # without one; where the backend has the parameter it is in `build_params` too, one key in the JSON
    precision: str = "f32"
    cell: str
    ef: int | None  # None: exact search, no ef
    recall: Measure
    recall_std: Measure
    recall_ci95: list[Measure]
    recall_within: Measure  # against exact search in the index's own (reduced) space
    # the loss split (indexer.engine.measure.LossSplit), in points of recall@k against the original exact kNN:
    # exact search over what the index stores (reduced and/or quantized), and what the representation and the
    # graph each lose; loss_representation + loss_graph = 1 - recall
    recall_stored: Measure = None
    loss_representation: Measure = None
    loss_graph: Measure = None
    # a rescored cell (build parameter `rescore`, its oversample): the same index's recall at this ef with
    # rescoring off, and what rescoring recovers over it; the graph's loss is then recall_stored -
    # recall_unrescored, and loss_representation + loss_graph - recovered_by_rescore = 1 - recall. None: nothing
    # is re-ranked
    recall_unrescored: Measure = None
    recovered_by_rescore: Measure = None
    # hard queries (indexer.science.metrics.recall_hardest): recall at this ef over the tenth of the queries with
    # the lowest relative contrast at k, and over the other nine tenths
    recall_hardest10: Measure = None
    recall_rest: Measure = None
    # the cell's smallest ef per query for recall 1.0 on its ef ladder (indexer.science.ef_ladder): percentiles
    # over the queries (None: the percentile falls among the capped queries), the share never reaching 1.0 up to
    # the cap, and the cap; all None for a backend without ef
    ef_full_p50: int | None = None
    ef_full_p90: int | None = None
    ef_full_p99: int | None = None
    ef_full_capped: Measure = None
    ef_full_cap: int | None = None
    # the peers' definitions beside ours (indexer.science.judging), from the same exactly rescored ids:
    recall_ids: Measure = None  # plain id-set intersection, no ties (VectorDBBench)
    recall_annb: Measure = None  # ann-benchmarks': distance <= k-th true distance + 1e-3, repeats counted
    short_results: int | None = None  # queries answered with fewer than k distinct ids
    duplicate_results: int | None = None  # answers holding an id twice
    qps: float  # the median of the timed passes, the whole query set at once on `search_threads`
    qps_passes: int
    qps_all: list[float] = []  # every timed pass
    search_threads: int | None = None  # the threads a batch search could use
    latency: Latency | None = None  # one query at a time, one client
    recall_by_category: dict[str, GroupRecall]
    recall_by_lid_bin: list[BinRecall]
    cost_at_recall: list[CostAtRecall]  # per spec recall target; empty for a backend without ef
    neighbors: str | None  # the .npy of returned ids; relative to the report once published (None: lost)
    # the .npy of per-query recall@k (float32, query order), published beside `neighbors` (None: not kept)
    recall_file: str | None = None
    # the .npy of its space's per-query difficulty (a float64 record per query, in query order, with the fields
    # QUERY_MEASURE_FIELDS), one file shared by the rows of a space, published beside `neighbors` (None: not kept)
    query_measures: str | None = None
    # only when the spec asks for diagnostics (the graph's only where the backend exposes it):
    graph: GraphDiagnostics | None = None
    self_miss: Measure = None  # of the sampled base points, at this ef
    self_miss_sampled: int | None = None
    diagnostics_by_category: list[GroupDiagnostics] = []
    diagnostics_by_lid_bin: list[GroupDiagnostics] = []
    index_file: str | None = None  # the built index's copy in the report (`indexer run --save-indexes`)
    # only on datasets with relevance judgements:
    ndcg_at_10: Measure = Field(None, alias="ndcg@10")
    mrr_at_10: Measure = Field(None, alias="mrr@10")
    recall_at_100: Measure = Field(None, alias="recall@100")
    ranking: str | None = None  # the depth-100 ranking in the cache (input of hybrid rows; not published)

    @property
    def judged(self) -> bool:
        """Whether the row took the IR measures (its dataset has relevance judgements)."""
        return "ndcg_at_10" in self.model_fields_set


class _AlwaysJudged(ResultModel):
    """A row that exists only on datasets with relevance judgements (sparse, hybrid)."""

    judged: ClassVar[bool] = True


class SparseRow(_AlwaysJudged):
    """BM25 over the texts of one index size.

    `ordering` is null: BM25 has no insertion order (the report shows the row beside every ordering of the
    graph indexes). It has no build parameters and stores no vectors: the class says so for readers that
    take every kind of row alike.
    """

    build_params: ClassVar[Mapping[str, BuildParam]] = MappingProxyType({})
    bytes_per_vector: ClassVar[None] = None

    dataset: str
    model: None = None
    metric: Literal["bm25"] = "bm25"
    index_size: int
    reduction: Literal["none"] = "none"
    dims: None = None
    representation: Literal["sparse"] = "sparse"
    ordering: str | None = None  # None as written; the report's copy beside each ordering names it
    backend: Literal["bm25"] = "bm25"
    ef: None = None
    k: int
    seed: None = None
    build_seconds: float
    qps: float
    index_bytes: int
    recall: None = None
    neighbors: str | None
    ndcg_at_10: Measure = Field(alias="ndcg@10")
    mrr_at_10: Measure = Field(alias="mrr@10")
    recall_at_100: Measure = Field(alias="recall@100")


class HybridRow(_DenseSpace, _AlwaysJudged):
    """Reciprocal rank fusion of one dense setting (a DenseRow) with BM25 over the same documents."""

    ordering: str
    OMIT_UNSET = frozenset({"preset"})

    backend: str
    build_params: dict[str, BuildParam]  # the dense row's backend's own, flattened into the JSON
    preset: str | None = None  # the dense row's
    ef: int | None
    k: int
    seed: int
    cell: str
    representation: Literal["hybrid"] = "hybrid"
    recall: None = None
    neighbors: str | None
    ndcg_at_10: Measure = Field(alias="ndcg@10")
    mrr_at_10: Measure = Field(alias="mrr@10")
    recall_at_100: Measure = Field(alias="recall@100")


ResultRow = Annotated[DenseRow | SparseRow | HybridRow, Field(discriminator="representation")]
_ROWS: TypeAdapter[list[ResultRow]] = TypeAdapter(list[ResultRow])


def rows_to_json(rows: Iterable[ResultModel | Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The rows as the plain dicts every destination writes (cell cache, report, database).

    Rows that are plain JSON already (a published report.json's) are passed through as they are."""
    return [row.to_json() if isinstance(row, ResultModel) else dict(row) for row in rows]


def parse_rows(data: Sequence[Mapping[str, Any]]) -> list[ResultRow]:
    """Rows read back from their JSON (a cell's measures/<key>/rows.json, a published report.json)."""
    return _ROWS.validate_python(data)


class Histogram(ResultModel):
    edges: list[float]
    counts: list[int]


class Distribution(ResultModel):
    """Summary of a set of values (NaN and inf left out); only `n` when there were none."""

    OMIT_UNSET = frozenset({"median", "mean", "p10", "p90", "histogram"})

    n: int
    median: float | None = None
    mean: float | None = None
    p10: float | None = None
    p90: float | None = None
    histogram: Histogram | None = None


class SpaceSummary(ResultModel):
    OMIT_UNSET = frozenset({"lid_method", "lid_median_relative_error", "lid_rank_correlation"})

    """Why a setting loses recall, per (model, index size, reduction): LID, IsoScore, relative contrast."""

    lid_base: Distribution
    lid_queries: Distribution
    lid_global: float
    isoscore: float
    relative_contrast: Distribution
    dims: int
    n: int
    reduction: dict[str, Any]  # the reducer's own description (indexer.science.reduce: name, dims, and its fit)
    lid_method: Literal["exact", "approximate", "sampled"] = "exact"  # how the base LID was estimated
    # approximate only: against exact LID on a seeded sample of the base
    lid_median_relative_error: float | None = None
    lid_rank_correlation: float | None = None  # Spearman: do LID orderings keep their order


class ModelRank(ResultModel):
    """One model's place under one setting, against its place under exact search."""

    model_config = ConfigDict(extra="forbid")

    measure: str = Field(exclude=True)  # the JSON key of `score`
    model: str | None
    score: float
    rank: int
    exact_rank: int | None
    change: int  # exact_rank - rank: positive when the approximate search moved the model up

    @model_serializer(mode="wrap")
    def _serialize(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        data: dict[str, Any] = handler(self)
        return {(self.measure if k == "score" else k): v for k, v in data.items()}

    @model_validator(mode="before")
    @classmethod
    def _read_measure(cls, data: Any) -> Any:
        """Its JSON back: the one key that is not a field is the measure, and its value the score."""
        if not isinstance(data, Mapping) or "measure" in data:
            return data
        named = [k for k in data if k not in cls.model_fields]
        if len(named) != 1:
            return data  # the fields' own checks say what is missing or extra
        return {**{k: v for k, v in data.items() if k != named[0]}, "measure": named[0], "score": data[named[0]]}


class ModelRanking(ResultModel):
    """The models ranked under one search setting, and the largest rank change against exact search."""

    index_size: int
    reduction: str
    ordering: str
    backend: str
    build_params: dict[str, BuildParam]  # the setting's backend's own
    ef: int | None
    seed: int | None
    ranking: list[ModelRank]
    max_change: int


class Crossing(ResultModel):
    """A dense setting's quality minus BM25's at each index size, and where the sign flips."""

    model: str | None
    reduction: str
    dims: int | None  # of the dense vectors (None only for a row that did not record it)
    ordering: str
    backend: str
    ef: int | None
    seed: int | None
    dense_minus_sparse: dict[int, float]
    crosses_between: list[int] | None


class Candidate(ResultModel):
    """One built configuration that reached the advisor's target on the validation queries."""

    backend: str
    build_params: dict[str, BuildParam]
    ordering: str
    seed: int
    ef: int
    held_out_recall: Measure  # at that ef, on the queries the ef was not chosen on
    held_out_ci95: list[Measure]
    confirmed: bool  # the held-out recall reaches the target too
    qps: float
    qps_range: list[float] | None = None  # slowest and fastest timed pass
    build_seconds: float
    index_bytes: int


class Advice(ResultModel):
    """The cheapest configurations reaching target_recall, by query time, build time and memory."""

    target_recall: float
    tried: int  # built configurations (backend x M x ef_construction x ordering x seed)
    reached: int  # of them, reaching the target on the validation queries
    not_built: int = 0  # configurations left out when the budget ran out
    fastest_queries: Candidate | None
    # candidates whose QPS range overlaps the fastest's: the timing cannot tell them apart
    fastest_queries_ties: list[Candidate] = []
    fastest_build: Candidate | None
    smallest: Candidate | None


class Provenance(ResultModel):
    """The machine and libraries a run's figures came from, and how many cells ran at once."""

    python: str
    libraries: dict[str, str]  # distribution -> version (numpy, scipy, faiss-cpu, hnswlib)
    cpu: str
    executor: str  # inprocess, local, ray
    cells_at_once: int  # builds overlap up to this many; timed searches never overlap (indexer.common.timing)
    threads_per_cell: int


class FilteredRow(ResultModel):
    """One cell's filtered search at one (workload, selectivity, ef), against exact filtered kNN."""

    dataset: str
    model: str | None
    metric: str
    index_size: int
    reduction: str
    ordering: str
    backend: str
    build_params: dict[str, BuildParam] = {}
    k: int
    seed: int
    cell: str
    strategy: str  # the backend's way of filtering in this mode: pre, post, in_graph, iterative
    filter_mode: str | None = None  # the backend's filter mode (Capabilities.filter_modes); None: it has one way
    filter: str
    filter_kind: str
    selectivity: float | None  # as asked (None: label)
    kept: float  # the mean fraction of the indexed points a query's filter keeps
    ef: int | None
    recall: Measure  # mean over the queries whose filter keeps a point; of min(k, kept points) per query
    recall_ci95: list[Measure]
    queries: int
    queries_without_match: int  # their filter keeps no indexed point: reported, left out of recall
    short_results: int  # answers with fewer distinct ids than min(k, points the filter keeps)
    mean_returned: float  # distinct ids per answer
    violations: int  # returned ids the filter does not keep (must be 0; counted, never hidden)
    qps: float
    # mean distance computations per query under the filter, where the library counts them (faiss); else None
    distances_per_query: float | None = None
    cost_at_recall: list[CostAtRecall] = []  # the cost to win it back: the ef reaching each recall target
    recall_by_category: dict[str, GroupRecall] = {}  # by the query's category (a label filter: its own)
    neighbors: str | None


# --- churn: a runbook's checkpoints (indexer.engine.churn) ----------------------------------------------------


class EfAtTarget(ResultModel):
    """At one checkpoint, the smallest ef whose recall reaches a target, and the QPS there: of the live index and
    of a fresh one over the same points (None: not reached by the backend's largest ef, or no fresh index at this
    checkpoint). QPS at equal recall is churn's price: at equal ef a tombstoned index finds more by searching
    longer."""

    target: float
    ef: int | None
    qps: float | None = None
    baseline_ef: int | None = None
    baseline_qps: float | None = None


class ChurnRow(ResultModel):
    """One runbook cell at one checkpoint and one ef: the live index's answers against exact kNN over the points
    in the index at that moment, and (where a baseline ran) a fresh index's over the same points."""

    OMIT_UNSET = frozenset({"loss_representation", "loss_graph", "loss_churn"})

    dataset: str
    model: str | None
    metric: str
    index_size: int
    reduction: str
    backend: str
    build_params: dict[str, BuildParam] = {}
    k: int
    seed: int
    cell: str
    deletes: str  # what the backend's delete does: tombstone, repair, compact; none: every checkpoint rebuilt
    reinserted_ids: Literal["same", "new"]  # a replace or re-insert: under the same ids, or new ones (mapped back)
    step: int  # the runbook step the checkpoint follows (0-based)
    batch: int | None = None  # the batch of an `insert: {by: ...}` step, when it checkpoints after each
    operation: str  # the checkpoint's step: search, rebuild or insert (a batch)
    live: int  # points in the index
    inserted: int  # inserts so far (re-inserts counted)
    deleted: int  # deletes so far (a replace's counted)
    update_seconds: float  # applying the steps since the previous checkpoint
    ef: int | None
    recall: Measure  # of the live (churned) index; of the fresh one for a backend that cannot delete
    recall_ci95: list[Measure]
    deleted_returned: int  # ids returned that are not in the index (must be 0; counted, never hidden)
    short_results: int  # answers with fewer than k distinct live ids
    qps: float
    unreachable: int | None = None  # live points no layer-0 path from the entry point reaches (graph backends)
    zero_in_degree: int | None = None  # live points no node links to on layer 0 (deleted ones' links count)
    in_degree: InDegree | None = None  # the layer-0 in-degree distribution over the live points (graph backends)
    index_bytes: int | None = None  # the live index's size as its library reports it (VectorIndex.nbytes)
    baseline_recall: Measure = None  # a fresh index over the same points (rebuild step, runbook_baseline)
    baseline_build_seconds: float | None = None  # what that fresh build cost
    baseline_qps: float | None = None  # and its QPS at this ef (a tombstoned index searches more: slower)
    # the lost recall split where a fresh index ran beside (float32, unreduced cells; else None): the stored form
    # loses nothing (exact search over the live float32 vectors is the truth), a fresh graph over the live points
    # loses 1 - baseline_recall, churn the rest (baseline_recall - recall; negative where tombstones that keep
    # routing search longer); loss_representation + loss_graph + loss_churn = 1 - recall
    loss_representation: Measure = None
    loss_graph: Measure = None
    loss_churn: Measure = None
    # sampled live points a search for their own vector does not return at rank 1 (None: no live index)
    self_miss: Measure = None
    self_miss_sampled: int | None = None
    rss_bytes: int | None = None  # the process's resident memory after the checkpoint (None: not readable)
    # per recall target, the ef reaching it now (the same at every ef of the checkpoint; [] for a backend without ef)
    ef_at_target: list[EfAtTarget] = []


class ChurnFilteredRow(ResultModel):
    """One runbook cell at one checkpoint, one filter (workload, selectivity), one filter mode and one ef: the live
    index's filtered answers against exact filtered kNN over the live points the filter keeps."""

    backend: str
    build_params: dict[str, BuildParam] = {}
    cell: str
    seed: int
    step: int
    batch: int | None = None
    operation: str
    live: int
    strategy: str  # the backend's way of filtering in this mode (FilteredRow.strategy)
    filter_mode: str | None = None
    filter: str
    filter_kind: str
    selectivity: float | None
    kept: float  # the mean fraction of the live points a query's filter keeps
    ef: int | None
    recall: Measure  # of min(k, kept live points) per query, queries whose filter keeps a live point
    recall_ci95: list[Measure]
    queries_without_match: int
    short_results: int
    violations: int  # returned live ids the filter does not keep (must be 0)
    deleted_returned: int  # returned ids not in the index (must be 0)
    qps: float


class ChurnSummary(ResultModel):
    """One runbook cell at one ef over all its checkpoints (big-ann-benchmarks' streaming ranking: the mean)."""

    backend: str
    build_params: dict[str, BuildParam] = {}
    seed: int
    cell: str
    ef: int | None
    checkpoints: int
    mean_recall: Measure
    worst_recall: Measure
    worst_step: int | None  # the step after which the worst checkpoint came
    final_recall: Measure
    final_baseline_recall: Measure = None  # None: no baseline at the last checkpoint
    final_gap: Measure = None  # final_baseline_recall - final_recall
    deleted_returned: int  # over all checkpoints (must be 0)
    final_ef_at_target: list[EfAtTarget] = []  # at the last checkpoint


class RunExtras(ResultModel):
    """What a run adds to its rows: space measures by label, notes, the text-only analyses, the advice."""

    OMIT_UNSET = frozenset({"model_ranking", "crossings", "advice", "preflight", "provenance", "filtered",
                            "churn", "churn_summary", "churn_filtered"})

    provenance: Provenance | None = None

    preflight: dict[str, Preflight] = {}  # the data checks of each space, keyed like `space`
    space: dict[str, SpaceSummary] = {}
    notes: list[str] = []
    model_ranking: list[ModelRanking] | None = None  # runs of several models with IR measures
    crossings: list[Crossing] | None = None  # runs of several index sizes with IR measures
    advice: Advice | None = None  # specs with `advise`
    filtered: list[FilteredRow] = []  # specs with `filters`: every cell's filtered searches
    churn: list[ChurnRow] = []  # specs with a `runbook`: every cell's checkpoints
    churn_summary: list[ChurnSummary] = []  # and per cell and ef, over its checkpoints
    churn_filtered: list[ChurnFilteredRow] = []  # specs with a runbook and filters: each checkpoint's filtered searches


def extras_to_json(extras: RunExtras | Mapping[str, Any]) -> dict[str, Any]:
    """The extras as the report writes them (plain JSON extras are passed through)."""
    return extras.to_json() if isinstance(extras, RunExtras) else dict(extras)


class IndexRecord(ResultModel):
    """One built index (a grid cell): its cell's meta.json plus where the cell lives (`path`).

    The runner sets every field. A record written by other hands (a test) may leave out what only the
    service's loader reads (`space`, `seed`, `reduction`, `input_dim`, `index_size`, `vectors`,
    `sha256`); what was left out stays out of its JSON.
    """

    OMIT_UNSET = frozenset({"space", "seed", "reduction", "input_dim", "index_size", "vectors", "sha256",
                            "path"})

    id: str  # the cell key
    dataset: str
    model: str | None = None
    metric: str
    space: str | None = None  # the index's metric: "ip" or "l2"
    ordering: str
    backend: str
    params: dict[str, BuildParam]  # the backend's build parameters
    seed: int | None = None
    reduction: ReductionSpec | None = None
    reduction_label: str
    dims: int  # of the vectors the index holds (after any reduction)
    input_dim: int | None = None  # of a query, before any reduction (None: not recorded, the same as dims)
    n: int  # vectors the index holds
    index_size: int | str | None = None  # as the spec asked: a count or "all"
    size_bytes: int
    vectors: str | None = None  # the key of the cache's vectors/<key> directory
    sha256: dict[str, str] | None = None  # every file the service may load, checked before it is opened
    path: str | None = None  # the cell directory (absolute from the runner, data_dir-relative once stored)

    def to_json(self) -> dict[str, Any]:
        return self.model_dump(mode="json")

    @property
    def query_dim(self) -> int:
        """The dimension a query has: the input's, before any reduction."""
        return self.input_dim if self.input_dim is not None else self.dims


class JobResult(BaseModel):
    """What a worker's job returns to its parent (pickled across the process boundary)."""

    rows: list[ResultRow]
    indexes: list[IndexRecord] = []
