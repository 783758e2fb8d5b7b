"""One cell of the grid: build one index in one insertion order, answer its ef sweep, probe it, measure it.

A cell reads a `Space` (indexer.engine.space) and writes its files into a directory it is given: the
index, the answers (returned ids per ef, timings: indexer.model.answers), the probes that need the live
index (cost at each recall target, diagnostics), and the rows measured from those (indexer.engine.measure).
A later run whose probes differ (new recall targets, diagnostics asked for) re-runs them on the saved
index (`reprobe_cell`) instead of building it again; one whose measures differ builds nothing at all.

A cell runs wherever an executor puts it (indexer.engine.executors): in the driver, in a pool process
reading the space's arrays memory-mapped, or in a Ray task reading them from the object store; so it
touches no shared state and its files depend on nothing but its inputs.
"""

from __future__ import annotations

import functools
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from indexer.backends import BACKENDS, VectorIndex, make_index, precision
from indexer.backends.base import Rescores, StoresVectors
from indexer.common import timing
from indexer.common.fileio import atomic_write_bytes, sha256_file
from indexer.engine.diagnostics import cost_at_recall, diagnose
from indexer.engine.filtering import answer_filters, filtered_costs
from indexer.engine.ladder import probe_ef_ladder
from indexer.engine.latency import single_query_latency
from indexer.engine.measure import ANSWERS_FILE, PROBES_DIR, judge, measure_cell
from indexer.engine.phases import Phases
from indexer.engine.space import Space, space_metric
from indexer.engine.spec import Cell, ExperimentSpec, recall_targets
from indexer.model.answers import (
    CellAnswers,
    CellProbes,
    EfDiagnostics,
    FilteredCost,
    StoredAnswer,
    SweepAnswer,
    UnrescoredAnswer,
)
from indexer.model.results import DenseRow, IndexRecord
from indexer.science import groundtruth, orderings

IR_DEPTH = 100  # recall@100 needs a ranking this deep
TIMED_PASSES = 3  # each ef's query set is searched this many times; the median pass gives qps
CellResult = tuple[list[DenseRow], IndexRecord]


def evaluate_cell(spec: ExperimentSpec, cell: Cell, s: Space, cell_dir: Path, tmp: Path, *, threads: int,
                  phase: Phases) -> CellResult:
    """Build the cell's index, probe it, answer its ef sweep and measure the answers: its files into `tmp`
    (named for `cell_dir`), answers.json last.

    `threads` is what the index may use to search (a build that keeps its order uses one). The record's
    `path` is left unset: meta.json holds the record without it."""
    ds = s.dataset
    labels = ds.labels[s.rows] if ds.labels is not None else None
    vectors = s.base[s.rows] if cell.ordering == "cluster" else None  # the only ordering that reads them
    perm = orderings.insertion_order(
        cell.ordering, len(s.rows), rng=np.random.default_rng(cell.seed), labels=labels, lid=s.lid_base,
        vectors=vectors, clusters=spec.clusters, dataset=ds.name,
    )
    index = make_index(cell.backend, s.base.shape[1], space_metric(spec), seed=cell.seed, search_threads=threads)
    label = f"{cell.ordering} {cell.backend.label()} seed={cell.seed}"
    probe_key = cell.probe_key(spec, s.lid_method)
    try:
        with phase(f"{label}: build"), timing.shared() as building:
            t0 = time.perf_counter()
            index.build(s.base, s.rows[perm])
            build_seconds = time.perf_counter() - t0 - building.paused  # not the seconds it let timers run
        with phase(f"{label}: search sweep"):
            if BACKENDS[cell.backend.name].capabilities.servable:
                index.save(tmp / "index.bin")
            np.save(tmp / "rows.npy", s.rows)
            index_bytes = index.nbytes()
            index.search(s.queries, spec.k, cell.backend.ef_values()[0])  # warm-up: page in the graph, start pools
            _write_probes(tmp, probe_key, probe_index(spec, cell, s, index, tmp / PROBES_DIR, f"{probe_key}."))
            sweep = answer_sweep(spec, cell, s, index, tmp)
    finally:
        index.close()  # a system's server or scratch directory goes with the cell, measured or failed
    record = index_record(spec, cell, s, key=cell_dir.name, size_bytes=index_bytes, files=tmp)
    (tmp / "meta.json").write_text(json.dumps(record.to_json()))
    answers = CellAnswers(build_seconds=build_seconds, index_bytes=index_bytes, search_threads=threads,
                          library_version=BACKENDS[cell.backend.name].library.version(), sweep=sweep)
    (tmp / ANSWERS_FILE).write_text(answers.model_dump_json())  # the built marker, written last
    rows = measure_cell(spec=spec, cell=cell, s=s, cell_dir=cell_dir, source=tmp, probe_key=probe_key,
                        measure_key=cell.measure_key(spec, s.lid_method))
    return rows, record


def reprobe_cell(spec: ExperimentSpec, cell: Cell, s: Space, cell_dir: Path, *, threads: int,
                 phase: Phases) -> CellResult:
    """Probe a built cell's saved index again (the spec asks for other recall targets or diagnostics) and
    measure its saved answers: nothing is built. Only for backends whose index is one file (servable)."""
    record = IndexRecord.model_validate_json((cell_dir / "meta.json").read_bytes())
    index = make_index(cell.backend, s.base.shape[1], space_metric(spec), seed=cell.seed, search_threads=threads)
    probe_key = cell.probe_key(spec, s.lid_method)
    try:
        with phase(f"{cell.ordering} {cell.backend.label()} seed={cell.seed}: probe the saved index"):
            index.load(cell_dir / "index.bin", len(s.rows))
            index.search(s.queries, spec.k, cell.backend.ef_values()[0])  # warm-up, as after a build
            _write_probes(cell_dir, probe_key, probe_index(spec, cell, s, index, cell_dir / PROBES_DIR,
                                                           f"{probe_key}."))
    finally:
        index.close()
    rows = measure_cell(spec=spec, cell=cell, s=s, cell_dir=cell_dir, probe_key=probe_key,
                        measure_key=cell.measure_key(spec, s.lid_method))
    return rows, record


def probe_index(spec: ExperimentSpec, cell: Cell, s: Space, index: VectorIndex, out: Path, prefix: str) -> CellProbes:
    """What needs the live index: the ef (and QPS) at each recall target, each query's answers up its ef ladder,
    the diagnostics if asked, and the answers under each filter workload (their ids saved in `out`, named with
    `prefix`)."""
    sweep = cell.backend.ef_values()
    backend = BACKENDS[cell.backend.name]

    def recall_of_queries(ef: int, picked: np.ndarray) -> np.ndarray:
        return judge(spec, s, index.search(s.queries[picked], spec.k, ef)[0], picked).recall

    def qps_at(ef: int) -> list[float]:
        _, seconds = timed_passes(functools.partial(index.search, s.queries, spec.k, ef))
        return [len(s.queries) / max(t, 1e-9) for t in seconds]

    stored = stored_answer(spec, cell, s, index, out, prefix)
    unrescored = unrescored_answers(spec, cell, s, index, out, prefix)
    ladder = probe_ef_ladder(spec, cell, s, index, out, prefix)
    costs = [] if sweep == [None] else cost_at_recall(
        index, s.queries, spec.k, len(s.rows), recall_targets(spec), recall_of_queries, qps_at, max_ef=backend.max_ef)
    if s.filters:
        out.mkdir(parents=True, exist_ok=True)
    modes = cell.backend.filter_modes()
    filtered = answer_filters(spec, s, index, sweep, modes, out, prefix)
    filtered_cost = [] if sweep == [None] else [
        FilteredCost(filter=name, selectivity=selectivity, cost_at_recall=c, filter_mode=mode)
        for (mode, name, selectivity), c in filtered_costs(spec, s, index, recall_targets(spec), backend.max_ef,
                                                           modes).items()]
    if spec.diagnostics is None:
        return CellProbes(cost_at_recall=costs, filtered=filtered, filtered_cost=filtered_cost, stored=stored,
                          unrescored=unrescored, ef_ladder=ladder)
    ds = s.dataset
    diag = diagnose(
        index, s.base, s.rows, sweep, space="ip" if space_metric(spec) == "ip" else "l2",
        sample=spec.diagnostics.self_miss_sample, seed=cell.seed, data_hubness=s.data_hubness,
        labels=ds.labels[s.rows] if ds.labels is not None else None, label_names=ds.label_names,
        lid=s.lid_base, lid_bins=spec.lid_bins)
    return CellProbes(cost_at_recall=costs, graph=diag.graph, filtered=filtered, filtered_cost=filtered_cost,
                      stored=stored, unrescored=unrescored, ef_ladder=ladder, diagnostics=[
        EfDiagnostics(ef=ef, self_miss=diag.self_miss[ef].fraction, self_miss_sampled=diag.self_miss[ef].sampled,
                      by_category=diag.by_category(ef), by_lid_bin=diag.by_lid_bin(ef)) for ef in sweep])


def stored_answer(spec: ExperimentSpec, cell: Cell, s: Space, index: VectorIndex, out: Path,
                  prefix: str) -> StoredAnswer | None:
    """Exact search over what a quantized index stores (its vectors decoded, and the queries as it compares
    them), the ids saved in `out` named with `prefix`; None for an index storing float32 of its space, whose
    exact search is the space's own exact kNN (Space.within_ids), already computed, and for a quantized index
    that cannot give its codes back (lancedb's SQ): its loss is then not split (measure.stored_recall)."""
    if not precision.quantized(cell.backend.build_params()) or not isinstance(index, StoresVectors):
        return None
    t0 = time.perf_counter()
    rows, vectors = index.stored_vectors()
    found, _ = groundtruth.exact_knn(vectors, index.stored_queries(s.queries), min(spec.k, len(rows)),
                                     space_metric(spec))
    ids = np.full((len(s.queries), spec.k), -1, dtype=np.int64)
    ids[:, : found.shape[1]] = np.where(found >= 0, rows[np.maximum(found, 0)], -1)
    seconds = time.perf_counter() - t0
    out.mkdir(parents=True, exist_ok=True)
    name = f"{prefix}stored.npy"
    np.save(out / name, ids)
    return StoredAnswer(neighbors=name, seconds=seconds)


def unrescored_answers(spec: ExperimentSpec, cell: Cell, s: Space, index: VectorIndex, out: Path,
                       prefix: str) -> list[UnrescoredAnswer]:
    """A rescored index's answers at each ef of its sweep with rescoring off (base.Rescores), the ids saved in
    `out` named with `prefix`: the same index's recall without re-ranking, against which the loss split measures
    what rescoring recovers. Empty for a cell that re-ranks nothing."""
    if precision.oversample_of(cell.backend.build_params()) is None:
        return []
    if not isinstance(index, Rescores):
        raise TypeError(f"backend {cell.backend.name} rescores but cannot search without it (base.Rescores)")
    out.mkdir(parents=True, exist_ok=True)
    answers = []
    for ef in cell.backend.ef_values():
        ids, _ = index.search_unrescored(s.queries, spec.k, ef)
        name = f"{prefix}unrescored-{'exact' if ef is None else f'ef{ef}'}.npy"
        np.save(out / name, ids)
        answers.append(UnrescoredAnswer(ef=ef, neighbors=name))
    return answers


def answer_sweep(spec: ExperimentSpec, cell: Cell, s: Space, index: VectorIndex, out: Path) -> list[SweepAnswer]:
    """Search the query set at each ef of the sweep: timed passes and one-query latency (all of them in
    one turn of the machine's timing lock), the ids saved per ef, and a depth-100 ranking where the
    dataset has relevance judgements."""
    sweep = cell.backend.ef_values()
    with timing.exclusive():  # the whole sweep's timed phases in one turn (indexer.common.timing)
        timed = {ef: (timed_passes(functools.partial(index.search, s.queries, spec.k, ef)),
                      single_query_latency(index, s.queries, spec.k, ef)) for ef in sweep}
    answers = []
    for ef in sweep:
        ((ids, _), seconds), latency = timed[ef]
        tag = f"ef{ef}" if ef is not None else "exact"
        np.save(out / f"neighbors-{tag}.npy", ids)
        ranking = None
        if s.dataset.qrels:
            deep, _ = index.search(s.queries, min(IR_DEPTH, len(s.rows)), ef)
            ranking = f"ranking-{tag}.npy"
            np.save(out / ranking, deep)
        answers.append(SweepAnswer(ef=ef, pass_seconds=seconds, latency=latency, neighbors=f"neighbors-{tag}.npy",
                                   ranking=ranking))
    return answers


def index_record(spec: ExperimentSpec, cell: Cell, s: Space, *, key: str, size_bytes: int, files: Path) -> IndexRecord:
    """The built index's record (meta.json), with the checksums of its index and rows files in `files`."""
    return IndexRecord(
        id=key, dataset=s.dataset.name, model=cell.model, metric=spec.metric, space=space_metric(spec),
        ordering=cell.ordering, backend=cell.backend.name, params=cell.backend.build_params(), seed=cell.seed,
        reduction=cell.reduction, reduction_label=cell.reduction.label, dims=int(s.base.shape[1]),
        input_dim=int(s.orig_base.shape[1]), n=int(len(s.rows)), index_size=cell.index_size, size_bytes=size_bytes,
        vectors=s.key,
        sha256={p.name: sha256_file(p) for p in sorted(files.iterdir()) if p.name.startswith(("index.bin", "rows"))},
    )


def _write_probes(cell_dir: Path, key: str, probes: CellProbes) -> None:
    """probes/<key>.json, whole or not at all (a reprobe writes it into a finished cell)."""
    atomic_write_bytes(cell_dir / PROBES_DIR / f"{key}.json", probes.model_dump_json().encode())


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
