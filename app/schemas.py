"""Request and response models of the HTTP API, kept apart from the engine's own models.

Request models validate shape and range; checks that need the index (dimension, k <= n) or the
settings (batch size, max ef) happen in the routes, which answer 422 with a message naming the field.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from indexer.engine.spec import ExperimentSpec
from indexer.model.results import ResultRow
from indexer.report.compare import Comparison
from indexer.service.views import IndexSummary

# Bounds keep paging arguments inside what every database's integers hold.
MAX_PAGE = 500
MAX_OFFSET = 1_000_000_000
# a spec the editor validates (the largest example is 2.3 KB); reading YAML costs about 5 s a MiB, so a spec
# with a larger runbook file's text is posted to /experiments as JSON instead
MAX_SPEC_TEXT_CHARS = 256 * 1024
MAX_NAME_FILTER_CHARS = 200

JobStatus = Literal["queued", "running", "succeeded", "failed", "cancelled"]
ReportFormat = Literal["json", "csv", "md", "html"]

# JSON accepts NaN/Infinity tokens in Python's parser: allow_inf_nan=False turns them into a 422.
# Strict: `true` is not the number 1, nor "1" a number (an int is still a float).
Component = Annotated[float, Field(strict=True, allow_inf_nan=False)]
Vector = Annotated[list[Component], Field(min_length=1)]
Vectors = Annotated[list[Vector], Field(min_length=1)]
# Strict: `k: true` or `k: 10.0` is a 422, not k=1 or k=10.
PositiveInt = Annotated[int, Field(strict=True, ge=1)]


def plausible_id(value: str) -> bool:
    """Ids are hex content keys; anything else (a NUL byte, which PostgreSQL refuses in a query
    parameter, or a path) is unknown without asking the store."""
    return 0 < len(value) <= 64 and value.isascii() and value.replace("-", "").replace("_", "").isalnum()


class _Request(BaseModel):
    # allow_inf_nan=False: Python's JSON parser reads Infinity and NaN, which no float of a request may be
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


# ---- errors -------------------------------------------------------------------------------------


class FieldProblem(BaseModel):
    loc: list[str | int]
    msg: str
    type: str


class ErrorBody(BaseModel):
    """Every 4xx: one readable sentence, plus the per-field problems for a 422 from validation."""

    detail: str
    errors: list[FieldProblem] | None = None


# ---- health -------------------------------------------------------------------------------------


class HealthOut(BaseModel):
    status: Literal["ok", "degraded"]
    store: bool


# ---- datasets -----------------------------------------------------------------------------------


class DatasetKindOut(BaseModel):
    kind: str
    description: str
    accepted_over_api: bool
    fields: dict[str, Any] = Field(description="JSON schema of the dataset spec for this kind")


class BuiltinDatasetOut(BaseModel):
    kind: str
    name: str
    n: int = Field(description="vectors (glove) or documents (text corpora) available")
    dim: int | None = Field(description="native vector dimension; None for text before embedding")
    categories: int | None
    embedding_dim: int | None = Field(description="dimension after embedding with the default model")
    source: str


class DatasetsOut(BaseModel):
    default_model: str
    kinds: list[DatasetKindOut]
    builtin: list[BuiltinDatasetOut]


# ---- experiments --------------------------------------------------------------------------------


class ExperimentCreated(BaseModel):
    id: str
    status: JobStatus
    created: bool = Field(description="false when an identical spec was already submitted")


class ExperimentOut(BaseModel):
    id: str
    name: str
    status: JobStatus
    progress: float = Field(ge=0.0, le=1.0)
    message: str | None = None
    error: str | None = None
    attempts: int = 0
    lease_expired: bool = Field(
        default=False,
        description="running, but its worker has not renewed the lease in time (lost or paused): another "
        "worker will take the job over, or it fails once its attempts are spent",
    )
    created_at: datetime | None = None
    updated_at: datetime | None = None
    spec: ExperimentSpec | None = Field(description="null when this version cannot read a spec an older one "
                                        "accepted (the job fails, saying why)")
    rows: list[ResultRow] | None = None  # the published rows (as indexer.model.results.rows_to_json writes them)
    report_formats: list[ReportFormat] = Field(
        default_factory=list, description="formats served by GET /experiments/{id}/report"
    )


class ExperimentPage(BaseModel):
    items: list[ExperimentOut]
    total: int
    offset: int
    limit: int


class SpecTextIn(_Request):
    """A spec as an editor holds it: YAML or JSON text (JSON is YAML)."""

    text: str = Field(max_length=MAX_SPEC_TEXT_CHARS, description="the spec, YAML or JSON")


class SpecProblem(BaseModel):
    """One reason the spec would be refused, and where in the text it is."""

    loc: list[str | int] = Field(description="the field, as in a 422's errors; empty for the whole spec")
    line: int | None = Field(description="1-based line of the field in the text (of the nearest field that is there)")
    column: int | None = None
    msg: str


class EstimateOut(BaseModel):
    """The admission estimate (indexer.engine.admission), as `indexer run --dry-run` prints it."""

    cells: int = Field(description="indexes to build")
    base_vectors: int | None
    dim: int | None
    queries: int | None
    embedded_texts: int
    base_bytes: int | None = Field(description="one float32 copy of the base vectors")
    core_seconds: float | None = Field(description="estimated total work; null where a size depends on a file")
    expected_seconds: float | None = Field(description="core_seconds spread over the worker's cores")
    cores: int
    largest_index_bytes: int | None
    peak_bytes: int | None = Field(description="memory at the busiest moment with one worker per core")
    summary: str = Field(description="the dry run's lines")


class SpecCheckOut(BaseModel):
    """What POST /experiments would say of this spec, without queueing it."""

    valid: bool
    problems: list[SpecProblem]
    estimate: EstimateOut | None = Field(description="null when the text is not a spec")
    id: str | None = Field(description="the experiment id the spec would have (its content key)")
    spec: dict[str, Any] | None = Field(description="the spec as JSON, with its defaults: the body to POST")


class ExampleOut(BaseModel):
    """A spec to start from: a file of the repository's examples/, or a small study of one preset."""

    name: str = Field(description="the file name without .yaml; `preset-<name>` for a preset")
    kind: Literal["example", "preset"]
    description: str = Field(description="the file's leading comment; the preset's system and settings")
    text: str = Field(description="the spec, YAML")


class ComparisonOut(Comparison):
    """Experiment B against experiment A, cell by cell (indexer.report.compare): recall per query (mean of
    B - A with its percentile bootstrap interval over the queries) and QPS B / A."""


# ---- indexes ------------------------------------------------------------------------------------


class IndexOut(IndexSummary):
    """A built index as the API shows it: the store's summary, without its path on disk."""


class IndexPage(BaseModel):
    items: list[IndexOut]
    total: int
    offset: int
    limit: int


class SearchRequest(_Request):
    """Exactly one of `vectors` (already in the index's space) or `texts` (text indexes only)."""

    # the rule of _exactly_one, in the schema too: a body valid by the schema is one the API takes
    model_config = ConfigDict(json_schema_extra={"oneOf": [
        {"required": ["vectors"], "properties": {"vectors": {"type": "array"}, "texts": {"type": "null"}}},
        {"required": ["texts"], "properties": {"texts": {"type": "array"}, "vectors": {"type": "null"}}},
    ]})

    vectors: Vectors | None = None
    texts: Annotated[list[Annotated[str, Field(min_length=1)]], Field(min_length=1)] | None = None
    k: PositiveInt = Field(default=10, description="results per query; at most the server's max_k")
    ef: PositiveInt | None = Field(
        default=None, description="search breadth, at most the server's max_ef; below k (and by default) k"
    )

    @model_validator(mode="after")
    def _exactly_one(self) -> SearchRequest:
        if (self.vectors is None) == (self.texts is None):
            raise ValueError("give exactly one of 'vectors' or 'texts'")
        return self


class SearchHit(BaseModel):
    id: int = Field(description="row number in the dataset the index was built from")
    score: float | None = Field(description="the backend's distance or similarity; null if not finite")
    title: str | None = None


class SearchOut(BaseModel):
    results: list[list[SearchHit]] = Field(description="one list per query, best first, at most k long")


class EvaluateRequest(_Request):
    """Recall@k against exact search over the same vectors; the index's held-out queries by default."""

    vectors: Vectors | None = None
    k: PositiveInt = Field(default=10, description="recall@k; at most the server's max_k")
    ef: Annotated[list[PositiveInt], Field(min_length=1, max_length=32)] = Field(
        default_factory=lambda: [16, 32, 64],
        description="search breadths, each at most the server's max_ef; one below k is measured as k",
    )


class EvaluateResult(BaseModel):
    ef: int
    recall: float
    per_query: list[float]


class EvaluateOut(BaseModel):
    index_id: str
    k: int
    n_queries: int
    queries: Literal["given", "held_out"]
    results: list[EvaluateResult]


class FoundNeighbour(BaseModel):
    id: int = Field(description="row number in the dataset the index was built from")
    score: float | None = Field(description="exact score in the original space (null if not finite)")
    title: str | None = None
    hit: bool = Field(description="counts as a true neighbour: in the exact top k, or tied with its k-th")
    true_rank: int | None = Field(description="its rank (0 = nearest) in the exact top k, null if not in it")


class TrueNeighbour(BaseModel):
    id: int
    score: float | None = Field(description="exact score in the original space (null if not finite)")
    title: str | None = None
    found_rank: int | None = Field(description="its rank in the index's answer, null when the index missed it")


class QueryAnswerOut(BaseModel):
    """One of the dataset's held-out queries: the index's answer at `ef` beside the exact answer."""

    index_id: str
    query: int = Field(description="the query's number among the dataset's held-out queries")
    n_queries: int
    k: int
    ef: int = Field(description="the search breadth used (at least k)")
    recall: float = Field(description="recall@k of this answer, counted as the report counts it")
    higher_is_better: bool = Field(description="scores are similarities (true) or squared L2 distances")
    found: list[FoundNeighbour] = Field(description="the index's answer, best first")
    exact: list[TrueNeighbour] = Field(description="the exact top k over the rows the index holds, best first")


class QueryMeasuresOut(BaseModel):
    """One held-out query's difficulty in the index's space, from the data alone (the rows' `query_measures`
    file, indexer.science.query_hardness); null where not finite."""

    index_id: str
    query: int
    lid: float | None = Field(description="local intrinsic dimensionality (MLE) at k")
    relative_contrast: float | None = Field(description="mean distance over the k-th neighbour's: low is hard")
    expansion: float | None = Field(description="distance of the 2k-th neighbour over the k-th's")
    centre_distance: float | None = Field(description="distance to the base's nearest k-means centre")
