"""The experiment spec: one validated document that fully describes a run.

Its canonical JSON (defaults filled in, keys sorted) hashes to a content key that names the result
and the job, so the same spec always maps to the same cached work.
"""

from __future__ import annotations

import functools
import importlib.metadata
import itertools
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal, Union, get_args

import yaml
from pydantic import Field, ValidationError, field_validator, model_validator

from indexer.backends import BACKENDS, precision
from indexer.backends.declaration import MAX_EF_CONSTRUCTION, MAX_M, BackendEntry, entry_model
from indexer.backends.declaration import MAX_EF_SEARCH as MAX_EF_SEARCH
from indexer.backends.presets import DEFAULT_K, PRESETS
from indexer.common.errors import UserError
from indexer.common.hashing import canonical_json, content_key
from indexer.model import seeds
from indexer.model.datasets import (
    DatasetSpec,
    Seed,
    SyntheticDataset,
)
from indexer.model.filters import MAX_FILTERS, FilterWorkload
from indexer.model.options import DiagnosticsSpec, LidSpec, ReductionSpec
from indexer.model.runbook import MAX_STEPS, RunbookStep, StepNaming, has_checkpoint
from indexer.model.runbook_file import FILE_NAMING, MAX_FILE_BYTES, RunbookFile
from indexer.model.strict import MAX_ECHO_CHARS as MAX_ECHO_CHARS
from indexer.model.strict import MAX_REPORTED_PROBLEMS, clip, error_message
from indexer.model.strict import Strict as _Strict
from indexer.science import orderings
from indexer.science.equal_recall import DEFAULT_RECALL_TARGETS
from indexer.science.orderings import ORDERINGS

Metric = Literal["cosine", "ip", "l2"]
if TYPE_CHECKING:  # a Literal over a registry's keys is known only at run time
    OrderingName = str
else:  # the registered names, in registry order: the schema's enum and the error messages list them so
    OrderingName = Literal[tuple(ORDERINGS)]
RepresentationName = Literal["dense", "sparse", "hybrid"]
# Caps on every list, so a hostile spec can neither make a huge grid nor a huge list of errors.
MAX_SEEDS = 64
MAX_INDEX_SIZES = 64
MAX_BACKENDS = 32
# A cell is keyed in three steps, so that a new measure never rebuilds an index (indexer.model.answers):
ANSWER_FORMAT = 1  # what a built cell saves (its answers and timings): a new format builds every cell again
PROBE_FORMAT = 1  # what is measured on the live index (cost at recall, diagnostics): re-run on the saved index
# the rows' measures, computed from the saved answers and probes: a new one is computed on the next run
# (1: before the loss split into representation and graph, and precision and bytes per vector as stored;
# before the split, ROW_FORMAT 2-6 rebuilt every cell at each new measure; 2: before the hard queries' recall,
# each query's ef for recall 1.0, and lancedb's SQ rows as i8)
MEASURE_FORMAT = 3
# what the filtered probes save (FilteredAnswer, FilteredCost): in the probe key of a spec with filters only, so
# a new one re-probes those cells and leaves every unfiltered cache as it was (1: before filter modes and the
# distance counts under a filter)
FILTERED_FORMAT = 2
# what the exact search over an index's stored (quantized) vectors saves (CellProbes.stored): in the probe key of a
# cell whose precision is not f32 only, so the first run with it probes those cells on their saved indexes and
# leaves every float32 cell's probes as they were
STORED_FORMAT = 1
# what the ef ladder saves (CellProbes.ef_ladder: each query's answers up to the ef where its recall is 1.0): in the
# probe key of a cell whose backend takes an ef, so the first run with it probes those cells on their saved indexes
EF_LADDER_FORMAT = 1
MAX_REDUCTIONS = 64  # after `dims` sweeps are expanded
MAX_CELLS = 10_000  # the whole grid: each cell is one index to build

def summarize_problems(problems: list[str], total: int) -> str:
    """The first problems joined by '; ', then how many of `total` were left out.

    Callers pass at most MAX_REPORTED_PROBLEMS already clipped problems (a slice, never the whole list).
    """
    shown = problems[:MAX_REPORTED_PROBLEMS]
    rest = total - len(shown)
    more = f"; ... and {rest} more problem{'s' if rest != 1 else ''}" if rest > 0 else ""
    return "; ".join(shown) + more


# One model per registered backend, flat: {"name": "hnswlib", "M": 16, "ef_construction": 200, "ef_search": [10]}.
# Each backend declares its parameters in its own file (indexer/backends); the spec only collects them.
BACKEND_MODELS: dict[str, type[BackendEntry]] = {
    name: entry_model(backend, module=__name__) for name, backend in BACKENDS.items()
}
# Every model is published here under the name it was created with (`UsearchBackend`), since pickle (the
# local pool, Ray) finds a class by module and name: a model only in the dict above cannot travel.
globals().update({model.__name__: model for model in BACKEND_MODELS.values()})
HnswlibBackend = BACKEND_MODELS["hnswlib"]
FaissHnswBackend = BACKEND_MODELS["faiss_hnsw"]
ExactBackend = BACKEND_MODELS["exact"]

if TYPE_CHECKING:  # what every backend entry offers: name, build_params(), ef_values(), label()
    BackendSpec = BackendEntry
else:  # a union over a list known only at run time, which `X | Y` cannot spell
    BackendSpec = Annotated[Union[tuple(BACKEND_MODELS.values())], Field(discriminator="name")]  # noqa: UP007


RecallTarget = Annotated[float, Field(gt=0.0, le=1.0)]
GraphSize = Annotated[int, Field(ge=2, le=MAX_M)]


class AdviseSpec(_Strict):
    """Find the cheapest configuration that reaches a recall: every HNSW backend of the spec is built over
    the grid of M x ef_construction (in every ordering), the ef reaching the target is searched on half the
    queries and confirmed on the other half, and the report names the cheapest by query time, build time
    and memory."""

    target_recall: RecallTarget = 0.95
    M: list[GraphSize] = Field(default_factory=lambda: [8, 16, 32], min_length=1, max_length=8)
    ef_construction: list[Annotated[int, Field(ge=1, le=MAX_EF_CONSTRUCTION)]] = Field(
        default_factory=lambda: [64, 128, 256], min_length=1, max_length=8)
    # stop building new configurations after this long (cheapest first; cached ones cost nothing), and
    # advise over those built: the answer then depends on the machine's speed, which the report says
    budget_minutes: float | None = Field(default=None, gt=0)


class ExperimentSpec(_Strict):
    name: str = Field(min_length=1, max_length=200)
    dataset: DatasetSpec
    metric: Metric = "cosine"
    k: int = Field(default=10, ge=1)
    orderings: list[OrderingName] = Field(
        default_factory=lambda: list[OrderingName](["random"]), min_length=1, max_length=len(ORDERINGS)
    )
    backends: list[BackendSpec] = Field(min_length=1, max_length=MAX_BACKENDS)
    seeds: list[Seed] = Field(default_factory=lambda: [0], min_length=1, max_length=MAX_SEEDS)
    lid: LidSpec = Field(default_factory=LidSpec)
    reductions: list[ReductionSpec] = Field(
        default_factory=lambda: [ReductionSpec(name="none")], min_length=1, max_length=MAX_REDUCTIONS
    )
    representations: list[RepresentationName] = Field(
        default_factory=lambda: list[RepresentationName](["dense"]), min_length=1,
        max_length=len(get_args(RepresentationName)),
    )
    index_sizes: list[Annotated[int, Field(ge=1)] | Literal["all"]] = Field(
        default_factory=lambda: list[int | Literal["all"]](["all"]), min_length=1, max_length=MAX_INDEX_SIZES
    )
    clusters: int = Field(default=16, ge=1, description="k-means clusters for the `cluster` ordering")
    lid_bins: int = Field(default=4, ge=1, le=20, description="query-LID quantile bins in the report")
    recall_targets: list[RecallTarget] = Field(
        default_factory=lambda: list(DEFAULT_RECALL_TARGETS), max_length=5,
        exclude_if=lambda v: v == list(DEFAULT_RECALL_TARGETS),  # a spec that keeps them keeps its old key
        description="for each, the smallest ef reaching it and the cost there (cost at equal recall)",
    )
    advise: AdviseSpec | None = Field(
        default=None, exclude_if=lambda v: v is None,
        description="build every HNSW backend over a grid of M x ef_construction and name the cheapest "
                    "configuration that reaches target_recall (its recall target is added to recall_targets)",
    )
    diagnostics: DiagnosticsSpec | None = Field(
        default=None, exclude_if=lambda v: v is None,
        description="graph diagnostics and self-miss per built index (searches every sampled point per ef)",
    )
    filters: list[FilterWorkload] = Field(
        default_factory=list, max_length=MAX_FILTERS, exclude_if=lambda v: not v,
        description="filter workloads: every dense cell also answers its queries under each filter, measured "
                    "against exact filtered kNN (Filtered search in the README)",
    )
    # churn (indexer.model.runbook, indexer.engine.churn): a runbook replaces the one-build grid
    runbook: list[RunbookStep] = Field(
        default_factory=list, max_length=MAX_STEPS, exclude_if=lambda v: not v,
        description="an index's life as steps (insert, delete, replace, search, rebuild): recall at every "
                    "checkpoint against exact kNN over the points in the index then (Churn in the README)",
    )
    runbook_file: RunbookFile | None = Field(
        default=None, exclude_if=lambda v: v is None,
        description="a big-ann-benchmarks runbook file, read unchanged, in place of `runbook` (Churn in the README)",
    )
    runbook_baseline: bool = Field(
        default=False, exclude_if=lambda v: not v,
        description="at every checkpoint also build a fresh index over the points in the index and measure it",
    )

    @model_validator(mode="before")
    @classmethod
    def _presets_at_this_k(cls, data: Any) -> Any:
        """A preset whose system picks ef from k (Weaviate, Elasticsearch, LanceDB...) gets the ef for the
        spec's own k, unless the entry gives its ef sweep; the presets state it at k=10."""
        if not isinstance(data, dict) or not isinstance(data.get("backends"), list):
            return data
        k = data.get("k", DEFAULT_K)
        if not isinstance(k, int) or isinstance(k, bool) or k < 1:
            return data  # the field's own check reports it
        backends = []
        for entry in data["backends"]:
            name = entry.get("preset") if isinstance(entry, dict) else None
            preset = PRESETS.get(name) if isinstance(name, str) else None
            if preset is not None and preset.ef_at_k is not None and "ef_search" not in entry:
                entry = {**entry, "ef_search": [preset.ef_at_k(k)]}
            backends.append(entry)
        return {**data, "backends": backends}

    @field_validator("reductions", mode="before")
    @classmethod
    def _expand_reductions(cls, value: Any) -> Any:
        """Accept `none`, a mapping, or a mapping whose `dims` is a list (a sweep)."""
        if not isinstance(value, list):
            return value
        expanded = sum(len(i["dims"]) if isinstance(i, dict) and isinstance(i.get("dims"), list) else 1
                       for i in value)
        if expanded > MAX_REDUCTIONS:  # counted first, so a huge sweep is refused without being built
            raise ValueError(f"at most {MAX_REDUCTIONS} reductions (after expanding dims lists), got {expanded}")
        out: list[Any] = []
        for item in value:
            if isinstance(item, str):
                out.append({"name": item})
            elif isinstance(item, dict) and isinstance(item.get("dims"), list):
                out.extend({**item, "dims": d} for d in item["dims"])
            else:
                out.append(item)
        return out

    @model_validator(mode="after")
    def _filters_can_run(self) -> ExperimentSpec:
        """A filter workload runs on every backend of the spec: one that cannot filter is refused, not run
        unfiltered; workload names are unique (they name the rows)."""
        if not self.filters:
            return self
        names = [f.name for f in self.filters]
        if len(set(names)) != len(names):
            raise ValueError("filters: names must not repeat")
        unable = sorted({b.name for b in self.backends if BACKENDS[b.name].capabilities.filtering is None})
        if unable:
            able = [n for n, b in BACKENDS.items() if b.capabilities.filtering is not None]
            raise ValueError(f"filters: backend{'s' if len(unable) > 1 else ''} {', '.join(unable)} cannot filter "
                             f"(no filtered search in this version); those that can: {', '.join(able)}")
        return self

    @model_validator(mode="after")
    def _columns_need_a_file(self) -> ExperimentSpec:
        """A column filter reads an attribute stored with the user's file; no other dataset has one."""
        columns = [f.name for f in self.filters if f.kind == "column"]
        if columns and self.dataset.kind != "file":
            which = "is a column filter" if len(columns) == 1 else "are column filters"
            raise ValueError(f"filters: {', '.join(columns)} {which}; a column filter reads an attribute stored with "
                             f"a dataset file (dataset kind file), not with a {self.dataset.kind} dataset")
        return self

    @model_validator(mode="after")
    def _one_entry_per_build(self) -> ExperimentSpec:
        """Two entries that build the same index and differ only in their filter settings would be one cell
        twice (filter settings are not in the build key): refused, naming the entry that takes both modes."""
        seen: dict[str, int] = {}
        for i, entry in enumerate(self.backends):
            fields = entry.search_time_fields()
            if not fields:
                continue
            build = canonical_json(entry.model_dump(mode="json", exclude=fields))
            if build not in seen:
                seen[build] = i
                continue
            first = self.backends[seen[build]]
            if first.filter_modes() == entry.filter_modes() and first.filter_settings() == entry.filter_settings():
                continue
            modes = list(dict.fromkeys([*first.filter_modes(), *entry.filter_modes()]))
            # one build answers every mode; a setting (max_scan_tuples) takes one value per build
            raise ValueError(f"backends.{i} builds the index of backends.{seen[build]} with other filter settings: "
                             f"give one entry filter_mode: [{', '.join(map(str, modes))}]")
        return self

    @model_validator(mode="after")
    def _runbook_can_run(self) -> ExperimentSpec:
        """A runbook measures something, and runs only on backends that do what it asks: one that deletes
        nothing is refused by name for a runbook with deletes; one that cannot change its index at all
        (`deletes: none`) runs only as the rebuild baseline."""
        if self.runbook and self.runbook_file is not None:
            raise ValueError("runbook_file: give either runbook or runbook_file, not both")
        steps = self.runbook_steps()
        if not steps:
            if self.runbook_baseline:
                raise ValueError("runbook_baseline: there is no runbook")
            return self
        if not has_checkpoint(steps):
            raise ValueError("runbook: no checkpoint (a search or rebuild step, or an insert by batches with "
                             "checkpoints: true): nothing would be measured")
        able = [n for n, b in BACKENDS.items() if b.capabilities.deletes not in (None, "none")]
        unable = sorted({b.name for b in self.backends if BACKENDS[b.name].capabilities.deletes is None})
        if unable:
            raise ValueError(f"runbook: backend{'s' if len(unable) > 1 else ''} {', '.join(unable)} cannot run a "
                             f"runbook (no inserts or deletes in this version); those that can: {', '.join(able)}")
        frozen = sorted({b.name for b in self.backends if BACKENDS[b.name].capabilities.deletes == "none"})
        if frozen and not self.runbook_baseline:
            raise ValueError(f"runbook: backend{'s' if len(frozen) > 1 else ''} {', '.join(frozen)} cannot change "
                             "a built index (deletes: none): it runs only as the rebuild baseline (a fresh index "
                             "over the points in the index at every checkpoint), so set runbook_baseline: true or "
                             f"drop it; those that delete: {', '.join(able)}")
        return self

    @model_validator(mode="after")
    def _sparse_needs_text(self) -> ExperimentSpec:
        if set(self.representations) & {"sparse", "hybrid"} and self.dataset.kind not in ("text", "beir"):
            raise ValueError(
                f"representations sparse/hybrid need the text of a text or beir dataset, not {self.dataset.kind}"
            )
        return self

    @model_validator(mode="after")
    def _reductions_fit_synthetic(self) -> ExperimentSpec:
        """Synthetic vectors have a known dimension, so an impossible reduction is refused here."""
        if isinstance(self.dataset, SyntheticDataset):
            problem = reduction_dims_problem(self, self.dataset.ambient_dim)
            if problem:
                raise ValueError(problem)
        return self

    @model_validator(mode="after")
    def _grid_is_bounded(self) -> ExperimentSpec:
        size = grid_size(self)
        if size > MAX_CELLS:
            raise ValueError(
                f"the grid has {size} cells (models x index_sizes x reductions x orderings x backends x seeds); "
                f"at most {MAX_CELLS}"
            )
        return self

    @field_validator("orderings", "seeds", "representations", "index_sizes")
    @classmethod
    def _unique(cls, value: list[Any]) -> list[Any]:
        if len(set(value)) != len(value):
            raise ValueError("must not repeat an entry")
        return value

    def canonical_json(self) -> str:
        return canonical_json(self.model_dump(mode="json"))

    def key(self) -> str:
        """Content key: same spec, same key; the job id and the result name."""
        return content_key(self.model_dump(mode="json"))

    def models(self) -> list[str | None]:
        return list(getattr(self.dataset, "models", [None]))

    def runbook_steps(self) -> list[RunbookStep]:
        """The runbook's steps: the spec's own, or its runbook file's (none without either)."""
        return self.runbook_file.steps() if self.runbook_file is not None else list(self.runbook)

    def step_naming(self) -> StepNaming:
        """How errors name a step: by its place in `runbook` (from 0), or by the file's own number."""
        return FILE_NAMING if self.runbook_file is not None else StepNaming()


class Cell(_Strict):
    """One index to build: a point of the grid. Its `ef` sweep is served by the one build."""

    model: str | None
    index_size: int | Literal["all"] = "all"
    reduction: ReductionSpec
    ordering: OrderingName
    backend: BackendSpec
    seed: int

    def build_key(self, spec: ExperimentSpec) -> str:
        """What decides the built index and its answers: the data, the order and what it is computed from,
        the backend with its parameters, the seed and the backend's library version; not the spec's name,
        nor anything measured from the answers."""
        reads = orderings.ORDERINGS[self.ordering].reads
        parts = {
            "dataset": spec.dataset.model_dump(mode="json"),
            "metric": spec.metric,
            "k": spec.k,  # the answers are k deep
            "lid": spec.lid.model_dump(mode="json") if "lid" in reads else None,
            "clusters": spec.clusters if "clusters" in reads else None,
            "libraries": _library_versions(self.backend.name, reads),  # a new library may build another graph
            "answers": ANSWER_FORMAT,
            "seeding": seeds.DERIVATION,  # how the spec seed becomes each library's seed
            # a filter mode and its settings decide only the filtered searches, probes of the built index
            "cell": self._keyed(),
        }
        return content_key(parts)

    def _keyed(self) -> dict[str, Any]:
        """The cell as its build key spells it: its backend's parameters as the backend keys them
        (Backend.key_params: a renamed parameter keeps the keys of indexes built before)."""
        cell = self.model_dump(mode="json", exclude={"backend": self.backend.search_time_fields()})
        spell = BACKENDS[self.backend.name].key_params
        if spell is not None:
            entry = cell["backend"]
            cell["backend"] = {"name": entry["name"], **spell({k: v for k, v in entry.items() if k != "name"})}
        return cell

    def probe_key(self, spec: ExperimentSpec, lid_method: str) -> str:
        """What decides the probes of the built index: its build, the recall targets, the diagnostics asked
        for and the LID they are broken down by (`lid_method`: how the space estimated the base's)."""
        return content_key({
            "build": self.build_key(spec),
            "probes": PROBE_FORMAT,
            "recall_targets": recall_targets(spec),
            "diagnostics": spec.diagnostics.model_dump(mode="json") if spec.diagnostics else None,
            "lid": spec.lid.model_dump(mode="json"),
            "lid_method": lid_method,
            "lid_bins": spec.lid_bins,
            # the filtered searches are probes of the live index: new filters, or new filter modes, re-run them
            **({"filters": [f.model_dump(mode="json") for f in spec.filters], "filtered": FILTERED_FORMAT,
                "filter_modes": self.backend.filter_modes(), "filter_settings": self.backend.filter_settings()}
               if spec.filters else {}),
            # the exact search over what a quantized index stores is a probe of it (indexer.engine.cell)
            **({"stored": STORED_FORMAT} if precision.quantized(self.backend.build_params()) else {}),
            # each query's ef for recall 1.0 is a probe of the live index (indexer.engine.ladder)
            **({"ef_ladder": EF_LADDER_FORMAT} if self.backend.ef_values() != [None] else {}),
        })

    def measure_key(self, spec: ExperimentSpec, lid_method: str) -> str:
        """What decides the rows measured from the saved answers and probes."""
        return content_key({"probes": self.probe_key(spec, lid_method), "measures": MEASURE_FORMAT})


@functools.cache
def _library_versions(backend: str, reads: frozenset[str] = frozenset()) -> dict[str, str]:
    """The versions that decide a cell: its backend's library's and, for an order computed from LID or
    k-means, the library that computed it (hnswlib's kNN graph for approximate LID, faiss's k-means)."""
    library = BACKENDS[backend].library
    out = {library.distribution: library.version()}
    for dist in (["hnswlib"] if "lid" in reads else []) + (["faiss-cpu"] if "clusters" in reads else []):
        try:
            out.setdefault(dist, importlib.metadata.version(dist))
        except importlib.metadata.PackageNotFoundError:
            out.setdefault(dist, "absent")
    return out


def grid_size(spec: ExperimentSpec) -> int:
    """How many cells `cells` would build (a runbook's: how many it runs), counted without building them."""
    if "dense" not in spec.representations and "hybrid" not in spec.representations:
        return 0
    if spec.runbook_steps():  # one per backend entry and seed in each space (indexer.engine.churn.churn_cells)
        return (len(spec.models()) * len(spec.index_sizes) * len(spec.reductions) * len(spec.backends)
                * len(spec.seeds))
    return (len(spec.models()) * len(spec.index_sizes) * len(spec.reductions) * len(spec.orderings)
            * sum(len(built_backends(spec, b)) for b in spec.backends) * len(spec.seeds))


def built_backends(spec: ExperimentSpec, entry: BackendSpec) -> list[BackendSpec]:
    """The builds one backend entry stands for: itself, or with `advise` (an HNSW backend) one per point of
    the M x ef_construction grid, its other fields as the entry gives them."""
    if spec.advise is None or not {"M", "ef_construction"} <= set(type(entry).model_fields):
        return [entry]
    return [type(entry).model_validate({**entry.model_dump(), "M": m, "ef_construction": e})
            for m, e in itertools.product(spec.advise.M, spec.advise.ef_construction)]


def cells(spec: ExperimentSpec) -> list[Cell]:
    """Expand the dense grid: model x index size x reduction x ordering x backend (x advise grid) x seed.
    A spec with a runbook has none: its cells are the runbook's (indexer.engine.churn.churn_cells)."""
    if "dense" not in spec.representations and "hybrid" not in spec.representations or spec.runbook_steps():
        return []
    backends = [b for entry in spec.backends for b in built_backends(spec, entry)]
    return [
        Cell(model=m, index_size=n, reduction=r, ordering=o, backend=b, seed=s)
        for m, n, r, o, b, s in itertools.product(
            spec.models(), spec.index_sizes, spec.reductions, spec.orderings, backends, spec.seeds
        )
    ]


def recall_targets(spec: ExperimentSpec) -> list[float]:
    """The recall targets every cell is costed at: the spec's, and the advisor's."""
    targets = list(spec.recall_targets)
    if spec.advise is not None and spec.advise.target_recall not in targets:
        targets.append(spec.advise.target_recall)
    return sorted(targets)


def max_reduced_dims(name: str, input_dim: int) -> int:
    """The most dimensions reduction `name` can give from `input_dim`-d vectors."""
    if name == "fft":
        return input_dim // 2 + 1  # |X_j| = |X_{d-j}|: a real vector has only this many distinct magnitudes
    return input_dim  # pca, truncation and random projection never add dimensions


def reduction_dims_problem(spec: ExperimentSpec, input_dim: int) -> str | None:
    """Why the spec's reductions cannot apply to `input_dim`-d vectors, or None when they all can.

    Pure and cheap, so a run is refused before any work instead of failing at its first fit.
    """
    problems = []
    for i, reduction in enumerate(spec.reductions):
        if reduction.dims is None:
            continue
        most = max_reduced_dims(reduction.name, input_dim)
        if reduction.dims > most:
            problems.append(
                f"reductions.{i} ({reduction.label}): {reduction.dims} dims, but {reduction.name} of "
                f"{input_dim}-d vectors gives at most {most}"
            )
    return summarize_problems(problems[:MAX_REPORTED_PROBLEMS], len(problems)) if problems else None


class SpecError(UserError):
    """A spec that does not parse or validate; the message names the bad field."""


def _format_validation_error(err: ValidationError) -> str:
    errors = err.errors(include_url=False, include_context=False)
    problems = []
    for e in errors[:MAX_REPORTED_PROBLEMS]:
        loc = clip(".".join(clip(str(p)) for p in e["loc"])) or "spec"
        problems.append(f"{loc}: {error_message(e)}")
    return summarize_problems(problems, len(errors))


def parse_spec(data: Any) -> ExperimentSpec:
    try:
        return ExperimentSpec.model_validate(data)
    except ValidationError as err:
        raise SpecError(f"invalid spec: {_format_validation_error(err)}") from None
    except RecursionError:
        raise SpecError("invalid spec: nested too deeply") from None


def _yaml_problem(err: yaml.YAMLError) -> str:
    """One line from PyYAML's multi-line message: what is wrong, and where."""
    if not isinstance(err, yaml.MarkedYAMLError):
        return clip(" ".join(str(err).split()))
    what = " ".join(part for part in (err.context, err.problem) if part) or "syntax error"
    mark = err.problem_mark or err.context_mark
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
    return clip(" ".join(what.split())) + where


def _read_text(p: Path) -> str:
    try:
        return p.read_bytes().decode("utf-8")
    except FileNotFoundError:
        raise SpecError(f"spec file not found: {p}") from None
    except UnicodeDecodeError as err:
        raise SpecError(f"spec file {p} is not UTF-8 text (byte {err.object[err.start]:#04x} at offset "
                        f"{err.start})") from None
    except OSError as err:
        raise SpecError(f"cannot read spec file {p}: {err.strerror or err}") from None


def _read_runbook_file(data: dict[str, Any]) -> dict[str, Any]:
    """The spec's data with `runbook_file.path` read into `runbook_file.text` (at most MAX_FILE_BYTES, UTF-8),
    so the spec carries the file's contents: its key follows them, and a worker never opens the path."""
    given = data.get("runbook_file")
    if not isinstance(given, dict) or not isinstance(given.get("path"), str) or "text" in given:
        return data
    p = Path(given["path"]).expanduser()
    try:
        size = p.stat().st_size
    except OSError as err:
        raise SpecError(f"runbook_file: cannot read {p}: {err.strerror or err}") from None
    if not p.is_file() or size > MAX_FILE_BYTES:
        raise SpecError(f"runbook_file: {p} is not a file of at most {MAX_FILE_BYTES:,} bytes"
                        + (f" ({size:,} bytes)" if p.is_file() else ""))
    try:
        text = p.read_bytes()[: MAX_FILE_BYTES + 1].decode("utf-8")
    except UnicodeDecodeError as err:
        raise SpecError(f"runbook_file: {p} is not UTF-8 text (offset {err.start})") from None
    except OSError as err:
        raise SpecError(f"runbook_file: cannot read {p}: {err.strerror or err}") from None
    return {**data, "runbook_file": {**given, "text": text}}


def load_spec(path: str | Path) -> ExperimentSpec:
    """Read a YAML or JSON spec file (JSON is YAML), and the runbook file it names."""
    p = Path(path)
    text = _read_text(p)
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise SpecError(f"spec file {p} is not valid YAML/JSON: {_yaml_problem(err)}") from None
    except RecursionError:  # PyYAML composes nested collections recursively
        raise SpecError(f"spec file {p} nests too deeply to read") from None
    if not isinstance(data, dict):
        raise SpecError(f"spec file {p} must hold a mapping at the top level")
    return parse_spec(_read_runbook_file(data))
