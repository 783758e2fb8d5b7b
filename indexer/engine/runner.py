"""The one path every experiment takes: `run`, called by the CLI and the worker through
`indexer.pipeline.run_and_report`.

The API runs nothing itself: it queues specs for the worker and opens the indexes built here.

For each model (text datasets) the dataset is loaded and prepared once; for each index size and
reduction, exact ground truth and pointwise LID are computed once and cached on disk; then each grid
cell (ordering x backend x seed) builds one index, serves its whole ef sweep, and is cached as a
finished unit (written to a temp directory, renamed into place, rows last) so a rerun skips it.
Text datasets with relevance judgements add IR metrics, BM25 (sparse) and RRF (hybrid) rows.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import logging
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import numpy as np

from indexer.backends import BACKENDS, require_all
from indexer.common.errors import DataError, UserError
from indexer.common.fileio import (
    atomic_save_npy,
    sha256_file,
    staged_dir,
    staging_path,
    sweep_orphans,
    sweep_scratch,
)
from indexer.common.hashing import SPACED, content_key
from indexer.datasets import Dataset, load_dataset
from indexer.engine.admission import estimate
from indexer.engine.advisor import advise
from indexer.engine.cell import IR_DEPTH
from indexer.engine.churn import ChurnOut, ChurnTask, RunElsewhere, churn_cells, churn_space, summarize_churn
from indexer.engine.columns import check_columns
from indexer.engine.eta import Eta, space_words
from indexer.engine.executors import Cancelled, ExecutorConfig, cores, open_executor
from indexer.engine.executors.base import CellResult, CellTask, Executor, Task, TaskResult
from indexer.engine.filtering import space_filters
from indexer.engine.measure import (
    MEASURES_DIR,
    PROBES_DIR,
    built,
    ir_metrics,
    measure_cell,
    probed,
    read_filtered,
    read_measured,
)
from indexer.engine.phases import Phases, Progress
from indexer.engine.provenance import provenance
from indexer.engine.space import LidMethod, Space, space_metric
from indexer.engine.spec import Cell, ExperimentSpec, cells
from indexer.engine.work import RunPlan, cell_work, churn_cell_seconds, run_plan
from indexer.model.filters import column_attributes, query_column_attributes
from indexer.model.options import ReductionSpec
from indexer.model.results import (
    QUERY_MEASURE_FIELDS,
    DenseRow,
    HybridRow,
    IndexRecord,
    ResultRow,
    RunExtras,
    SpaceSummary,
    SparseRow,
)
from indexer.model.runbook import reads_lid
from indexer.science import groundtruth, lid, orderings, preflight, query_hardness
from indexer.science.analysis import model_ranking, size_crossings, space_measures, space_summary
from indexer.science.graph import k_occurrence_skewness

__all__ = ["Cancelled", "Phases", "Progress", "RunResult", "run"]

log = logging.getLogger(__name__)



@dataclass
class RunResult:
    spec: ExperimentSpec
    rows: list[ResultRow]
    extras: RunExtras = field(default_factory=RunExtras)
    indexes: list[IndexRecord] = field(default_factory=list)  # with absolute cell paths


def _hash(obj: Any) -> str:
    """Cache keys of spaces and sparse runs (json.dumps' default spacing, kept so caches stay valid)."""
    return content_key(obj, separators=SPACED, default=str)


def _knn_over(base: np.ndarray, rows: np.ndarray, queries: np.ndarray, k: int, metric: str) -> dict[str, np.ndarray]:
    """Exact kNN restricted to `rows`, ids mapped back to the dataset's numbering."""
    sub = base if len(rows) == len(base) else np.ascontiguousarray(base[rows])
    pos, scores = groundtruth.exact_knn(sub, queries, k, metric)
    return {"ids": rows[pos], "scores": scores}


def _check_sizes(spec: ExperimentSpec, ds: Dataset) -> None:
    smallest = min([len(ds.base)] + [s for s in spec.index_sizes if isinstance(s, int)])
    if spec.k > smallest:
        raise UserError(f"k={spec.k} is larger than the base set ({smallest} vectors)")
    if spec.lid.k >= smallest:
        raise UserError(f"lid.k={spec.lid.k} needs more than {smallest} base vectors")
    over = [r.label for r in spec.reductions if r.dims is not None and r.dims > ds.base.shape[1]]
    if over:  # checked here for user files, whose dimension the spec cannot know
        raise UserError(f"reductions {', '.join(over)} ask for more dimensions than {ds.name}'s {ds.base.shape[1]}")


def _check_judged(spec: ExperimentSpec, ds: Dataset) -> None:
    wanted = set(spec.representations) & {"sparse", "hybrid"}
    if wanted and not ds.qrels:
        raise UserError(
            f"representations {sorted(wanted)} are scored against relevance judgements, and dataset "
            f"{ds.name} has none (add qrels/test.tsv to a BEIR directory)"
        )


def relevant_rows(ds: Dataset) -> np.ndarray:
    """Rows of the documents judged relevant to any query: an index-size subset must keep them all."""
    if not ds.qrels:
        return np.zeros(0, dtype=np.int64)
    position = {d: i for i, d in enumerate(ds.doc_ids or [str(i) for i in range(len(ds.base))])}
    rel = {position[d] for docs in ds.qrels.values() for d, grade in docs.items() if grade > 0 and d in position}
    return np.array(sorted(rel), dtype=np.int64)


def index_rows(n: int, size: int | str, keep: np.ndarray, seed: int) -> np.ndarray:
    """The rows an index of `size` documents holds: every row in `keep` plus seeded distractors, sorted."""
    if size == "all" or int(size) >= n:
        return np.arange(n, dtype=np.int64)
    size = int(size)
    if size < len(keep):
        raise UserError(f"index size {size} is smaller than the {len(keep)} relevant documents it must hold")
    rng = np.random.default_rng(seed)
    others = np.setdiff1d(np.arange(n, dtype=np.int64), keep, assume_unique=True)
    chosen = rng.choice(others, size - len(keep), replace=False)
    return np.sort(np.concatenate([keep, chosen]).astype(np.int64))


def _reduce(reduction: ReductionSpec, base: np.ndarray, queries: np.ndarray, metric: str
            ) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    if reduction.name == "none":
        return base, queries, {"name": "none", "dims": int(base.shape[1])}
    from indexer.science.reduce import fit_reduction

    reducer = fit_reduction(reduction, base, reduction.seed)
    rb = groundtruth.prepare_vectors(reducer.transform(base), metric)
    rq = groundtruth.prepare_vectors(reducer.transform(queries), metric)
    # the loader refused NaN/inf in the input; an FFT or a projection of large values can overflow float32
    preflight.require_finite(rb, rq, f"after reduction {reduction.label}")
    return rb, rq, reducer.describe()


def _write_vectors(cache_dir: Path, s: Space) -> None:
    """The vectors an index holds (and, when reduced, the originals the reducer is refitted on), kept
    so the API can evaluate against exact search over the same data. Written once, renamed into place."""
    vdir = cache_dir / "vectors" / s.key
    if (vdir / "meta.json").exists():
        return
    with staged_dir(vdir) as tmp:
        arrays = {"base": s.base, "queries": s.queries}
        if s.reduction.name != "none":
            arrays.update(original_base=s.orig_base, original_queries=s.orig_queries)
        files = {}
        for name, arr in arrays.items():
            np.save(tmp / f"{name}.npy", arr)
            files[name] = sha256_file(tmp / f"{name}.npy")
        meta = {"files": files, "titles": s.dataset.titles, "reduction": s.reduction_info,
                "reduction_seed": s.reduction.seed}
        (tmp / "meta.json").write_text(json.dumps(meta))


Tick = Callable[..., None]  # tick(estimated seconds, cached=False): one more cell done


class _Budget:
    """The advisor's time budget: spent once the run has taken budget_minutes (never, without one)."""

    def __init__(self, spec: ExperimentSpec) -> None:
        minutes = spec.advise.budget_minutes if spec.advise is not None else None
        self.deadline = None if minutes is None else time.monotonic() + 60.0 * minutes
        self.skipped = 0

    def spent(self) -> bool:
        return self.deadline is not None and time.monotonic() > self.deadline

    def admit(self, _task: Task) -> bool:
        """Whether a cell not yet built may start: not once the budget is spent (it is counted as skipped)."""
        if self.spent():
            self.skipped += 1
            return False
        return True


def _space_cells(spec: ExperimentSpec, mine: list[Cell], s: Space, cache_dir: Path, executor: Executor,
                 phase: Phases, should_stop: Callable[[], bool], budget: _Budget, fresh: bool,
                 tick: Tick) -> list[CellResult]:
    """The rows and record of each cell of `mine` (one space), in grid order: measured ones read; built
    ones measured from their saved answers (their saved index probed again when the probes asked for
    differ, on `executor`); the rest built on `executor` (those the budget admits), finishing in whatever
    order they do. Each cell ticks with its estimated work when it is done."""
    results: dict[int, CellResult] = {}
    tasks: list[CellTask] = []
    positions: list[int] = []
    n, dims, queries = len(s.rows), int(s.base.shape[1]), len(s.queries)

    def estimated(cell: Cell) -> float:
        return cell_work(cell, n, dims, queries, k=spec.k).seconds

    for i, cell in enumerate(mine):
        cell_dir = cache_dir / "cells" / cell.build_key(spec)
        found = None if fresh else _saved(spec, cell, s, cell_dir, phase)
        if found is not None:
            results[i] = found
            tick(estimated(cell), cached=True)
            continue
        reprobe = (not fresh and built(cell_dir) and executor.reads_cache
                   and BACKENDS[cell.backend.name].capabilities.servable)
        # a built cell that cannot be probed in place is built again over its old directory
        tasks.append(CellTask(spec, cell, cell_dir, replace=fresh or built(cell_dir), reprobe=reprobe))
        positions.append(i)

    if budget.deadline is None and len(tasks) > 1:
        # longest first (the work model's estimate), so the last cells to finish are short ones and no worker
        # idles beside one long build at the end; a budget keeps its own order (cheapest first)
        order = sorted(range(len(tasks)), key=lambda j: -estimated(tasks[j].cell))
        tasks, positions = [tasks[j] for j in order], [positions[j] for j in order]

    def done(j: int, result: TaskResult) -> None:
        results[positions[j]] = cast(CellResult, result)  # a grid cell's
        tick(estimated(tasks[j].cell))

    executor.run_cells(s, list[Task](tasks), admit=budget.admit, should_stop=should_stop, done=done, phase=phase)
    return [results[i] for i in sorted(results)]


def _churn_on(executor: Executor, s: Space, phase: Phases, should_stop: Callable[[], bool]) -> RunElsewhere | None:
    """Runbook cells on `executor` when it runs several cells at once (None: one by one in the driver)."""
    if executor.workers < 2:
        return None

    def run(tasks: list[ChurnTask], done: Callable[[int, ChurnOut], None]) -> None:
        executor.run_cells(s, list[Task](tasks), admit=lambda _: True, should_stop=should_stop,
                           done=lambda j, out: done(j, cast(ChurnOut, out)), phase=phase)

    return run


def _saved(spec: ExperimentSpec, cell: Cell, s: Space, cell_dir: Path, phase: Phases) -> CellResult | None:
    """A built cell's rows without building or searching: as measured before under this spec's measure key,
    or measured now from its saved answers and probes (None: not built, or its probes are not there)."""
    measure_key, probe_key = cell.measure_key(spec, s.lid_method), cell.probe_key(spec, s.lid_method)
    found = read_measured(cell_dir, measure_key)
    if found is not None or not built(cell_dir) or not probed(cell_dir, probe_key):
        return found
    with phase(f"{cell.ordering} {cell.backend.label()} seed={cell.seed}: measure the saved answers"):
        rows = measure_cell(spec=spec, cell=cell, s=s, cell_dir=cell_dir, measure_key=measure_key,
                            probe_key=probe_key)
    return rows, IndexRecord.model_validate_json((cell_dir / "meta.json").read_bytes())


def _build_cost(cell: Cell) -> int:
    """A configuration's relative build cost (M x ef_construction; 0 for a backend without a graph)."""
    params = cell.backend.build_params()
    return int(params.get("M", 0)) * int(params.get("ef_construction", 0))


def _sparse_rows(spec: ExperimentSpec, ds: Dataset, rows: np.ndarray, cache_dir: Path) -> tuple[SparseRow, np.ndarray]:
    """BM25 over the texts of `rows`: one report row, and its depth-100 ranking for fusion."""
    from indexer.science.sparse import BM25Index

    if ds.texts is None or ds.query_texts is None:
        raise UserError(f"dataset {ds.name} has no text: the sparse representation needs it")
    key = _hash({"bm25": ds.name, "dataset": spec.dataset.model_dump(mode="json"), "rows": _hash(rows.tolist()),
                 "k": spec.k})
    path = cache_dir / "sparse" / key

    def compute() -> dict[str, np.ndarray]:
        t0 = time.perf_counter()
        index = BM25Index().build([ds.texts[i] for i in rows], doc_ids=rows)  # type: ignore[index]
        build = time.perf_counter() - t0
        t0 = time.perf_counter()
        top, _ = index.search(ds.query_texts, spec.k)  # type: ignore[arg-type]
        seconds = time.perf_counter() - t0
        deep, _ = index.search(ds.query_texts, min(IR_DEPTH, len(rows)))  # type: ignore[arg-type]
        return {"top": top, "deep": deep, "timing": np.array([build, seconds, index.nbytes()])}

    got = groundtruth.cached(path.parent, path.name, compute)
    build, seconds, nbytes = got["timing"].tolist()
    neighbors = path.parent / f"{key}-neighbors.npy"
    if not neighbors.exists():
        atomic_save_npy(neighbors, got["top"])
    row = SparseRow(
        dataset=ds.name, index_size=len(rows), k=spec.k, build_seconds=build,
        qps=len(ds.query_texts) / max(seconds, 1e-9), index_bytes=int(nbytes), neighbors=str(neighbors),  # type: ignore[arg-type]
        **dict(ir_metrics(ds, got["top"], got["deep"])),
    )
    return row, got["deep"]


def _hybrid_row(spec: ExperimentSpec, ds: Dataset, dense_row: DenseRow, sparse_deep: np.ndarray,
                cache_dir: Path) -> HybridRow:
    """Reciprocal rank fusion of one dense setting with BM25 over the same documents."""
    from indexer.science.sparse import reciprocal_rank_fusion

    assert dense_row.ranking is not None, "a judged dataset's dense rows keep their depth-100 ranking"
    ranking = Path(dense_row.ranking)
    dense_deep = np.load(ranking)
    fused = reciprocal_rank_fusion([dense_deep, sparse_deep], IR_DEPTH)
    path = ranking.with_name(f"hybrid-{ranking.name}")
    if not path.exists():
        atomic_save_npy(path, fused[:, : spec.k])
    row = HybridRow(
        dataset=dense_row.dataset, model=dense_row.model, metric=dense_row.metric, index_size=dense_row.index_size,
        reduction=dense_row.reduction, dims=dense_row.dims, ordering=dense_row.ordering, backend=dense_row.backend,
        build_params=dict(dense_row.build_params), ef=dense_row.ef,
        k=dense_row.k, seed=dense_row.seed, cell=dense_row.cell, neighbors=str(path),
        **dict(ir_metrics(ds, fused[:, : spec.k], fused)),
    )
    # set only when there is one: a row without a preset has no `preset` key (HybridRow.OMIT_UNSET)
    return row.model_copy(update={"preset": dense_row.preset}) if dense_row.preset else row


def _space(spec: ExperimentSpec, ds: Dataset, dataset_key: str, base: np.ndarray, queries: np.ndarray,
           size: int | str, reduction: ReductionSpec, cache_dir: Path, phase: Phases) -> Space:
    metric = space_metric(spec)
    rows = index_rows(len(base), size, relevant_rows(ds), seed=spec.seeds[0])
    size_key = _hash({"dataset": dataset_key, "size": size, "seed": spec.seeds[0]})
    with phase("ground truth"):
        gt = groundtruth.cached(cache_dir / "groundtruth", f"gt-{size_key}-{spec.metric}-{spec.k}",
                                lambda: _knn_over(base, rows, queries, spec.k, metric))
    if ds.groundtruth is not None and len(rows) == len(base):
        _check_provided(spec, ds, gt, base, queries)
    key = _hash({"size": size_key, "metric": spec.metric, "reduction": reduction.model_dump(mode="json")})
    with phase(f"reduction {reduction.label}"):
        rb, rq, info = _reduce(reduction, base, queries, spec.metric)
        within = gt if reduction.name == "none" else groundtruth.cached(
            cache_dir / "groundtruth", f"gt-{key}-{spec.k}", lambda: _knn_over(rb, rows, rq, spec.k, metric))
    sub = rb if len(rows) == len(rb) else np.ascontiguousarray(rb[rows])
    every_point = (bool(orderings.reading("lid") & set(spec.orderings)) or spec.lid.sample >= len(rows)
                   or reads_lid(spec.runbook_steps()))
    method = lid_method(spec, len(rows), every_point)
    with phase("LID" if method != "approximate" else "LID (HNSW kNN graph)"):
        lids = groundtruth.cached(
            cache_dir / "lid", f"lid-{key}-{spec.lid.k}-{'all' if every_point else spec.lid.sample}"
                               + (f"-{lid.APPROXIMATE_KEY}" if method == "approximate" else ""),
            lambda: {**_base_lid(spec, sub, method), "queries": lid.query_lid(sub, rq, spec.lid.k, spec.metric)},
        )
    hubness = None
    if spec.diagnostics is not None and len(rows) > spec.k:
        with phase("data hubness"):
            knn = groundtruth.cached(cache_dir / "lid", f"knn-{key}-{spec.k}",
                                     lambda: {"ids": groundtruth.self_knn(sub, spec.k, metric)[0]})
            hubness = k_occurrence_skewness(knn["ids"], len(rows))
    error = lids.get("error")
    return Space(dataset=ds, key=key, index_size=size, rows=rows, base=rb, queries=rq, gt_ids=gt["ids"],
                 gt_scores=gt["scores"], within_ids=within["ids"], within_scores=within["scores"],
                 lid_base=lids["base"], lid_queries=lids["queries"], reduction=reduction, reduction_info=info,
                 orig_base=base, orig_queries=queries, data_hubness=hubness, lid_method=method,
                 lid_error=None if error is None else (float(error[0]), float(error[1])))


LID_ERROR_SAMPLE = 2_000  # base points whose exact LID checks an approximate estimate


def lid_method(spec: ExperimentSpec, n: int, every_point: bool) -> LidMethod:
    """How the base LID is estimated: for every point (exactly up to lid.exact_up_to points, from an HNSW
    kNN graph above, unless the spec says which) when an ordering needs it; else on a seeded sample."""
    if not every_point:
        return "sampled"
    if spec.lid.method == "auto":
        return "exact" if n <= spec.lid.exact_up_to else "approximate"
    return spec.lid.method


def _base_lid(spec: ExperimentSpec, sub: np.ndarray, method: str) -> dict[str, np.ndarray]:
    """Pointwise LID of every indexed point when an ordering needs it (`base`; approximate also gives its
    `error` against exact LID on a seeded sample); else of a seeded sample (NaN elsewhere), which is all
    the report's distribution needs and saves a full self-join."""
    if method == "exact":
        return {"base": lid.pointwise_lid(sub, spec.lid.k, spec.metric)}
    # each sampled point finds itself at distance 0, which the estimator drops: k+1 leaves k neighbours
    if method == "approximate":
        base = lid.approximate_pointwise_lid(sub, spec.lid.k, spec.metric, seed=spec.seeds[0], threads=cores())
        sample = np.sort(np.random.default_rng(1).choice(len(sub), min(LID_ERROR_SAMPLE, len(sub)), replace=False))
        exact = lid.query_lid(sub, sub[sample], spec.lid.k + 1, spec.metric)
        return {"base": base, "error": np.asarray(lid.lid_error(base[sample], exact))}
    sample = np.sort(np.random.default_rng(0).choice(len(sub), spec.lid.sample, replace=False))
    out = np.full(len(sub), np.nan)
    out[sample] = lid.query_lid(sub, sub[sample], spec.lid.k + 1, spec.metric)
    return {"base": out}


def _check_provided(spec: ExperimentSpec, ds: Dataset, gt: dict[str, np.ndarray], base: np.ndarray,
                    queries: np.ndarray) -> None:
    """A file's own `neighbors` are used only after they agree with exact search."""
    assert ds.groundtruth is not None
    if ds.groundtruth.shape[1] < spec.k:
        raise DataError(f"{ds.name}: provided neighbors have {ds.groundtruth.shape[1]} columns, k={spec.k}")
    agree = groundtruth.check_groundtruth(ds.groundtruth[:, : spec.k], gt["ids"], gt["scores"], base=base,
                                          queries=queries, k=spec.k, metric=space_metric(spec))
    if agree < 0.99:
        raise DataError(
            f"{ds.name}: the file's `neighbors` agree with exact search for only {agree:.1%} of queries "
            f"under metric {spec.metric}; wrong metric or wrong ground truth"
        )


def _space_measures(spec: ExperimentSpec, s: Space, cache_dir: Path) -> dict[str, np.ndarray]:
    """IsoScore and each query's relative contrast in `s`, cached with the space."""
    sub = s.base if len(s.rows) == len(s.base) else s.base[s.rows]
    return groundtruth.cached(cache_dir / "space", f"space-{s.key}-{spec.k}",
                              lambda: space_measures(sub, s.queries, spec.k, spec.metric))


# what the query measures file holds (QUERY_MEASURE_FIELDS), in its name: a file of fewer fields is not read
# (1, unnamed: LID and relative contrast only)
QUERY_MEASURES_FORMAT = 2


def _query_measures(spec: ExperimentSpec, s: Space, cache_dir: Path) -> Path:
    """Each query's difficulty in `s` (QUERY_MEASURE_FIELDS, query order): one file per space, which the
    space's rows name (`query_measures`) and the report publishes beside their neighbours."""
    path = cache_dir / "space" / f"queries-{s.key}-{spec.k}-v{QUERY_MEASURES_FORMAT}.npy"
    if not path.exists():
        sub = s.base if len(s.rows) == len(s.base) else s.base[s.rows]
        out = np.empty(len(s.queries), dtype=[(name, "<f8") for name in QUERY_MEASURE_FIELDS])
        out["lid"] = s.lid_queries
        out["relative_contrast"] = _space_measures(spec, s, cache_dir)["relative_contrast"]
        for name, values in query_hardness.query_hardness(sub, s.queries, spec.k, spec.metric).items():
            out[name] = values
        atomic_save_npy(path, out)
    return path


def _preflight(spec: ExperimentSpec, s: Space, label: str, cache_dir: Path) -> preflight.Preflight:
    """The data checks of `s` (indexer.science.preflight), cached with the space (its JSON as bytes in the
    npz cache). A ground truth that disagrees with brute force stops the run: every recall would be wrong."""
    sub = s.base if len(s.rows) == len(s.base) else s.base[s.rows]
    orig = s.orig_base if len(s.rows) == len(s.orig_base) else s.orig_base[s.rows]
    reduced = s.reduction.name != "none"

    def compute() -> dict[str, np.ndarray]:
        pre = preflight.preflight(
            base=sub, queries=s.queries, k=spec.k, metric=spec.metric, gt_base=orig, gt_queries=s.orig_queries,
            gt_ids=s.gt_ids, gt_scores=s.gt_scores, ids=s.rows, within_ids=s.within_ids if reduced else None,
            within_scores=s.within_scores if reduced else None, seed=spec.seeds[0])
        for check in (pre.groundtruth, pre.groundtruth_within):
            if check is not None and check.mismatches:
                raise DataError(f"{label}: the ground truth disagrees with float64 brute force for {check.mismatches} "
                                f"of {check.sample} sampled queries (e.g. query {check.example[0]}); remove "
                                f"{cache_dir / 'groundtruth'} and run again")
        return {"json": np.frombuffer(pre.model_dump_json().encode(), dtype=np.uint8)}

    got = groundtruth.cached(cache_dir / "preflight", f"preflight-{s.key}-{spec.k}-v{preflight.VERSION}", compute)
    return preflight.Preflight.model_validate_json(got["json"].tobytes())


def _space_summary(spec: ExperimentSpec, s: Space, cache_dir: Path) -> SpaceSummary:
    """The space measures of `s` (indexer.science.analysis), their costly part cached with the space: a rerun of
    a finished spec should not redo a PCA and a kNN search."""
    measures = _space_measures(spec, s, cache_dir)
    summary = space_summary(s.lid_base, s.lid_queries, measures, dims=int(s.base.shape[1]), n=int(len(s.rows)),
                            reduction=s.reduction_info)
    if s.lid_method == "approximate" and s.lid_error is not None:
        summary = summary.model_copy(update={"lid_median_relative_error": s.lid_error[0],
                                             "lid_rank_correlation": s.lid_error[1]})
    if s.lid_method != "exact":  # set explicitly, so it is written (it is left out when exact, as before)
        summary.lid_method = s.lid_method
    return summary


def run(
    spec: ExperimentSpec,
    *,
    cache_dir: Path,
    progress: Progress | None = None,
    should_stop: Callable[[], bool] | None = None,
    executor: ExecutorConfig | None = None,
    fresh: bool = False,
) -> RunResult:
    """Run every cell of the spec's grid on `executor` (None: one at a time in this process); reuse
    whatever the cache already holds, except finished cells when `fresh` (inputs stay cached)."""
    require_all(entry.name for entry in spec.backends)  # every missing package in one error, before any work
    cache_dir = Path(cache_dir)
    cache_dir.mkdir(parents=True, exist_ok=True)
    keep_library_caches_in(cache_dir)
    sweep_cache(cache_dir)
    if removed := sweep_scratch():  # what killed runs' systems and Ray left in TMPDIR
        log.info("removed %d scratch directories of processes that are gone", removed)
    stop = should_stop or (lambda: False)
    prepared = staging_path(cache_dir / "prepared")  # this run's prepared vectors; swept if we are killed
    try:
        with open_executor(executor, cache_dir) as cells_on:
            eta = Eta(parallel=cores())
            planned = estimate(spec).work  # admission's; a user's file is planned once it is read
            if planned is not None:
                eta.plan(planned.core_seconds)
            return _run(spec, cache_dir, Phases(progress, eta), stop, cells_on, fresh, prepared)
    finally:
        shutil.rmtree(prepared, ignore_errors=True)


def _run(spec: ExperimentSpec, cache_dir: Path, phase: Phases, should_stop: Callable[[], bool],
         executor: Executor, fresh: bool, prepared: Path) -> RunResult:
    grid = cells(spec)
    models = spec.models()
    spaces = len(models) * len(spec.index_sizes) * len(spec.reductions)
    runs = len(grid) + len(churn_cells(spec))  # indexes built: the grid's, or the runbook's cells
    total = runs + spaces + 1
    done = cells_done = 0
    rows: list[ResultRow] = []
    index_records: list[IndexRecord] = []
    extras = RunExtras(provenance=provenance(executor))
    sparse_done: dict[int, tuple[SparseRow, np.ndarray]] = {}

    def check_stop() -> None:
        if should_stop():
            raise Cancelled()

    plan = RunPlan()  # nothing to credit until the dataset is read

    def tick(estimated: float, cached: bool = False) -> None:
        """One more cell finished, or found cached, of this estimated work (work.cell_work's seconds)."""
        nonlocal done, cells_done
        done += 1
        cells_done += 1
        if phase.eta is not None:
            (phase.eta.skipped if cached else phase.eta.done)(estimated * plan.cell_scale)
        phase.fraction = done / total
        phase.report(f"{cells_done} of {runs} cells done")

    budget = _Budget(spec)
    if spec.advise is not None:  # cheapest configurations first, so a budget cuts the expensive ones
        grid.sort(key=_build_cost)
    for model in models:
        check_stop()
        phase.fraction, phase.context = done / total, ""
        with phase(f"load dataset{f' and embed with {model}' if model else ''}"):
            ds = load_dataset(spec.dataset, model=model, cache_dir=cache_dir,
                              attributes=column_attributes(spec.filters),
                              query_attributes=query_column_attributes(spec.filters))
        if not plan.total_seconds:  # the dataset's real sizes: the plan the time left is counted against
            plan = run_plan(spec, len(ds.base), int(ds.base.shape[1]), len(ds.queries))
            if phase.eta is not None:
                phase.eta.plan(plan.total_seconds)
        if phase.eta is not None:
            phase.eta.done(plan.embed_seconds)
        _check_sizes(spec, ds)
        check_columns(spec, ds)
        _check_judged(spec, ds)
        dataset_key = _hash({"dataset": spec.dataset.model_dump(mode="json"), "model": model})
        # the prepared base is a file the cell processes map too; the raw vectors are not read again
        base = groundtruth.prepare_to_file(ds.base, spec.metric, prepared / f"base-{dataset_key}.npy")
        queries = groundtruth.prepare_vectors(ds.queries, spec.metric)
        ds = dataclasses.replace(ds, base=base, queries=queries)
        for size in spec.index_sizes:
            for reduction in spec.reductions:
                check_stop()
                label = "/".join(str(p) for p in (model, f"n={size}", reduction.label) if p is not None)
                phase.fraction, phase.context = done / total, space_words(model, size, reduction)
                s = _space(spec, ds, dataset_key, base, queries, size, reduction, cache_dir, phase)
                if spec.filters:
                    with phase("filters and their exact answers"):
                        s = dataclasses.replace(s, filters=space_filters(spec, s, cache_dir))
                with phase("pre-flight"):  # before any build; set by assignment, so the extras write it
                    extras.preflight = {**extras.preflight, label: _preflight(spec, s, label, cache_dir)}
                extras.notes += [f"Pre-flight, {label}: {w}" for w in extras.preflight[label].warnings]
                _write_vectors(cache_dir, s)
                with phase("space measures"):
                    extras.space[label] = _space_summary(spec, s, cache_dir)
                    measures_file = str(_query_measures(spec, s, cache_dir))
                    # the cells split their recall by it (the hardest tenth of the queries)
                    s = dataclasses.replace(s, relative_contrast=_space_measures(spec, s, cache_dir)["relative_contrast"])
                done += 1
                if phase.eta is not None:
                    phase.eta.done(plan.space_seconds)
                mine = [c for c in grid if (c.model, c.index_size, c.reduction) == (model, size, reduction)]
                space_rows: list[DenseRow] = []
                by_build = {c.build_key(spec): c for c in mine}
                for cell_rows, record in _space_cells(spec, mine, s, cache_dir, executor, phase, should_stop,
                                                      budget, fresh, tick):
                    # the entry's preset, set here rather than kept in the cell: the same build serves an
                    # entry with it and one giving the same values, and cached rows follow the current spec
                    preset = by_build[record.id].backend.preset_name()
                    space_rows.extend(r.model_copy(update={"query_measures": measures_file,
                                                           **({"preset": preset} if preset else {})})
                                      for r in cell_rows)
                    if spec.filters:
                        measure_key = by_build[record.id].measure_key(spec, s.lid_method)
                        extras.filtered = [*extras.filtered, *read_filtered(cache_dir / "cells" / record.id, measure_key)]
                    index_records.append(record.model_copy(
                        update={"path": str((cache_dir / "cells" / record.id).resolve())}))
                if set(spec.representations) & {"sparse", "hybrid"}:
                    if len(s.rows) not in sparse_done:
                        sparse_done[len(s.rows)] = _sparse_rows(spec, ds, s.rows, cache_dir)
                    sparse_row, sparse_deep = sparse_done[len(s.rows)]
                    if "hybrid" in spec.representations:
                        rows.extend(_hybrid_row(spec, ds, r, sparse_deep, cache_dir) for r in space_rows)
                if "dense" in spec.representations:
                    rows.extend(space_rows)
                if spec.runbook_steps():  # churn (indexer.engine.churn): the runbook's cells, on the executor
                    churned = churn_space(spec, s, cache_dir, model=model, size=size, reduction=reduction,
                                          phase=phase, should_stop=should_stop, fresh=fresh, threads=cores(),
                                          tick=functools.partial(tick, churn_cell_seconds(spec, s)), share=1 / total,
                                          elsewhere=_churn_on(executor, s, phase, should_stop))
                    extras.churn = [*extras.churn, *churned.rows]
                    extras.churn_filtered = [*extras.churn_filtered, *churned.filtered]
    if "sparse" in spec.representations:
        rows.extend(r for r, _ in sparse_done.values())
    if spec.runbook_steps():
        extras.churn_summary = summarize_churn(extras.churn)
    judged = any(r.judged for r in rows)
    if len(models) > 1 and judged:
        extras.model_ranking = model_ranking(rows)
    if len(spec.index_sizes) > 1 and judged:
        extras.crossings = size_crossings(rows)
    if spec.advise is not None:
        extras.advice = advise(rows, spec.advise.target_recall, skipped=budget.skipped)
        if budget.skipped:
            extras.notes.append(f"The advisor's budget of {spec.advise.budget_minutes:g} minutes ran out: "
                                f"{budget.skipped} configurations (the most expensive) were not built.")
    phase.progress(1.0, "done")
    return RunResult(spec=spec, rows=rows, extras=extras, indexes=index_records)


# Libraries that keep their own files under HOME unless told otherwise: ranx imports ir_datasets, which makes
# ~/.ir_datasets at import; matplotlib writes its font cache to ~/.cache/matplotlib and ~/.config/matplotlib;
# torch makes $TMPDIR/torchinductor_<user>.
LIBRARY_CACHES = {"IR_DATASETS_HOME": "ir_datasets", "MPLCONFIGDIR": "matplotlib",
                  "TORCHINDUCTOR_CACHE_DIR": "torchinductor"}


def keep_library_caches_in(cache_dir: Path) -> None:
    """Point the libraries' own caches into the run's cache (unless the user chose a place), so a run writes
    only into its cache and report directories. Set before the libraries are imported (they read it once)."""
    for variable, folder in LIBRARY_CACHES.items():
        os.environ.setdefault(variable, str(Path(cache_dir).resolve() / folder))


def sweep_cache(cache_dir: Path) -> int:
    """Remove what killed processes left half-written in the cache (every artifact kind's folder)."""
    removed = sweep_orphans(cache_dir)
    for folder in cache_dir.iterdir() if cache_dir.is_dir() else ():
        if folder.is_dir() and not folder.name.startswith("."):
            removed += sweep_orphans(folder)
    # a built cell gets new measures and probes in place (indexer.engine.measure): their staging too
    for inner in (*(cache_dir / "cells").glob(f"*/{MEASURES_DIR}"), *(cache_dir / "cells").glob(f"*/{PROBES_DIR}")):
        removed += sweep_orphans(inner)
    if removed:
        log.info("removed %d staging entries left by processes that are gone", removed)
    return removed
