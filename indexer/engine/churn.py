"""Churn: a runbook run on one index per cell, measured at every checkpoint while the index lives.

A churn cell is one (model, index size, reduction, backend entry, seed); the insertion order comes from the
runbook (indexer.engine.runbook plans it), not from the spec's `orderings`. The cell applies the plan's
operations to one index through its backend's own inserts and deletes (base.Mutable; what a delete does is
the backend's `Capabilities.deletes`), and at each checkpoint searches the queries at every ef of the entry
and measures, against exact kNN over the points in the index at that moment (`filtered_knn` with the live
set as the mask: blocked, and cached by the live set):

- recall@k from the returned ids alone (indexer.science.judging), and its 95% interval;
- ids returned that are not in the index (deleted, or never inserted): must be 0, counted and dropped before
  judging, never hidden; answers with fewer than k distinct live ids; QPS (median of timed passes);
- for a backend whose graph is readable (hnswlib), its layer-0 diagnostics over the live points only: those
  no path from the entry point reaches, those nothing links to (links from deleted points count: a tombstone
  keeps routing), and their in-degree distribution;
- the index's size as its library reports it (tombstones included where they stay);
- at a `rebuild` step, or at every checkpoint with `runbook_baseline: true`, a fresh index of the same entry
  over the same points (random order, the cell's seed) beside it: the baseline, and its build time;
- self-miss at every ef (indexer.science.graph.self_miss, as the diagnostics measure a built index): a seeded
  sample of the live points (every one up to CHURN_SELF_MISS_SAMPLE, else that many) searched for their own
  vectors, the share not found at rank 1; a deleted id at rank 1 is a miss;
- the process's resident memory (VmRSS of /proc/self/status, where there is one) after the checkpoint's
  searches: the index and everything else the driver holds, so a trend across checkpoints, not an index size;
- per recall target of the spec, the smallest ef at which the live index reaches it (and the fresh one, where a
  baseline ran): indexer.science.equal_recall's doubling then bisection over all the queries, up to the live
  points or the backend's largest ef. Churn's price in the unit a user tunes: how much more ef the same recall
  now takes.

A backend that cannot change a built index (`deletes: none`, faiss HNSW) runs only as that baseline: at each
checkpoint a fresh index, whose figures are its row's recall and its baseline alike.

Ids: a backend that takes a deleted id again (`reuses_ids`) gets each point under its dataset row; one that
does not (hnswlib with replace_deleted) gets a re-inserted point under a new id past the dataset's rows, mapped
back to its row when judged. Rows say which (`reinserted_ids`).

Where the spec has filters, each checkpoint also asks them of the live index (indexer.engine.churn_filters:
the filters narrowed to the live points, exact answers over those); a backend without a live index (faiss
HNSW) has no filtered rows.

Churn cells run in the driver's process, one after another, and are cached whole (churn/<key>/rows.json and
filtered.json).
"""

from __future__ import annotations

import functools
import hashlib
import itertools
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from indexer.backends import BACKENDS, VectorIndex, make_index
from indexer.backends.base import Mutable
from indexer.backends.precision import quantized
from indexer.common import timing
from indexer.common.errors import UserError
from indexer.common.fileio import staged_dir
from indexer.common.hashing import content_key
from indexer.engine.cell import timed_passes
from indexer.engine.churn_filters import LiveFilters, checkpoint_filtered, live_filters
from indexer.engine.diagnostics import ExposesGraph
from indexer.engine.executors.config import Cancelled
from indexer.engine.phases import Phases
from indexer.engine.runbook import PlannedOp, plan_runbook
from indexer.engine.space import Space, space_metric
from indexer.engine.spec import BackendSpec, ExperimentSpec, recall_targets
from indexer.model import seeds
from indexer.model.options import ReductionSpec
from indexer.model.results import ChurnFilteredRow, ChurnRow, ChurnSummary, EfAtTarget, InDegree, rows_to_json
from indexer.model.runbook import CHURN_SELF_MISS_SAMPLE, reads_lid
from indexer.model.strict import Strict
from indexer.science import filters, graph, groundtruth, metrics
from indexer.science.equal_recall import ef_for_targets
from indexer.science.judging import judge_answers

CHURN_FORMAT = 4  # what a churn cell saves: a new format runs every churn cell again (2: self-miss, RSS; 3: ef at
# the recall targets, the fresh index's QPS, in-degrees and index size, a 1,000-point self-miss sample; 4: the
# loss split by cause)
CHURN_DIR = "churn"  # churn/<cell key>/rows.json
Truth = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]  # live positions (bool) -> exact ids, scores


class ChurnCell(Strict):
    """One runbook run: an index of one backend entry, in one space, with one seed."""

    model: str | None
    index_size: int | Literal["all"] = "all"
    reduction: ReductionSpec
    backend: BackendSpec
    seed: int

    def key(self, spec: ExperimentSpec) -> str:
        """What decides the cell's rows: the data, the runbook and its baseline, the backend with its
        parameters and library version, the seed; not the spec's name nor its other axes."""
        return content_key({
            "churn": CHURN_FORMAT,
            "dataset": spec.dataset.model_dump(mode="json"),
            "metric": spec.metric,
            "k": spec.k,
            "runbook": [step.model_dump(mode="json") for step in spec.runbook_steps()],
            "baseline": spec.runbook_baseline,
            "targets": recall_targets(spec),
            "filters": [w.model_dump(mode="json") for w in spec.filters],
            "lid": spec.lid.model_dump(mode="json") if reads_lid(spec.runbook_steps()) else None,
            "library": BACKENDS[self.backend.name].library.version(),
            "seeding": seeds.DERIVATION,
            "cell": self.model_dump(mode="json"),
        })

    def label(self) -> str:
        return f"{self.backend.label()} seed={self.seed}"


def churn_cells(spec: ExperimentSpec) -> list[ChurnCell]:
    """The runbook's cells: model x index size x reduction x backend entry x seed (none without a runbook)."""
    if not spec.runbook_steps():
        return []
    return [ChurnCell(model=m, index_size=n, reduction=r, backend=b, seed=s) for m, n, r, b, s in
            itertools.product(spec.models(), spec.index_sizes, spec.reductions, spec.backends, spec.seeds)]


def live_truth(spec: ExperimentSpec, s: Space, cache_dir: Path) -> Truth:
    """Exact kNN over the live points of `s` (a bool mask over its indexed rows), in the original space and
    the dataset's numbering: indexer.science.filters.filtered_knn with the live set as the one filter (its
    queries in blocks, faiss candidates re-ranked in float64), cached by the live set."""
    base = s.orig_base if len(s.rows) == len(s.orig_base) else s.orig_base[s.rows]

    def truth(live: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        digest = hashlib.sha256(np.packbits(live).tobytes()).hexdigest()
        key = content_key({"space": s.key, "k": spec.k, "metric": spec.metric, "live": digest, "n": len(live)})

        def compute() -> dict[str, np.ndarray]:
            only = filters.FilterSet(name="live", kind="column", selectivity=None, masks=live[None, :],
                                     of_query=np.zeros(len(s.orig_queries), dtype=np.int64))
            ids, scores = filters.filtered_knn(base, s.orig_queries, only, spec.k, spec.metric)
            return {"ids": np.where(ids >= 0, s.rows[np.maximum(ids, 0)], -1), "scores": scores}

        got = groundtruth.cached(Path(cache_dir) / "groundtruth", f"live-{key}", compute)
        return got["ids"], got["scores"]

    return truth


@dataclass(eq=False)
class IdMap:
    """The ids an index holds and the dataset rows behind them, as a runbook changes them.

    `row[id]` is the dataset row an id stands for (-1: never used); `live[id]` whether it is in the index now;
    `of_position[p]` the id position p was last inserted under (-1: never); `live_positions` per position.
    """

    row: np.ndarray
    live: np.ndarray
    of_position: np.ndarray
    live_positions: np.ndarray
    next_new: int  # the next id past the dataset's rows, for a re-insert that cannot reuse its id

    @classmethod
    def empty(cls, dataset_rows: int, positions: int, new_ids: int) -> IdMap:
        size = dataset_rows + new_ids
        return cls(row=np.full(size, -1, dtype=np.int64), live=np.zeros(size, dtype=bool),
                   of_position=np.full(positions, -1, dtype=np.int64),
                   live_positions=np.zeros(positions, dtype=bool), next_new=dataset_rows)

    def assign(self, positions: np.ndarray, rows: np.ndarray, *, reuse: bool,
               under: np.ndarray | None = None) -> np.ndarray:
        """Ids for inserting `positions` (whose dataset rows are `rows`): `under` (a replace's deleted ids) where
        ids can be reused, else its row, unless it was in the index before and ids cannot be reused (then a new
        one)."""
        if reuse and under is not None:
            ids = np.asarray(under, dtype=np.int64).copy()
        else:
            ids = rows.astype(np.int64).copy()
        again = self.of_position[positions] >= 0
        if not reuse and again.any():
            count = int(again.sum())
            ids[again] = np.arange(self.next_new, self.next_new + count, dtype=np.int64)
            self.next_new += count
        self.row[ids] = rows
        self.live[ids] = True
        self.of_position[positions] = ids
        self.live_positions[positions] = True
        return ids

    def remove(self, positions: np.ndarray) -> np.ndarray:
        """The ids of `positions` (each in the index), now out of it."""
        ids: np.ndarray = self.of_position[positions]
        self.live[ids] = False
        self.live_positions[positions] = False
        return ids


@dataclass(frozen=True, kw_only=True)
class Judged:
    """One search's answers against the live set."""

    recall: np.ndarray  # per query
    deleted_returned: int
    short: int


def judge_live(spec: ExperimentSpec, s: Space, found: np.ndarray, *, live: np.ndarray, row: np.ndarray,
               truth_ids: np.ndarray, truth_scores: np.ndarray) -> Judged:
    """Judge ids an index returned (`found`, queries x k) by the ids alone: an id not in the index (`live[id]`
    false, or past it) is counted and dropped; the rest are mapped to their dataset rows (`row[id]`) and judged
    against exact kNN over the live set (indexer.science.judging)."""
    got = np.asarray(found, dtype=np.int64)[:, : spec.k]
    known = (got >= 0) & (got < len(live))
    alive = known & live[np.where(known, got, 0)]
    rows = np.where(alive, row[np.where(alive, got, 0)], -1)
    judged = judge_answers(rows, base=s.orig_base, queries=s.orig_queries, truth_ids=truth_ids,
                           truth_scores=truth_scores, k=spec.k, metric=spec.metric)
    return Judged(recall=judged.recall, deleted_returned=int(((got >= 0) & ~alive).sum()),
                  short=int(judged.short.sum()))


def _search(index: VectorIndex, queries: np.ndarray, k: int, ef: int | None) -> tuple[np.ndarray, float]:
    """The ids at `ef` (after a warm-up) and the QPS of the median timed pass."""
    index.search(queries, k, ef)
    (ids, _), seconds = timed_passes(functools.partial(index.search, queries, k, ef))
    return ids, len(queries) / max(float(np.median(seconds)), 1e-9)


@dataclass(frozen=True, kw_only=True)
class _Baseline:
    recall: dict[int | None, float | None]
    build_seconds: float
    judged: dict[int | None, Judged]
    qps: dict[int | None, float]
    ef_at_target: dict[float, tuple[int | None, float | None]]


def _fresh(spec: ExperimentSpec, cell: ChurnCell, s: Space, live: np.ndarray, truth: tuple[np.ndarray, np.ndarray],
           threads: int) -> _Baseline:
    """A fresh index of the cell's entry over the live positions (random order, the cell's seed), searched."""
    positions = np.flatnonzero(live)
    order = s.rows[np.random.default_rng(cell.seed).permutation(positions)]
    index = make_index(cell.backend, s.base.shape[1], space_metric(spec), seed=cell.seed, search_threads=threads)
    alive = np.zeros(len(s.base), dtype=bool)
    alive[s.rows[positions]] = True
    try:
        with timing.shared() as building:
            t0 = time.perf_counter()
            index.build(s.base, order)
            seconds = time.perf_counter() - t0 - building.paused
        judged, qps = {}, {}
        for ef in cell.backend.ef_values():
            ids, qps[ef] = _search(index, s.queries, spec.k, ef)
            judged[ef] = judge_live(spec, s, ids, live=alive, row=np.arange(len(s.base)), truth_ids=truth[0],
                                    truth_scores=truth[1])
        reach = ef_at_targets(spec, cell, s, index, len(positions), lambda found: judge_live(
            spec, s, found, live=alive, row=np.arange(len(s.base)), truth_ids=truth[0], truth_scores=truth[1]))
    finally:
        index.close()
    return _Baseline(recall={ef: metrics.summarize(j.recall)["mean"] for ef, j in judged.items()},
                     build_seconds=seconds, judged=judged, qps=qps, ef_at_target=reach)


def ef_at_targets(spec: ExperimentSpec, cell: ChurnCell, s: Space, index: VectorIndex, live: int,
                  judge: Callable[[np.ndarray], Judged]) -> dict[float, tuple[int | None, float | None]]:
    """Per recall target of the spec, the smallest ef at which `index` reaches it over all the queries (None: not
    by min(live points, the backend's largest ef)) and the QPS there (median of timed passes); nothing for a
    backend without ef or a spec without targets."""
    targets = recall_targets(spec)
    if not targets or cell.backend.ef_values() == [None]:
        return {}
    hi = max(spec.k, min(live, BACKENDS[cell.backend.name].max_ef))

    def recall_at(ef: int) -> float:
        found, _ = index.search(s.queries, spec.k, ef)
        return float(np.nanmean(judge(found).recall))

    found = ef_for_targets(recall_at, targets, lo=spec.k, hi=hi)
    qps = {ef: _search(index, s.queries, spec.k, ef)[1] for ef in {got.ef for got in found.values()} if ef is not None}
    return {t: (got.ef, None if got.ef is None else qps[got.ef]) for t, got in found.items()}


@dataclass(kw_only=True)
class ChurnOut:
    """What churn cells measured: a row per checkpoint and ef, and where the spec has filters, a row per
    checkpoint, filter, mode and ef (indexer.engine.churn_filters)."""

    rows: list[ChurnRow]
    filtered: list[ChurnFilteredRow]


def run_churn_cell(spec: ExperimentSpec, cell: ChurnCell, s: Space, *, truth: Truth, threads: int = 1,
                   key: str = "", checkpoint_done: Callable[[int, int, PlannedOp], None] | None = None,
                   narrow: LiveFilters | None = None) -> ChurnOut:
    """Apply the runbook to one index of the cell's entry and measure every checkpoint (the module's doc), with
    the spec's filters narrowed to the live points by `narrow` where there are filters and a live index;
    `checkpoint_done(i, of, op)` after each checkpoint, so a long cell shows where it is."""
    ds = s.dataset
    labels = ds.labels[s.rows] if ds.labels is not None else None
    plan = plan_runbook(spec.runbook_steps(), n=len(s.rows), k=spec.k, seed=cell.seed,
                        baseline=spec.runbook_baseline, labels=labels, label_names=ds.label_names, lid=s.lid_base,
                        naming=spec.step_naming())
    backend = BACKENDS[cell.backend.name]
    mode = backend.capabilities.deletes
    if mode is None:
        raise UserError(f"backend {cell.backend.name} cannot run a runbook")  # the spec refuses it first
    index: VectorIndex | None = None
    mutable: Mutable | None = None  # the same index, as what takes inserts and deletes
    if mode != "none":
        index = make_index(cell.backend, s.base.shape[1], space_metric(spec), seed=cell.seed, search_threads=threads)
        if not isinstance(index, Mutable):
            index.close()
            raise UserError(f"backend {cell.backend.name} declares deletes but cannot insert or delete")
        mutable = index
    reuse = mutable.reuses_ids if mutable is not None else True
    new_ids = 0 if reuse else sum(len(op.inserted()) for op in plan)
    ids = IdMap.empty(len(s.base), len(s.rows), new_ids)
    rows: list[ChurnRow] = []
    filtered: list[ChurnFilteredRow] = []
    counts = {"inserted": 0, "deleted": 0}
    since = 0.0
    checkpoints = sum(op.checkpoint for op in plan)
    try:
        for op in plan:
            with timing.shared() as updating:  # an update is a build: timed searches elsewhere go first
                t0 = time.perf_counter()
                gone = None
                if op.operation in ("delete", "replace"):
                    gone = ids.remove(op.positions)
                    if mutable is not None:
                        mutable.delete(gone)
                    counts["deleted"] += len(op.positions)
                incoming = op.inserted()
                if len(incoming):
                    rows_in = s.rows[incoming]
                    given = ids.assign(incoming, rows_in, reuse=reuse, under=gone)
                    if mutable is not None:
                        mutable.insert(s.base[rows_in], given)
                    counts["inserted"] += len(incoming)
                since += time.perf_counter() - t0 - updating.paused
            if op.checkpoint:
                rows += _checkpoint(spec, cell, s, op, index, ids, truth, threads=threads, key=key,
                                    mode=mutable.delete_mode if mutable is not None else "none", reuse=reuse,
                                    counts=counts, update_seconds=since)
                if narrow is not None and index is not None and s.filters:
                    filtered += _checkpoint_filtered(spec, cell, s, op, index, ids, narrow, key=key)
                since = 0.0
                if checkpoint_done is not None:
                    checkpoint_done(len({(r.step, r.batch) for r in rows}), checkpoints, op)
    finally:
        if index is not None:
            index.close()
    return ChurnOut(rows=rows, filtered=filtered)


def _checkpoint_filtered(spec: ExperimentSpec, cell: ChurnCell, s: Space, op: PlannedOp, index: VectorIndex,
                         ids: IdMap, narrow: LiveFilters, *, key: str) -> list[ChurnFilteredRow]:
    """The spec's filters on the live index at one checkpoint (indexer.engine.churn_filters)."""
    live_rows = np.zeros(len(s.base), dtype=bool)
    live_rows[ids.row[ids.live]] = True
    about = {"backend": cell.backend.name, "build_params": cell.backend.build_params(), "cell": key,
             "seed": cell.seed, "step": op.step, "batch": op.batch, "operation": op.operation}
    return checkpoint_filtered(spec, s, index, narrow(live_rows), live=ids.live, row=ids.row,
                               efs=list(cell.backend.ef_values()), modes=cell.backend.filter_modes(), about=about)


def live_graph_health(index: ExposesGraph, live: np.ndarray) -> tuple[int, int, InDegree | None]:
    """Live points (`live[id]`) no layer-0 path from the entry point reaches, live points no node links to on
    layer 0, and the in-degree distribution over the live points (indexer.science.graph). Deleted points stay in
    the graph and keep routing: their links count, they are not counted."""
    stats = graph.graph_stats(index.graph())
    alive = live[stats.rows]  # the graph's ids, ascending
    degrees = None
    if alive.any():
        d = graph.InDegreeStats.of(stats.in_degrees[alive])
        degrees = InDegree(min=d.min, p1=d.p1, median=d.median, p99=d.p99, max=d.max, mean=d.mean)
    return int((stats.unreachable_mask & alive).sum()), int((stats.zero_in_degree_mask & alive).sum()), degrees


def live_self_miss(index: VectorIndex, base: np.ndarray, ids: IdMap, efs: list[int | None], *, seed: int,
                   metric: Literal["ip", "l2"]) -> dict[int | None, graph.SelfMiss]:
    """Per ef, the self-miss of a seeded sample of the live points (`base`: the prepared vectors by dataset row),
    each searched for by its own vector and judged by its id in the index (indexer.science.graph.self_miss)."""
    held = np.flatnonzero(ids.live)
    sample = None if len(held) <= CHURN_SELF_MISS_SAMPLE else CHURN_SELF_MISS_SAMPLE
    got = graph.self_miss(index.search, base[ids.row[held]], held, efs, sample=sample, seed=seed, metric=metric,
                          min_sample=CHURN_SELF_MISS_SAMPLE)
    return dict(zip(efs, got, strict=True))


def resident_bytes() -> int | None:
    """This process's resident memory (VmRSS), None where /proc is not there to read it."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def _checkpoint(spec: ExperimentSpec, cell: ChurnCell, s: Space, op: PlannedOp, index: VectorIndex | None,
                ids: IdMap, truth: Truth, *, threads: int, key: str, mode: str, reuse: bool, counts: dict[str, int],
                update_seconds: float) -> list[ChurnRow]:
    """The rows of one checkpoint: one per ef."""
    exact = truth(ids.live_positions.copy())
    baseline = _fresh(spec, cell, s, ids.live_positions, exact, threads) if op.baseline or index is None else None
    unreachable = zero_in_degree = degrees = None
    if index is not None and isinstance(index, ExposesGraph):
        unreachable, zero_in_degree, degrees = live_graph_health(index, ids.live)
    size = index.nbytes() if index is not None else None
    efs = list(cell.backend.ef_values())
    metric: Literal["ip", "l2"] = "ip" if space_metric(spec) == "ip" else "l2"
    misses = (live_self_miss(index, s.base, ids, efs, seed=cell.seed, metric=metric)
              if index is not None else {})
    rss = resident_bytes()
    if index is not None:
        reach = ef_at_targets(spec, cell, s, index, int(ids.live.sum()), lambda found: judge_live(
            spec, s, found, live=ids.live, row=ids.row, truth_ids=exact[0], truth_scores=exact[1]))
    else:
        assert baseline is not None
        reach = baseline.ef_at_target
    fresh = {} if baseline is None else baseline.ef_at_target
    at_target = [EfAtTarget(target=t, ef=ef, qps=qps, baseline_ef=fresh.get(t, (None, None))[0],
                            baseline_qps=fresh.get(t, (None, None))[1]) for t, (ef, qps) in reach.items()]
    out = []
    for ef in efs:
        if index is not None:
            found, qps = _search(index, s.queries, spec.k, ef)
            judged = judge_live(spec, s, found, live=ids.live, row=ids.row, truth_ids=exact[0], truth_scores=exact[1])
        else:
            assert baseline is not None
            judged, qps = baseline.judged[ef], baseline.qps[ef]
        summary = metrics.summarize(judged.recall)
        fresh_recall = None if baseline is None else baseline.recall[ef]
        split = _churn_split(cell, summary["mean"], fresh_recall)
        out.append(ChurnRow(
            dataset=s.dataset.name, model=cell.model, metric=spec.metric, index_size=len(s.rows),
            reduction=cell.reduction.label, backend=cell.backend.name, build_params=cell.backend.build_params(),
            k=spec.k, seed=cell.seed, cell=key, deletes=mode, reinserted_ids="same" if reuse else "new",
            step=op.step, batch=op.batch, operation=op.operation, live=int(ids.live_positions.sum()),
            inserted=counts["inserted"], deleted=counts["deleted"], update_seconds=update_seconds, ef=ef,
            recall=summary["mean"], recall_ci95=list(summary["ci95"]), deleted_returned=judged.deleted_returned,
            short_results=judged.short, qps=qps, unreachable=unreachable, zero_in_degree=zero_in_degree, in_degree=degrees,
            index_bytes=size,
            baseline_recall=None if baseline is None else baseline.recall[ef],
            baseline_build_seconds=None if baseline is None else baseline.build_seconds,
            baseline_qps=None if baseline is None else baseline.qps[ef],
            self_miss=misses[ef].fraction if ef in misses else None,
            self_miss_sampled=misses[ef].sampled if ef in misses else None, rss_bytes=rss, ef_at_target=at_target,
            **split,
        ))
    return out


def _churn_split(cell: ChurnCell, recall: float | None, fresh: float | None) -> dict[str, float | None]:
    """The checkpoint's lost recall by cause (ChurnRow's loss fields) where a fresh index ran beside and the
    index stores the live points' own float32 vectors (no reduction, no quantization): nothing else is split."""
    if (recall is None or fresh is None or np.isnan(recall) or np.isnan(fresh) or cell.reduction.name != "none"
            or quantized(cell.backend.build_params())):
        return {}
    return {"loss_representation": 0.0, "loss_graph": 1.0 - fresh, "loss_churn": fresh - recall}


def summarize_churn(rows: list[ChurnRow]) -> list[ChurnSummary]:
    """Per cell and ef: mean recall over the checkpoints (big-ann-benchmarks' streaming ranking), the worst
    checkpoint, the last one and its gap to the baseline (where one ran there)."""
    groups: dict[tuple[str, int | None], list[ChurnRow]] = {}
    for r in rows:
        groups.setdefault((r.cell, r.ef), []).append(r)
    out = []
    for (cell, ef), mine in groups.items():
        measured = [r for r in mine if r.recall is not None and not np.isnan(r.recall)]
        worst = min(measured, key=lambda r: r.recall or 0.0) if measured else None
        last = mine[-1]
        gap = (None if last.baseline_recall is None or last.recall is None
               else float(last.baseline_recall - last.recall))
        out.append(ChurnSummary(
            backend=last.backend, build_params=dict(last.build_params), seed=last.seed, cell=cell, ef=ef,
            checkpoints=len(mine), mean_recall=float(np.mean([r.recall for r in measured])) if measured else None,
            worst_recall=None if worst is None else worst.recall, worst_step=None if worst is None else worst.step,
            final_recall=last.recall, final_baseline_recall=last.baseline_recall, final_gap=gap,
            deleted_returned=sum(r.deleted_returned for r in mine), final_ef_at_target=last.ef_at_target))
    return out


def _checkpoint_progress(phase: Phases, should_stop: Callable[[], bool], share: float,
                         label: str) -> Callable[[int, int, PlannedOp], None]:
    """After each checkpoint of a cell: the run's fraction moved through the cell's `share`, the message naming
    the checkpoint, and a stop request honoured."""
    where, start = phase.context, phase.fraction

    def moved(i: int, of: int, op: PlannedOp) -> None:
        if should_stop():
            raise Cancelled()
        batch = "" if op.batch is None else f", batch {op.batch}"
        phase.progress(start + share * i / max(of, 1),
                       f"{where + ': ' if where else ''}runbook {label}: checkpoint {i} of {of} (after step {op.step}"
                       f"{batch})")

    return moved


@dataclass(frozen=True)
class ChurnTask:
    """One churn cell for an executor: `run_churn_task` applies the runbook and measures it where the executor
    puts it; the driver writes what it returns into `cell_dir` (so a Ray task needs no shared filesystem).
    `cache_dir` is the run's cache, where the live sets' exact answers are kept."""

    spec: ExperimentSpec
    cell: ChurnCell
    cell_dir: Path
    cache_dir: Path


# runs the tasks on an executor, calling back (i, rows) as task i ends
RunElsewhere = Callable[[list[ChurnTask], Callable[[int, ChurnOut], None]], None]


def run_churn_task(task: ChurnTask, s: Space, threads: int, *, truth_cache: Path | None = None,
                   checkpoint_done: Callable[[int, int, PlannedOp], None] | None = None) -> ChurnOut:
    """Run one churn cell: its live sets' exact answers kept in `truth_cache` (the run's cache by default; a
    scratch directory on a node that cannot read it)."""
    cache = task.cache_dir if truth_cache is None else truth_cache
    narrow = live_filters(task.spec, s, cache) if s.filters else None
    return run_churn_cell(task.spec, task.cell, s, truth=live_truth(task.spec, s, cache), threads=threads,
                          key=task.cell_dir.name, narrow=narrow, checkpoint_done=checkpoint_done)


def save_churn(cell_dir: Path, got: ChurnOut) -> None:
    """A churn cell's rows, written whole (staged: an interrupted write is never read as a cached cell)."""
    with staged_dir(cell_dir, replace=True) as tmp:
        (tmp / "filtered.json").write_text(json.dumps(rows_to_json(got.filtered)))
        (tmp / "rows.json").write_text(json.dumps(rows_to_json(got.rows)))


def churn_space(spec: ExperimentSpec, s: Space, cache_dir: Path, *, model: str | None, size: int | str,
                reduction: ReductionSpec, phase: Phases, should_stop: Callable[[], bool], fresh: bool,
                threads: int, tick: Callable[[], None], share: float = 0.0,
                elsewhere: RunElsewhere | None = None) -> ChurnOut:
    """Every churn cell of one space, in order: read when cached (unless `fresh`), else run and cached whole.

    With several cells to run, they go to `elsewhere` (the run's executor, several cells at once), each
    reporting when it ends. Otherwise they run here one by one, and `share` (one cell's part of the run's
    progress) moves through each cell checkpoint by checkpoint, a stop request honoured between checkpoints."""
    got: dict[int, ChurnOut] = {}
    tasks: list[ChurnTask] = []
    positions: list[int] = []
    mine = [c for c in churn_cells(spec) if (c.model, c.index_size, c.reduction) == (model, size, reduction)]
    for i, cell in enumerate(mine):
        if should_stop():
            raise Cancelled()
        cell_dir = Path(cache_dir) / CHURN_DIR / cell.key(spec)
        if (cell_dir / "rows.json").exists() and not fresh:
            got[i] = ChurnOut(
                rows=[ChurnRow.model_validate(r) for r in json.loads((cell_dir / "rows.json").read_text())],
                filtered=[ChurnFilteredRow.model_validate(r)
                          for r in json.loads((cell_dir / "filtered.json").read_text())])
            tick()
            continue
        tasks.append(ChurnTask(spec=spec, cell=cell, cell_dir=cell_dir, cache_dir=Path(cache_dir)))
        positions.append(i)

    def finished(j: int, out: ChurnOut) -> None:
        save_churn(tasks[j].cell_dir, out)
        got[positions[j]] = out
        tick()

    if elsewhere is not None and len(tasks) > 1:
        elsewhere(tasks, finished)
    else:
        for j, task in enumerate(tasks):
            if should_stop():
                raise Cancelled()
            with phase(f"runbook {task.cell.label()}"):
                out = run_churn_task(task, s, threads, checkpoint_done=_checkpoint_progress(
                    phase, should_stop, share, task.cell.label()))
            finished(j, out)
    return ChurnOut(rows=[r for i in sorted(got) for r in got[i].rows],
                    filtered=[r for i in sorted(got) for r in got[i].filtered])
