"""Admission: a spec runs only if its estimated size fits the machine's limits.

A spec is a few hundred bytes that can ask for terabytes (`points_per_subspace: 1000000000` is 2.8 TiB
of vectors). Before any work, the spec's size is estimated from the spec alone (dataset sizes that
packages ship are known constants; user files are measured from their headers by the loader later)
and checked against `Limits`, settings with defaults for one machine of 2 cores and 24 GiB. The API
always applies them; the CLI applies them unless told to lift them (`indexer run --no-limits`).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from indexer.common.errors import UserError
from indexer.engine.executors.config import cores
from indexer.engine.spec import ExperimentSpec, grid_size
from indexer.engine.work import Work, work
from indexer.model.datasets import DEFAULT_MODEL
from indexer.model.runbook import range_problems

# Corpus sizes the packages ship (counted once; loading them to count would cost what we guard against)
GLOVE_VECTORS, GLOVE_DIM = 400_000, 50
CORPUS_DOCUMENTS = {"bbc": 2_225, "wordnet": 117_659}
MODEL_DIMS = {DEFAULT_MODEL: 384, "minilm-cls": 384, "minilm-l3": 384, "glove-avg": 50}


class AdmissionError(UserError):
    """The spec asks for more than a limit allows; the message names the limit and the estimate."""


@dataclass(frozen=True)
class Limits:
    max_cells: int = 1_000
    max_base_bytes: int = 2 * 1024**3  # one float32 copy of the base vectors
    max_queries: int = 100_000
    max_clusters: int = 10_000
    max_embedded_texts: int = 500_000  # documents and queries x models; about 25 min at 330 texts/s
    # the estimated total work (indexer.engine.work) in core-hours: 4 hours on 2 cores; the largest README
    # example estimates 0.34
    max_work: float = 8.0
    # one cell's vectors and graph links, as built: each worker holds one, so with 2 workers and the largest base
    # the peak is about 2 x 6 + 2 x 2 GiB (indexer.engine.work.Work.peak_bytes), inside 24 GiB
    max_index_bytes: int = 6 * 1024**3


@dataclass(frozen=True)
class Estimate:
    """What a spec asks for, from the spec alone; None where it depends on a user's file."""

    cells: int
    base_vectors: int | None
    dim: int | None  # the native dimension (the largest, over models)
    queries: int | None
    embedded_texts: int
    work: Work | None = None  # None where a size depends on a user's file

    @property
    def base_bytes(self) -> int | None:
        if self.base_vectors is None or self.dim is None:
            return None
        return self.base_vectors * self.dim * 4


def estimate(spec: ExperimentSpec) -> Estimate:
    data = spec.dataset
    grid = max(grid_size(spec), 1)  # a runbook's cells counted too
    if data.kind == "synthetic":
        subspaces = len(data.intrinsic_dims)
        est = Estimate(grid, subspaces * data.points_per_subspace, data.ambient_dim,
                       subspaces * data.queries_per_subspace, 0)
    elif data.kind == "glove":
        est = Estimate(grid, data.n, GLOVE_DIM, data.queries, 0)
    elif data.kind == "text":
        total = CORPUS_DOCUMENTS[data.corpus]
        base = min(total, data.limit) if data.limit is not None else total
        dims = [MODEL_DIMS.get(m) for m in data.models]
        dim = None if None in dims else max(d for d in dims if d is not None)
        est = Estimate(grid, base, dim, data.queries, (base + data.queries) * len(data.models))
    else:
        return Estimate(grid, None, None, None, 0)  # file and beir: sized when loaded
    models = spec.models()
    native: dict[str | None, int | None] = (
        {m: MODEL_DIMS.get(m or "", est.dim) for m in models} if data.kind == "text" else {None: est.dim})
    known = {m: d for m, d in native.items() if d is not None}
    if len(known) < len(native):
        return est  # a local model directory: its dimension is known once it is loaded
    return replace(est, work=work(spec, est.base_vectors, known, est.queries, est.embedded_texts))


def _bytes(n: int) -> str:
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if size < 1024 or unit == "PiB":
            return f"{size:,.1f} {unit}" if unit != "B" else f"{int(size)} B"
        size /= 1024
    raise AssertionError("unreachable")


def problems(spec: ExperimentSpec, limits: Limits) -> list[str]:
    """Every limit the spec exceeds, each as one sentence naming the limit and the estimate."""
    est = estimate(spec)
    found = []
    if est.cells > limits.max_cells:
        found.append(f"max_cells: the grid has {est.cells:,} indexes to build, over the limit of "
                     f"{limits.max_cells:,}")
    if est.base_bytes is not None and est.base_bytes > limits.max_base_bytes:
        found.append(f"max_base_bytes: {est.base_vectors:,} base vectors x {est.dim} dims x 4 bytes = "
                     f"{_bytes(est.base_bytes)}, over the limit of {_bytes(limits.max_base_bytes)}")
    if est.queries is not None and est.queries > limits.max_queries:
        found.append(f"max_queries: {est.queries:,} queries, over the limit of {limits.max_queries:,}")
    if "cluster" in spec.orderings and spec.clusters > limits.max_clusters:
        found.append(f"max_clusters: clusters={spec.clusters:,}, over the limit of {limits.max_clusters:,}")
    if est.embedded_texts > limits.max_embedded_texts:
        found.append(f"max_embedded_texts: {est.embedded_texts:,} texts to embed (documents and queries x "
                     f"models), over the limit of {limits.max_embedded_texts:,}")
    if est.work is not None:
        hours = est.work.core_seconds / 3600
        if hours > limits.max_work:
            found.append(f"max_work: the spec's estimated work is {est.work.describe(cores())}, over the limit of "
                         f"{limits.max_work:,} core-hours")
        if est.work.largest_index_bytes > limits.max_index_bytes:
            found.append(f"max_index_bytes: its largest index (vectors and graph links) is estimated at "
                         f"{_bytes(est.work.largest_index_bytes)}, over the limit of {_bytes(limits.max_index_bytes)}")
        if est.work.filter_bytes > limits.max_index_bytes:  # the masks travel with every cell, as an index does
            found.append(f"max_index_bytes: the filters' masks (one byte per point per distinct filter: a range, "
                         f"label or own-value column filter has one per query) are estimated at "
                         f"{_bytes(est.work.filter_bytes)}, "
                         f"over the limit of {_bytes(limits.max_index_bytes)}")
    found.extend(_fit_problems(spec, est))
    return found


def _fit_problems(spec: ExperimentSpec, est: Estimate) -> list[str]:
    """Parameters that cannot fit the data at all, whatever the limits."""
    found = []
    if est.dim is not None:
        over = [r.label for r in spec.reductions if r.dims is not None and r.dims > est.dim]
        if over:
            found.append(f"reductions: {', '.join(over)} ask for more dimensions than the input's {est.dim}")
    if est.base_vectors is not None:
        sizes = [s for s in spec.index_sizes if isinstance(s, int)]
        smallest = min([est.base_vectors, *sizes])
        if spec.k > smallest:
            found.append(f"k: {spec.k} is larger than the smallest index ({smallest:,} vectors)")
        if spec.lid.k >= smallest:
            found.append(f"lid.k: {spec.lid.k} needs more than the smallest index's {smallest:,} vectors")
        if "cluster" in spec.orderings and spec.clusters > smallest:
            found.append(f"clusters: {spec.clusters:,} exceeds the smallest index's {smallest:,} vectors")
        found.extend(range_problems(spec.runbook_steps(), smallest, spec.step_naming()))  # a step past the rows, named
    return found


def describe_estimate(est: Estimate, cores: int) -> str:
    """What a dry run prints: the grid, the data and the estimated work, one fact per line."""
    lines = [f"cells: {est.cells:,} indexes to build"]
    if est.base_vectors is not None:
        lines.append(f"base: {est.base_vectors:,} vectors x {est.dim} dims"
                     + (f" ({_bytes(est.base_bytes)} as float32)" if est.base_bytes is not None else ""))
    if est.queries is not None:
        lines.append(f"queries: {est.queries:,}")
    if est.embedded_texts:
        lines.append(f"texts to embed: {est.embedded_texts:,}")
    lines.append(f"work: {est.work.describe(cores)}" if est.work is not None
                 else "work: not estimated (the dataset's size is known once its file is read)")
    return "\n".join(lines)


def admit(spec: ExperimentSpec, limits: Limits | None) -> Estimate:
    """Raise AdmissionError listing every problem; `limits=None` checks only that the spec fits its data."""
    found = problems(spec, limits) if limits is not None else _fit_problems(spec, estimate(spec))
    if found:
        raise AdmissionError("spec refused: " + "; ".join(found))
    return estimate(spec)
