"""One cell of the grid: build one index in one insertion order, serve its ef sweep, measure it.

A cell reads a `Space` (the vectors, the exact neighbours and LID it is measured against) and writes its
files into a directory it is given. It runs wherever an executor puts it (indexer.engine.executors): in
the driver, in a pool process reading the space's arrays memory-mapped, or in a Ray task reading them
from the object store; so it touches no shared state and its rows depend on nothing but its inputs.
"""

from __future__ import annotations

import functools
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np

from indexer.backends import BACKENDS, VectorIndex, make_index
from indexer.common import timing
from indexer.common.fileio import sha256_file
from indexer.datasets import Dataset
from indexer.engine.diagnostics import CellDiagnostics, cost_at_recall, diagnose
from indexer.engine.latency import single_query_latency
from indexer.engine.phases import Phases
from indexer.engine.spec import Cell, ExperimentSpec, recall_targets
from indexer.model.options import ReductionSpec
from indexer.model.results import (
    BinRecall,
    DenseRow,
    GroupRecall,
    IndexRecord,
    IRMeasures,
    rows_to_json,
)
from indexer.model.seeds import library_seed
from indexer.science import groundtruth, metrics, orderings
from indexer.science.judging import Judged, judge_answers

IR_DEPTH = 100  # recall@100 needs a ranking this deep
TIMED_PASSES = 3  # each ef's query set is searched this many times; the median pass gives qps
LidMethod = Literal["exact", "approximate", "sampled"]


@dataclass(kw_only=True)
class Space:
    """One (model, index size, reduction): the vectors a cell indexes and what it is measured against.

    `rows` are the dataset rows in the index (all of them unless an index size subsamples); every id
    array here is in the dataset's own numbering.
    """

    dataset: Dataset
    key: str
    index_size: int | str
    rows: np.ndarray
    base: np.ndarray  # all rows, prepared and reduced (cells insert only `rows`)
    queries: np.ndarray
    gt_ids: np.ndarray  # exact kNN over `rows` in the ORIGINAL space
    gt_scores: np.ndarray
    within_ids: np.ndarray  # exact kNN over `rows` in this (reduced) space
    within_scores: np.ndarray
    lid_base: np.ndarray  # aligned with `rows`
    lid_queries: np.ndarray
    reduction: ReductionSpec
    reduction_info: dict[str, Any]
    orig_base: np.ndarray
    orig_queries: np.ndarray
    data_hubness: float | None = None  # k-occurrence skewness of the indexed points (diagnostics only)
    lid_method: LidMethod = "exact"  # exact, approximate (HNSW kNN graph) or sampled
    lid_error: tuple[float, float] | None = None  # approximate: (median relative error, Spearman) on a sample



def by_category(per_query: np.ndarray, ds: Dataset) -> dict[str, GroupRecall]:
    if ds.query_labels is None:
        return {}
    groups = metrics.recall_by_group(per_query, ds.query_labels, ds.label_names)
    return {name: GroupRecall(recall=g["mean"], n=g["n"]) for name, g in groups.items()}


def ir_metrics(ds: Dataset, top: np.ndarray, deep: np.ndarray) -> IRMeasures:
    """nDCG@10 and MRR@10 of the ranking a user gets (the top-k search), recall@100 of a depth-100 one."""
    from indexer.science import ir_metrics

    doc_ids = ds.doc_ids or [str(i) for i in range(len(ds.base))]
    query_ids = ds.query_ids or [str(i) for i in range(len(ds.queries))]
    assert ds.qrels is not None
    out = ir_metrics.evaluate_run(ds.qrels, ir_metrics.run_from_ids(query_ids, doc_ids, top), ("ndcg@10", "mrr@10"))
    out.update(ir_metrics.evaluate_run(ds.qrels, ir_metrics.run_from_ids(query_ids, doc_ids, deep), ("recall@100",)))
    return IRMeasures.model_validate(out)



def _build_and_measure(spec: ExperimentSpec, cell: Cell, s: Space, index: VectorIndex, order: np.ndarray,
                       cell_dir: Path, tmp: Path, phase: Phases, threads: int) -> tuple[list[DenseRow], IndexRecord]:
    """Build `index` in `order`, serve the cell's ef sweep, and write the cell's files into `tmp` (rows
    and meta last), naming them by their final place `cell_dir`."""
    key, ds, space = cell_dir.name, s.dataset, space_metric(spec)
    backend = BACKENDS[cell.backend.name]
    label = f"{cell.ordering} {cell.backend.label()} seed={cell.seed}"
    with phase(f"{label}: build"), timing.shared() as building:
        t0 = time.perf_counter()
        index.build(s.base, order)
        build_seconds = time.perf_counter() - t0 - building.paused  # not the seconds it let timers run

    with phase(f"{label}: search sweep"):
        if backend.capabilities.servable:
            index.save(tmp / "index.bin")
        np.save(tmp / "rows.npy", s.rows)
        index_bytes = index.nbytes()
        higher = space == "ip"
        rows: list[DenseRow] = []
        base_row: dict[str, Any] = dict(
            dataset=ds.name,
            model=cell.model,
            metric=spec.metric,
            index_size=len(s.rows),
            reduction=cell.reduction.label,
            dims=int(s.base.shape[1]),
            ordering=cell.ordering,
            backend=cell.backend.name,
            build_params=cell.backend.build_params(),
            k=spec.k,
            seed=cell.seed,
            library_seed=library_seed(cell.seed, cell.backend.name) if backend.capabilities.seeded else None,
            permutation_seed=cell.seed,
            search_threads=threads,
            library_version=backend.library.version(),
            order_controlled=backend.capabilities.order_controlled,
            build_seconds=build_seconds,
            index_bytes=index_bytes,
            bytes_per_vector=int(s.base.shape[1]) * 4,
            cell=key,
        )
        sweep = cell.backend.ef_values()
        index.search(s.queries, spec.k, sweep[0])  # warm-up: page in the graph, start thread pools

        everyone = np.arange(len(s.queries))

        def judged(ids: np.ndarray, picked: np.ndarray = everyone) -> Judged:
            """The answers of the queries `picked` against exact kNN in the original space, by their ids:
            their scores are recomputed from the original vectors, never taken from the backend."""
            return judge_answers(ids, base=s.orig_base, queries=s.orig_queries[picked], truth_ids=s.gt_ids[picked],
                                 truth_scores=s.gt_scores[picked], k=spec.k, metric=spec.metric)

        def recall_of_queries(ef: int, picked: np.ndarray) -> np.ndarray:
            return judged(index.search(s.queries[picked], spec.k, ef)[0], picked).recall

        def qps_at(ef: int) -> list[float]:
            _, seconds = timed_passes(functools.partial(index.search, s.queries, spec.k, ef))
            return [len(s.queries) / max(t, 1e-9) for t in seconds]

        costs = [] if sweep == [None] else cost_at_recall(
            index, s.queries, spec.k, len(s.rows), recall_targets(spec), recall_of_queries, qps_at,
            max_ef=backend.max_ef)
        diag = None if spec.diagnostics is None else diagnose(
            index, s.base, s.rows, sweep, space="ip" if higher else "l2", sample=spec.diagnostics.self_miss_sample,
            seed=cell.seed,
            data_hubness=s.data_hubness, labels=ds.labels[s.rows] if ds.labels is not None else None,
            label_names=ds.label_names, lid=s.lid_base, lid_bins=spec.lid_bins)
        with timing.exclusive():  # the whole sweep's timed phases in one turn (indexer.common.timing)
            timed = {ef: (timed_passes(functools.partial(index.search, s.queries, spec.k, ef)),
                          single_query_latency(index, s.queries, spec.k, ef)) for ef in sweep}
        for ef in sweep:
            ((ids, _), seconds), latency = timed[ef]
            answers = judged(ids)
            per_query = answers.recall
            within = judge_answers(ids, base=s.base, queries=s.queries, truth_ids=s.within_ids,
                                   truth_scores=s.within_scores, k=spec.k, metric=spec.metric).recall
            summary = metrics.summarize(per_query)
            tag = f"ef{ef}" if ef is not None else "exact"
            np.save(tmp / f"neighbors-{tag}.npy", ids)
            np.save(tmp / f"recall-{tag}.npy", per_query.astype(np.float32))
            judged_ir: dict[str, Any] = {}
            if ds.qrels:
                deep, _ = index.search(s.queries, min(IR_DEPTH, len(s.rows)), ef)
                np.save(tmp / f"ranking-{tag}.npy", deep)
                judged_ir = {**dict(ir_metrics(ds, ids, deep)), "ranking": str(cell_dir / f"ranking-{tag}.npy")}
            pass_qps = [len(s.queries) / max(t, 1e-9) for t in seconds]
            rows.append(DenseRow(
                **base_row,
                ef=ef,
                recall=summary["mean"],
                recall_std=summary["std"],
                recall_ci95=list(summary["ci95"]),
                recall_within=float(np.nanmean(within)),
                recall_ids=float(np.nanmean(answers.recall_ids)),
                recall_annb=float(np.mean(answers.recall_annb)),
                short_results=int(answers.short.sum()),
                duplicate_results=int(answers.duplicated.sum()),
                qps=float(np.median(pass_qps)),
                qps_passes=len(pass_qps),
                qps_all=[round(q, 1) for q in pass_qps],
                latency=latency,
                recall_by_category=by_category(per_query, ds),
                recall_by_lid_bin=[BinRecall.model_validate(b)
                                   for b in metrics.recall_by_bins(per_query, s.lid_queries, spec.lid_bins)],
                cost_at_recall=costs,
                neighbors=str(cell_dir / f"neighbors-{tag}.npy"),
                recall_file=str(cell_dir / f"recall-{tag}.npy"),
                **judged_ir,
                **_diagnosed(diag, ef),
            ))
        record = IndexRecord(
            id=key,
            dataset=ds.name,
            model=cell.model,
            metric=spec.metric,
            space=space,
            ordering=cell.ordering,
            backend=cell.backend.name,
            params=cell.backend.build_params(),
            seed=cell.seed,
            reduction=cell.reduction,
            reduction_label=cell.reduction.label,
            dims=int(s.base.shape[1]),
            input_dim=int(s.orig_base.shape[1]),
            n=int(len(s.rows)),
            index_size=cell.index_size,
            size_bytes=index_bytes,
            vectors=s.key,
            sha256={p.name: sha256_file(p) for p in sorted(tmp.iterdir()) if p.name.startswith(("index.bin", "rows"))},
        )
        (tmp / "meta.json").write_text(json.dumps(record.to_json()))
        (tmp / "rows.json").write_text(json.dumps(rows_to_json(rows)))  # the finished marker, written last
    return rows, record



def _diagnosed(diag: CellDiagnostics | None, ef: int | None) -> dict[str, Any]:
    """A row's diagnostics fields at its ef (none when the spec asked for none)."""
    if diag is None:
        return {}
    return {"graph": diag.graph, "self_miss": diag.self_miss[ef].fraction,
            "self_miss_sampled": diag.self_miss[ef].sampled, "diagnostics_by_category": diag.by_category(ef),
            "diagnostics_by_lid_bin": diag.by_lid_bin(ef)}


def timed_passes(search: Callable[[], Any], passes: int = TIMED_PASSES) -> tuple[Any, list[float]]:
    """The search's result and the wall time of each of `passes` runs (searches are deterministic).

    The first search of a cell pays for paging in the graph and starting thread pools: callers warm
    up before timing. The passes hold the machine's timing lock, so no other cell of any run on this
    machine times or builds meanwhile (indexer.common.timing); rows give the median and every pass.
    """
    times = []
    result = None
    with timing.exclusive():
        for _ in range(passes):
            t0 = time.perf_counter()
            got = search()
            times.append(time.perf_counter() - t0)
            result = got if result is None else result
    return result, times


# The arrays of a Space, by field name: what an executor shares once per space (files to memory-map, or
# Ray's object store); everything else in a Space is small and travels with each task.
ARRAY_FIELDS = ("rows", "base", "queries", "gt_ids", "gt_scores", "within_ids", "within_scores", "lid_base",
                "lid_queries", "orig_base", "orig_queries")
DATASET_ARRAYS = ("labels", "query_labels")


def space_arrays(s: Space) -> dict[str, np.ndarray]:
    """The large part of `s`: its arrays and the dataset's label arrays. When nothing is reduced the
    originals are the same arrays as the indexed ones, and are shared once."""
    out = {name: getattr(s, name) for name in ARRAY_FIELDS}
    if s.orig_base is s.base:
        del out["orig_base"], out["orig_queries"]
    out.update({f"dataset_{name}": getattr(s.dataset, name) for name in DATASET_ARRAYS
                if getattr(s.dataset, name) is not None})
    return out


def space_facts(s: Space) -> Space:
    """`s` without its arrays (and without the dataset's texts): what travels with every task."""
    empty: Any = np.zeros((0, 0), dtype=np.float32)
    ds = replace(s.dataset, base=empty, queries=empty, labels=None, query_labels=None, texts=None,
                 query_texts=None, titles=None, groundtruth=None, extra={})
    return replace(s, dataset=ds, **{name: empty for name in ARRAY_FIELDS})


def space_from(facts: Space, arrays: dict[str, np.ndarray]) -> Space:
    """The space `space_facts` and `space_arrays` were taken from, its arrays as given (memory maps,
    or read-only views into Ray's object store)."""
    labels: dict[str, Any] = {name: arrays.get(f"dataset_{name}") for name in DATASET_ARRAYS}
    ds = replace(facts.dataset, base=arrays["base"], queries=arrays["queries"], **labels)
    own: dict[str, Any] = {f.name: arrays[f.name] for f in fields(Space) if f.name in ARRAY_FIELDS and f.name in arrays}
    own.setdefault("orig_base", arrays["base"])
    own.setdefault("orig_queries", arrays["queries"])
    return replace(facts, dataset=ds, **own)


def space_metric(spec: ExperimentSpec) -> str:
    return groundtruth.index_metric(spec.metric)


def read_cached(cell_dir: Path) -> tuple[list[DenseRow], IndexRecord] | None:
    """A finished cell's rows and record, None when the cell is not (completely) there."""
    if not (cell_dir / "rows.json").exists():
        return None
    rows = [DenseRow.model_validate(r) for r in json.loads((cell_dir / "rows.json").read_text())]
    return rows, IndexRecord.model_validate_json((cell_dir / "meta.json").read_text())


def evaluate_cell(spec: ExperimentSpec, cell: Cell, s: Space, cell_dir: Path, tmp: Path, *, threads: int,
                  phase: Phases) -> tuple[list[DenseRow], IndexRecord]:
    """Build the cell's index, serve its ef sweep, write its files into `tmp` (named for `cell_dir`).

    `threads` is what the index may use to search (a build that keeps its order uses one). The record's
    `path` is left unset: meta.json holds the record without it."""
    ds = s.dataset
    labels = ds.labels[s.rows] if ds.labels is not None else None
    vectors = s.base[s.rows] if cell.ordering == "cluster" else None  # the only ordering that reads them
    perm = orderings.insertion_order(
        cell.ordering, len(s.rows), rng=np.random.default_rng(cell.seed), labels=labels, lid=s.lid_base,
        vectors=vectors, clusters=spec.clusters, dataset=ds.name,
    )
    order = s.rows[perm]
    index = make_index(cell.backend, s.base.shape[1], space_metric(spec), seed=cell.seed, search_threads=threads)
    try:
        return _build_and_measure(spec, cell, s, index, order, cell_dir, tmp, phase, threads)
    finally:
        index.close()  # a system's server or scratch directory goes with the cell, measured or failed

