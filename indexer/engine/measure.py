"""A built cell's rows, measured from its saved answers and probes: nothing here builds or searches.

Recall in its three definitions (indexer.science.judging) from the returned ids alone, their scores
recomputed from the original vectors; recall within the index's own (reduced) space; the loss split into
representation and graph (`LossSplit`); the breakdowns by
category, by query-LID bin and of the hardest tenth of the queries; each query's ef for recall 1.0 on the
cell's ef ladder (`ef_to_full`); IR measures where relevance judgements exist. A new measure lands here and
raises MEASURE_FORMAT (indexer.engine.spec): the next run computes it from every cell's saved answers,
building nothing (tests/indexer/engine/test_measures.py).

Three steps, each with one job: `measure_answers` (pure: arrays in, figures out), `dense_row` (a typed row
from named parts), `measure_cell` (reads the saved answers, writes the per-query recall files and rows.json).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from indexer.backends import BACKENDS
from indexer.backends.precision import precision_of, quantized, stored_bytes
from indexer.common.fileio import staged_dir
from indexer.datasets import Dataset
from indexer.engine.filtering import filtered_rows
from indexer.engine.space import Space, by_category
from indexer.engine.spec import Cell, ExperimentSpec
from indexer.model.answers import CellAnswers, CellProbes, SweepAnswer
from indexer.model.results import (
    BinRecall,
    DenseRow,
    FilteredRow,
    IndexRecord,
    IRMeasures,
    rows_to_json,
)
from indexer.model.seeds import library_seed
from indexer.science import ef_ladder, metrics
from indexer.science.judging import Judged, judge_answers

ANSWERS_FILE = "answers.json"  # a built cell's marker: written last into its directory
MEASURES_DIR = "measures"  # measures/<measure key>/rows.json and the per-query recall files
PROBES_DIR = "probes"  # probes/<probe key>.json, and the filtered answers probes/<probe key>.filtered-*.npy
FILTERED_FILE = "filtered.json"  # beside rows.json: the rows of the filtered searches


@dataclass(frozen=True, kw_only=True)
class EfMeasures:
    """What the answers at one ef measure."""

    judged: Judged  # against exact kNN on the original vectors, per query
    recall_within: float  # against exact kNN in the index's own space
    ir: IRMeasures | None  # None: the dataset has no relevance judgements


@dataclass(frozen=True, kw_only=True)
class LossSplit:
    """Where a cell's lost recall goes, in points of recall@k against exact kNN on the original vectors.

    `recall_stored` is the recall of exact search over what the index stores (its vectors reduced and/or
    quantized, as it compares them), judged like every recall; the representation loses 1 - recall_stored,
    the graph recall_stored - recall, and the two add up to 1 - recall.

    A rescored cell (indexer.backends.precision.Rescore) is also searched with rescoring off on the same index
    at the same ef (`unrescored`, its recall): the graph then loses recall_stored - unrescored (the index against
    exact search over what it stores, as without rescoring), and rescoring recovers recall - unrescored, so
    representation + graph - recovered_by_rescore = 1 - recall. Re-ranking by the original vectors can recover
    more than the graph lost (a binary index's Hamming order is coarser than its original order): the graph
    and the representation stay what they are without rescoring, and the recovery is counted once, apart.
    """

    recall_stored: float | None  # None: the index's stored form cannot be read back, so nothing is split

    def representation(self) -> float | None:
        return None if self.recall_stored is None else 1.0 - self.recall_stored

    def graph(self, recall: float, unrescored: float | None = None) -> float | None:
        """What the graph loses: against the index's answers without re-ranking where it re-ranks."""
        if self.recall_stored is None:
            return None
        return self.recall_stored - (recall if unrescored is None else unrescored)

    def recovered_by_rescore(self, recall: float, unrescored: float | None) -> float | None:
        """What re-ranking gains over the same index's answers without it; None where nothing is re-ranked."""
        return None if unrescored is None else recall - unrescored


def stored_recall(spec: ExperimentSpec, cell: Cell, s: Space, probes: CellProbes, where: Path) -> LossSplit:
    """The recall of exact search over what the cell's index stores: a quantized index's own (its probe's ids,
    indexer.engine.cell.stored_answer), else its space's exact kNN (the reduction's alone; 1 ties aside when
    nothing is reduced). Averaged over queries as `recall` is (metrics.summarize). Unknown (None) for a
    quantized index without that probe: its codes cannot be read back, and the space's exact kNN would book
    the quantization's loss to the graph."""
    if probes.stored is None and quantized(cell.backend.build_params()):
        return LossSplit(recall_stored=None)
    ids = s.within_ids if probes.stored is None else np.load(where / PROBES_DIR / probes.stored.neighbors,
                                                              allow_pickle=False)
    return LossSplit(recall_stored=float(metrics.summarize(judge(spec, s, ids).recall)["mean"]))


def unrescored_recall(spec: ExperimentSpec, s: Space, probes: CellProbes, ef: int | None,
                      where: Path) -> float | None:
    """The recall of a rescored index's answers at `ef` with rescoring off (its probe's ids, judged like every
    recall, from the ids alone); None for a cell that re-ranks nothing."""
    answer = probes.unrescored_at(ef)
    if answer is None:
        return None
    ids = np.load(where / PROBES_DIR / answer.neighbors, allow_pickle=False)
    return float(metrics.summarize(judge(spec, s, ids).recall)["mean"])


@dataclass(frozen=True, kw_only=True)
class EfToFull:
    """Each query's smallest ef on the cell's ladder for recall 1.0 (ef_ladder.NOT_REACHED: none up to the cap)."""

    efs: list[int]
    first: np.ndarray  # int64 (queries,)

    def row_fields(self) -> dict[str, float | int | None]:
        """The row's summary of it: median, p90, p99, the share capped, and the cap."""
        return {"ef_full_p50": ef_ladder.ef_percentile(self.first, 50),
                "ef_full_p90": ef_ladder.ef_percentile(self.first, 90),
                "ef_full_p99": ef_ladder.ef_percentile(self.first, 99),
                "ef_full_capped": ef_ladder.capped_share(self.first), "ef_full_cap": self.efs[-1]}


def ef_to_full(spec: ExperimentSpec, s: Space, probes: CellProbes, where: Path) -> EfToFull | None:
    """Each query's ef for recall 1.0, from the ef ladder probe's saved ids (indexer.engine.ladder), judged like
    every recall; None for a backend without ef (or probes from before the ladder)."""
    if probes.ef_ladder is None:
        return None
    ids = np.load(where / PROBES_DIR / probes.ef_ladder.neighbors, allow_pickle=False)
    recall = np.stack([judge(spec, s, rung).recall for rung in ids])
    return EfToFull(efs=probes.ef_ladder.efs, first=ef_ladder.first_full(recall, probes.ef_ladder.efs))


def judge(spec: ExperimentSpec, s: Space, ids: np.ndarray, picked: np.ndarray | None = None) -> Judged:
    """The answers of the queries `picked` (all by default) against exact kNN in the original space, by
    their ids: scores recomputed from the original vectors, never taken from the backend."""
    q = slice(None) if picked is None else picked
    return judge_answers(ids, base=s.orig_base, queries=s.orig_queries[q], truth_ids=s.gt_ids[q],
                         truth_scores=s.gt_scores[q], k=spec.k, metric=spec.metric)


def measure_answers(spec: ExperimentSpec, s: Space, ids: np.ndarray, ranking: np.ndarray | None) -> EfMeasures:
    """Every measure of one ef's answers (`ids`: queries x k; `ranking`: queries x 100, or None)."""
    within = judge_answers(ids, base=s.base, queries=s.queries, truth_ids=s.within_ids,
                           truth_scores=s.within_scores, k=spec.k, metric=spec.metric).recall
    return EfMeasures(judged=judge(spec, s, ids), recall_within=float(np.nanmean(within)),
                      ir=None if ranking is None else ir_metrics(s.dataset, ids, ranking))


def ir_metrics(ds: Dataset, top: np.ndarray, deep: np.ndarray) -> IRMeasures:
    """nDCG@10 and MRR@10 of the ranking a user gets (the top-k search), recall@100 of a depth-100 one."""
    from indexer.science import ir_metrics

    doc_ids = ds.doc_ids or [str(i) for i in range(len(ds.base))]
    query_ids = ds.query_ids or [str(i) for i in range(len(ds.queries))]
    assert ds.qrels is not None
    out = ir_metrics.evaluate_run(ds.qrels, ir_metrics.run_from_ids(query_ids, doc_ids, top), ("ndcg@10", "mrr@10"))
    out.update(ir_metrics.evaluate_run(ds.qrels, ir_metrics.run_from_ids(query_ids, doc_ids, deep), ("recall@100",)))
    return IRMeasures.model_validate(out)


def dense_row(*, spec: ExperimentSpec, cell: Cell, s: Space, record: IndexRecord, answers: CellAnswers,
              swept: SweepAnswer, measured: EfMeasures, probes: CellProbes, loss: LossSplit, full: EfToFull | None,
              neighbors: Path, recall_file: Path, ranking: Path | None, unrescored: float | None = None) -> DenseRow:
    """One row of the cell: its ef's answers as measured, the build's figures, the probes at that ef
    (`unrescored`: the recall of a rescored index's answers at that ef with rescoring off, else None)."""
    backend = BACKENDS[cell.backend.name]
    per_query = measured.judged.recall
    summary = metrics.summarize(per_query)
    stores = precision_of(cell.backend.build_params())
    pass_qps = [len(s.queries) / max(t, 1e-9) for t in swept.pass_seconds]
    # pydantic's mypy plugin names an aliased field's parameter by its alias ("ndcg@10"), which no keyword
    # can spell: the IR fields are set below by name
    row = DenseRow(  # type: ignore[call-arg]
        dataset=record.dataset, model=cell.model, metric=spec.metric, index_size=record.n,
        reduction=cell.reduction.label, dims=record.dims, ordering=cell.ordering, backend=cell.backend.name,
        build_params=cell.backend.build_params(), k=spec.k, seed=cell.seed,
        library_seed=library_seed(cell.seed, cell.backend.name) if backend.capabilities.seeded else None,
        permutation_seed=cell.seed, search_threads=answers.search_threads, library_version=answers.library_version,
        order_controlled=backend.capabilities.order_controlled, build_seconds=answers.build_seconds,
        index_bytes=answers.index_bytes, cell=record.id,
        bytes_per_vector=stored_bytes(cell.backend.build_params(), record.dims),
        precision=stores, recall_stored=loss.recall_stored, loss_representation=loss.representation(),
        loss_graph=loss.graph(summary["mean"], unrescored),
        ef=swept.ef,
        recall=summary["mean"], recall_std=summary["std"], recall_ci95=list(summary["ci95"]),
        recall_within=measured.recall_within,
        recall_ids=float(np.nanmean(measured.judged.recall_ids)),
        recall_annb=float(np.mean(measured.judged.recall_annb)),
        short_results=int(measured.judged.short.sum()), duplicate_results=int(measured.judged.duplicated.sum()),
        qps=float(np.median(pass_qps)), qps_passes=len(pass_qps), qps_all=[round(q, 1) for q in pass_qps],
        latency=swept.latency,
        recall_by_category=by_category(per_query, s.dataset),
        recall_by_lid_bin=[BinRecall.model_validate(b)
                           for b in metrics.recall_by_bins(per_query, s.lid_queries, spec.lid_bins)],
        cost_at_recall=probes.cost_at_recall, neighbors=str(neighbors), recall_file=str(recall_file),
    )
    # measures a row takes only where they exist (absent from its JSON otherwise: DenseRow.OMIT_UNSET)
    if measured.ir is not None:
        row = row.model_copy(update={"ndcg_at_10": measured.ir.ndcg_at_10, "mrr_at_10": measured.ir.mrr_at_10,
                                     "recall_at_100": measured.ir.recall_at_100, "ranking": str(ranking)})
    if unrescored is not None:
        recovered = loss.recovered_by_rescore(summary["mean"], unrescored)
        row = row.model_copy(update={"recall_unrescored": unrescored, "recovered_by_rescore": recovered})
    if s.relative_contrast is not None:
        hard, rest = metrics.recall_hardest(per_query, s.relative_contrast)
        row = row.model_copy(update={"recall_hardest10": hard, "recall_rest": rest})
    if full is not None:
        row = row.model_copy(update=full.row_fields())
    diagnosed = probes.at(swept.ef)
    if diagnosed is not None:
        row = row.model_copy(update={"graph": probes.graph, "self_miss": diagnosed.self_miss,
                                     "self_miss_sampled": diagnosed.self_miss_sampled,
                                     "diagnostics_by_category": diagnosed.by_category,
                                     "diagnostics_by_lid_bin": diagnosed.by_lid_bin})
    return row


def measure_cell(*, spec: ExperimentSpec, cell: Cell, s: Space, cell_dir: Path, measure_key: str, probe_key: str,
                 source: Path | None = None) -> list[DenseRow]:
    """Measure the saved answers of the cell `cell_dir` into cell_dir/measures/<measure_key>/ (rows.json
    last), reading its files from `source` (a build's staging directory) or from `cell_dir` itself."""
    where = source or cell_dir
    answers = CellAnswers.model_validate_json((where / ANSWERS_FILE).read_bytes())
    record = IndexRecord.model_validate_json((where / "meta.json").read_bytes())
    probes = CellProbes.model_validate_json((where / PROBES_DIR / f"{probe_key}.json").read_bytes())
    final = cell_dir / MEASURES_DIR / measure_key
    rows = []
    loss = stored_recall(spec, cell, s, probes, where)
    full = ef_to_full(spec, s, probes, where)
    with staged_dir(final if source is None else where / MEASURES_DIR / measure_key) as out:
        for swept in answers.sweep:
            ids = np.load(where / swept.neighbors, allow_pickle=False)
            ranking = None if swept.ranking is None else np.load(where / swept.ranking, allow_pickle=False)
            measured = measure_answers(spec, s, ids, ranking)
            unrescored = unrescored_recall(spec, s, probes, swept.ef, where)
            recall_name = f"recall-{Path(swept.neighbors).stem.removeprefix('neighbors-')}.npy"
            np.save(out / recall_name, measured.judged.recall.astype(np.float32))
            rows.append(dense_row(
                spec=spec, cell=cell, s=s, record=record, answers=answers, swept=swept, measured=measured,
                probes=probes, loss=loss, full=full, neighbors=cell_dir / swept.neighbors,
                recall_file=final / recall_name, ranking=None if swept.ranking is None else cell_dir / swept.ranking,
                unrescored=unrescored))
        if probes.filtered and rows:
            filtered = filtered_rows(spec, s, rows[0], probes.filtered, probes.filtered_cost,
                                     where=where / PROBES_DIR, named=cell_dir / PROBES_DIR)
            (out / FILTERED_FILE).write_text(json.dumps(rows_to_json(filtered)))
        (out / "rows.json").write_text(json.dumps(rows_to_json(rows)))  # the finished marker, written last
    return rows


def read_measured(cell_dir: Path, measure_key: str) -> tuple[list[DenseRow], IndexRecord] | None:
    """A cell's rows as measured under `measure_key`, and its record; None when not (completely) there."""
    rows_file = cell_dir / MEASURES_DIR / measure_key / "rows.json"
    if not rows_file.exists():
        return None
    rows = [DenseRow.model_validate(r) for r in json.loads(rows_file.read_text())]
    return rows, IndexRecord.model_validate_json((cell_dir / "meta.json").read_text())


def read_filtered(cell_dir: Path, measure_key: str) -> list[FilteredRow]:
    """A measured cell's filtered rows (none when the spec had no filters)."""
    path = cell_dir / MEASURES_DIR / measure_key / FILTERED_FILE
    return [FilteredRow.model_validate(r) for r in json.loads(path.read_text())] if path.exists() else []


def built(cell_dir: Path) -> bool:
    return (cell_dir / ANSWERS_FILE).exists()


def probed(cell_dir: Path, probe_key: str) -> bool:
    return (cell_dir / PROBES_DIR / f"{probe_key}.json").exists()
