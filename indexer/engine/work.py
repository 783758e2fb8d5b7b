"""What a spec's work costs, from the spec alone: core-seconds to build and search, bytes of the largest index.

A grid of a few hundred bytes can ask for days: 1,000,000 x 512 vectors with M up to 512 and ef_construction
up to 4,096 over seven orderings is 896 builds. Counting cells or base size apart misses it, so each cell's
work is estimated with a cost model of HNSW (the number of distance computations, each costing the
dimension plus a fixed overhead), and admission refuses a spec whose total exceeds `max_work`.

The model, with constants fitted on this project's reference machine (one core, hnswlib 0.8, random unit
vectors, the hardest data for a graph; bench/bench_work.py re-measures every backend beside it):
- building one point costs ln(n) (d + 32) M^(1/3) efC^(2/3) x BUILD_SECONDS: on 17 shapes (n 2k-80k, d 16-384,
  M 4-128, efC 16-800) measured / estimated lay between 0.55 and 1.85;
- a query at ef costs ln(n) (d + 32) M^(1/3) ef^0.85 x SEARCH_SECONDS, never more than visiting every point
  once (n (d + 32) x VISIT_SECONDS: a graph's visits are random reads, several times a BLAS scan's cost);
- a brute-force scan (ground truth, the exact backend, exact LID) costs n d / BRUTE_MADDS_PER_SECOND;
- a backend other than hnswlib multiplies its build by its declared `build_cost` (a database's inserts,
  its server and its files cost more than a library's).
Real data with a low intrinsic dimension builds faster than random vectors, so the estimate leans high.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from indexer.backends import BACKENDS
from indexer.backends.precision import oversample_of, quantized
from indexer.engine.spec import Cell, ExperimentSpec, cells, recall_targets
from indexer.model.filters import FilterWorkload
from indexer.model.runbook import CHURN_SELF_MISS_SAMPLE, runbook_counts
from indexer.science import ef_ladder, orderings, query_hardness

if TYPE_CHECKING:
    from indexer.engine.space import Space

BUILD_SECONDS = 1.8e-9
SEARCH_SECONDS = 1.0e-9
SEARCH_EF_POWER = 0.85
DIST_OVERHEAD = 32  # a distance computation costs about as much as 32 more dimensions (fetch, heap, visited set)
VISIT_SECONDS = 4.0e-10  # one dimension of one visited point in a graph search (hnswlib at ef 640 on 10k points)
BRUTE_MADDS_PER_SECOND = 1.0e10  # BLAS inner products on one core
EMBED_TEXTS_PER_SECOND = 330.0  # all-MiniLM-L6-v2 on 2 cores
# Each ef of a cell searches its queries about this often: three timed passes, the latency sample's single
# queries and concurrent clients, the probes of cost at equal recall, and the warm-up.
SEARCHES_PER_EF = 6
EF_SEARCHES = 12  # searches of the doubling and bisection for one recall target's ef at a churn checkpoint
LID_ORDERINGS = orderings.reading("lid")  # orderings that need every point's LID
LINK_BYTES = 4  # an HNSW link is a 32-bit id; the bottom layer holds up to 2M per point


@dataclass(frozen=True)
class CellWork:
    """One cell's estimated cost."""

    build_seconds: float
    search_seconds: float
    index_bytes: int  # its vectors and its bottom-layer links

    @property
    def seconds(self) -> float:
        return self.build_seconds + self.search_seconds


@dataclass(frozen=True)
class Work:
    """A spec's estimated cost: core-seconds over every cell and shared step, and the largest index."""

    build_seconds: float
    search_seconds: float
    shared_seconds: float  # ground truth, LID and embedding, once per space
    largest_index_bytes: int
    largest_space_bytes: int  # the largest base, in its native dims, as float32
    filter_bytes: int = 0  # the largest space's filter masks (one bool per point per distinct filter)

    def peak_bytes(self, workers: int) -> int:
        """Memory at the busiest moment: the original and the prepared base (memory-mapped and shared by the
        workers), one index per worker, each as large as the largest, and the filter masks, which travel
        with every cell."""
        return 2 * self.largest_space_bytes + workers * self.largest_index_bytes + (workers + 1) * self.filter_bytes

    @property
    def core_seconds(self) -> float:
        return self.build_seconds + self.search_seconds + self.shared_seconds

    def describe(self, cores: int) -> str:
        """One line: the total in core-hours and its parts, and the wall time it means on `cores` cores."""
        return (f"{self.core_seconds / 3600:,.2f} core-hours (build {_duration(self.build_seconds)}, search "
                f"{_duration(self.search_seconds)}, ground truth/LID/embedding {_duration(self.shared_seconds)}); "
                f"about {_duration(self.core_seconds / max(cores, 1))} on {cores} cores; largest index "
                f"{_bytes(self.largest_index_bytes)}, peak memory about {_bytes(self.peak_bytes(cores))} with "
                f"{cores} workers")


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:,.1f} s"
    if seconds < 7200:
        return f"{seconds / 60:,.1f} min"
    return f"{seconds / 3600:,.1f} h"


def _bytes(n: int) -> str:
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{size:,.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")


def build_seconds(n: int, dims: int, M: int, ef_construction: int) -> float:
    """One core's seconds to insert n points into an HNSW graph (hnswlib; see the module's model)."""
    if n < 2:
        return 0.0
    per_point = math.log(n) * (dims + DIST_OVERHEAD) * math.pow(M, 1 / 3) * math.pow(ef_construction, 2 / 3)
    return BUILD_SECONDS * n * per_point


def query_seconds(n: int, dims: int, M: int, ef: int) -> float:
    """One core's seconds for one query at `ef` on an HNSW graph of n points; at most a visit to every point."""
    scan = n * (dims + DIST_OVERHEAD) * VISIT_SECONDS
    if n < 2:
        return scan
    graph = SEARCH_SECONDS * math.log(n) * (dims + DIST_OVERHEAD) * math.pow(M, 1 / 3) * math.pow(ef, SEARCH_EF_POWER)
    return min(graph, scan)


def cell_work(cell: Cell, n: int, dims: int, queries: int, *, k: int) -> CellWork:
    """The cost of one cell on n base points of `dims` dimensions, searched by `queries` queries per ef and, once,
    up its ef ladder (k, 2k, ... to the cap: every query at every rung, the most it can cost)."""
    backend = BACKENDS[cell.backend.name]
    params = cell.backend.build_params()
    vectors = n * dims * 4
    if "M" not in params or "ef_construction" not in params:  # exact: a copy, then a scan per query
        scan = queries * n * dims / BRUTE_MADDS_PER_SECOND
        return CellWork(vectors / 1e9, SEARCHES_PER_EF * scan, vectors)
    M, efc = int(params["M"]), int(params["ef_construction"])
    build = build_seconds(n, dims, M, efc) * backend.build_cost
    search = sum(SEARCHES_PER_EF * queries * query_seconds(n, dims, M, ef or 1) for ef in cell.backend.ef_values())
    if oversample_of(params) is not None:  # the sweep searched once more with rescoring off (the loss split)
        search += sum(queries * query_seconds(n, dims, M, ef or 1) for ef in cell.backend.ef_values())
    if cell.backend.ef_values() != [None]:  # the ef ladder probe (indexer.engine.ladder)
        rungs = ef_ladder.ladder(k, ef_ladder.ladder_cap(k, n, backend.max_ef))
        search += sum(queries * query_seconds(n, dims, M, ef) for ef in rungs)
    if quantized(params):  # the loss split's exact search over the stored vectors, decoded (a float32 copy)
        search += queries * n * dims / BRUTE_MADDS_PER_SECOND
        vectors += n * dims * 4
    return CellWork(build, search, vectors + n * 2 * M * LINK_BYTES)


def work(spec: ExperimentSpec, base: int | None, dims: Mapping[str | None, int] | None, queries: int | None,
         embedded_texts: int = 0) -> Work | None:
    """The spec's estimated cost over its base of `base` points, each model's vectors of `dims[model]` native
    dimensions; None when a size is known only once a user's file is read."""
    if base is None or dims is None or queries is None:
        return None
    built = search = 0.0
    largest = 0
    spaces: set[tuple[int, int]] = set()  # (index size, dims): each gets its own ground truth
    natives: set[tuple[int, int]] = set()  # (index size, native dims): exact kNN and LID, per model
    for cell in cells(spec):
        n = base if cell.index_size == "all" else min(base, cell.index_size)
        native = dims[cell.model]
        d = cell.reduction.dims or native
        one = cell_work(cell, n, d, queries, k=spec.k)
        built += one.build_seconds
        search += one.search_seconds
        largest = max(largest, one.index_bytes)
        spaces.add((n, d))
        natives.add((n, native))
    live_truth = 0.0
    if spec.runbook_steps():  # a runbook's cells in place of the grid's (which is empty then)
        for native in dims.values():
            for size in spec.index_sizes:
                n = base if size == "all" else min(base, size)
                for reduction in spec.reductions:
                    d = reduction.dims or native
                    one = churn_work(spec, n, d, queries)
                    built += one.build_seconds
                    search += one.search_seconds
                    largest = max(largest, one.index_bytes)
                    spaces.add((n, d))
                    natives.add((n, native))
                    # exact kNN over the live set at every checkpoint, in the native space
                    # and, with filters, exact filtered kNN over the live points each filter keeps
                    checkpoints = runbook_counts(spec.runbook_steps(), n, baseline=spec.runbook_baseline).checkpoints
                    passes = 1 + sum(_filter_fractions(spec))
                    live_truth += queries * n * native * checkpoints * passes / BRUTE_MADDS_PER_SECOND
    kept = _filter_fractions(spec)
    filtered = sum(SEARCHES_PER_EF * queries * _filtered_query_seconds(cell, base, dims[cell.model], kept)
                   for cell in cells(spec)) if kept else 0.0
    shared = sum(queries * n * d / BRUTE_MADDS_PER_SECOND for n, d in spaces | natives)
    # each space's query measures from the data alone: expansion's exact kNN at 2k, and k-means for centre distance
    shared += sum(query_hardness.work_madds(n, d, queries) / BRUTE_MADDS_PER_SECOND for n, d in spaces)
    shared += sum(queries * n * d * sum(kept) / BRUTE_MADDS_PER_SECOND for n, d in natives)  # filtered truth
    shared += sum(_lid_seconds(spec, n, d) for n, d in natives)
    shared += embedded_texts / EMBED_TEXTS_PER_SECOND + live_truth
    space_bytes = max((n * d * 4 for n, d in natives), default=0)
    masks = sum(_filter_masks(w, queries) * max(1, len(w.selectivities)) for w in spec.filters)
    return Work(built, search + filtered, shared, largest, space_bytes, masks * max((n for n, _ in natives), default=0))


LABEL_KEEPS = 0.1  # a label or column filter's share of the points, before the data is read (for the estimate only)


def _filter_fractions(spec: ExperimentSpec) -> list[float]:
    """The share each filter (workload x selectivity) keeps, as the estimate counts it."""
    return [s for w in spec.filters for s in (w.selectivities or [LABEL_KEEPS])]


def _filter_masks(w: FilterWorkload, queries: int) -> int:
    """Distinct masks a filter may hold: one (random), a cluster's each (correlated), a query's each (range),
    one per distinct allowed set (column)."""
    if w.kind == "random":
        return 1
    if w.kind in ("correlated", "anti_correlated"):
        return min(w.clusters, queries)
    if w.kind == "column" and w.allowed is not None:
        return min(len({frozenset(values) for values in w.allowed}), queries)
    return queries  # label and a column's own value: at most a query's value each; range: a window each


def _filtered_query_seconds(cell: Cell, base: int, native: int, kept: list[float]) -> float:
    """One query under every filter at every ef: a graph search must gather ef passing points, so it visits
    about ef / kept of them; at most a scan of every point (and a brute force scans the kept ones)."""
    n = base if cell.index_size == "all" else min(base, cell.index_size)
    d = cell.reduction.dims or native
    params = cell.backend.build_params()
    if "M" not in params:
        return sum(n * s * d / BRUTE_MADDS_PER_SECOND for s in kept)
    return sum(query_seconds(n, d, int(params["M"]), max(1, round((ef or 1) / s)))
               for s in kept for ef in cell.backend.ef_values())


def _lid_seconds(spec: ExperimentSpec, n: int, dims: int) -> float:
    """Pointwise LID: every point's k nearest neighbours when an ordering needs them (all pairs up to
    `exact_up_to`, an HNSW graph above), else a sample's."""
    if not LID_ORDERINGS & set(spec.orderings):
        return min(spec.lid.sample, n) * n * dims / BRUTE_MADDS_PER_SECOND
    exact = spec.lid.method == "exact" or (spec.lid.method == "auto" and n <= spec.lid.exact_up_to)
    if exact:
        return n * n * dims / BRUTE_MADDS_PER_SECOND
    return build_seconds(n, dims, 16, 200) + n * query_seconds(n, dims, 16, 2 * spec.lid.k)


def churn_work(spec: ExperimentSpec, n: int, dims: int, queries: int) -> CellWork:
    """Every runbook cell of one space (backend entries x seeds) on n rows: its inserts (re-inserts counted) at
    the cost of building that many points, each checkpoint's searches at every ef, and each baseline's fresh
    build; with recall targets, the doubling and bisection for each target's ef at every checkpoint (live and
    baseline: about EF_SEARCHES searches at up to twice the largest ef); with filters, one filtered pass per
    filter, mode and ef at every checkpoint. The exact kNN over the live set at each checkpoint is counted by the
    caller, once per space."""
    counts = runbook_counts(spec.runbook_steps(), n, baseline=spec.runbook_baseline)
    filter_passes = len(_filter_fractions(spec))
    bisections = EF_SEARCHES if recall_targets(spec) else 0
    largest = max(counts.largest, 2)
    built = search = 0.0
    index_bytes = 0
    for entry in spec.backends:
        backend = BACKENDS[entry.name]
        params = entry.build_params()
        if "M" not in params or "ef_construction" not in params:  # exact: copies, then a scan per query
            per_point, per_query = dims * 4 / 1e9, largest * dims / BRUTE_MADDS_PER_SECOND
            links = 0
        else:
            M, efc = int(params["M"]), int(params["ef_construction"])
            per_point = build_seconds(largest, dims, M, efc) * backend.build_cost / largest
            per_query = sum(query_seconds(largest, dims, M, ef or 1) for ef in entry.ef_values())
            widest = query_seconds(largest, dims, M, 2 * max(ef or 1 for ef in entry.ef_values()))
            search += (len(spec.seeds) * bisections * queries * widest * (counts.checkpoints + counts.baselines))
            links = 2 * M * LINK_BYTES
        inserts = counts.baseline_points if backend.capabilities.deletes == "none" else counts.inserted
        built += len(spec.seeds) * per_point * (inserts + counts.baseline_points)
        search += len(spec.seeds) * SEARCHES_PER_EF * queries * per_query * (counts.checkpoints + counts.baselines)
        search += len(spec.seeds) * queries * per_query * counts.checkpoints * filter_passes * len(entry.filter_modes())
        # self-miss at every checkpoint: a sample of the live points, each searched once per ef
        search += len(spec.seeds) * min(largest, CHURN_SELF_MISS_SAMPLE) * per_query * counts.checkpoints
        index_bytes = max(index_bytes, largest * (dims * 4 + links))
    return CellWork(built, search, index_bytes)


@dataclass(frozen=True)
class RunPlan:
    """A run's estimated work split into what each of its steps credits when it ends (the time left,
    indexer.engine.eta): the parts sum to `total_seconds`, the spec's `work` over the dataset's real sizes."""

    total_seconds: float = 0.0  # core-seconds; 0: not planned yet
    cell_scale: float = 0.0  # a cell's cell_work seconds (a runbook cell's churn_cell_seconds) -> its part
    space_seconds: float = 0.0  # each space's ground truth, LID and measures
    embed_seconds: float = 0.0  # each model's embedding


def run_plan(spec: ExperimentSpec, base: int, native: int, queries: int) -> RunPlan:
    """The plan over `base` points of `native` dims (every model taken at the first one's) and `queries`."""
    models = spec.models()
    texts = (base + queries) * len(models) if spec.dataset.kind == "text" else 0
    planned = work(spec, base, dict.fromkeys(models, native), queries, texts)
    assert planned is not None  # every size is given
    units = 0.0  # the parts' own estimates, which the plan's build and search seconds are split by
    for cell in cells(spec):
        n = base if cell.index_size == "all" else min(base, cell.index_size)
        units += cell_work(cell, n, cell.reduction.dims or native, queries, k=spec.k).seconds
    spaces = [(size, reduction) for size in spec.index_sizes for reduction in spec.reductions]
    if spec.runbook_steps():
        units += len(models) * sum(
            churn_work(spec, base if size == "all" else min(base, size), r.dims or native, queries).seconds
            for size, r in spaces)
    embed = texts / EMBED_TEXTS_PER_SECOND
    return RunPlan(total_seconds=planned.core_seconds,
                   cell_scale=(planned.build_seconds + planned.search_seconds) / units if units > 0 else 0.0,
                   space_seconds=max(planned.shared_seconds - embed, 0.0) / max(1, len(models) * len(spaces)),
                   embed_seconds=embed / max(1, len(models)))


def churn_cell_seconds(spec: ExperimentSpec, s: Space) -> float:
    """One runbook cell's estimate: its space's churn work over the space's runbook cells (entries x seeds)."""
    per_space = max(1, len(spec.backends) * len(spec.seeds))
    return churn_work(spec, len(s.rows), int(s.base.shape[1]), len(s.queries)).seconds / per_space
