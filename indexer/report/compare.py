"""Two finished runs side by side (`indexer compare`, `GET /experiments/{a}/compare/{b}`): their dense cells
matched by what defines them, each matched cell's recall compared query by query and its speed compared.

Cells are matched on `MATCH_FIELDS`, not on the run's `cell` key, which can change between versions of
the engine. The queries must be the same: when both runs carry their spec, the dataset parts must be
equal, and every matched cell must have as many per-query recalls in both runs. Recall is compared with
`indexer.science.paired`: the mean over queries of B - A and its percentile bootstrap interval, the same
resamples (same seed) for every cell, so a cell's interval does not depend on which other cells matched.
A cell is *worse* in B when that interval lies below zero and the mean drop is at least `min_recall_drop`.

Reports from before per-query recall files (`recall_file`) still match; their cells are listed with the
rows' mean recalls and counted as untested. Sparse and hybrid rows are not compared (no recall against
exact kNN). Speed: QPS B / QPS A; with the QPS of each timed pass in both rows (`qps_all`) the ratio has a
bootstrap interval, otherwise (rows from before) each run's QPS is one median and the ratio has none.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, ValidationError

from indexer.common.errors import UserError
from indexer.model.results import BuildParam, Measure, ResultModel
from indexer.report.published import read_report_json
from indexer.science.paired import (
    DEFAULT_CONFIDENCE,
    DEFAULT_RESAMPLES,
    Interval,
    paired_difference,
    ratio_of_medians,
)

MATCH_FIELDS: tuple[str, ...] = ("dataset", "model", "metric", "k", "index_size", "reduction", "ordering",
                                 "backend", "build_params", "ef", "seed")
OTHER_REPRESENTATIONS = ("sparse", "hybrid")  # rows without recall against exact kNN: not compared
# fields shown in a cell's label only when they vary across the compared cells
_CONTEXT_FIELDS: tuple[str, ...] = ("dataset", "model", "metric", "k", "index_size", "reduction", "seed")


class _CellFields(BaseModel):
    """What defines a measured setting, the same in any version of the engine: the fields cells match on."""

    dataset: str
    model: str | None
    metric: str
    k: int
    index_size: int
    reduction: str
    ordering: str
    backend: str
    build_params: dict[str, BuildParam] = {}
    ef: int | None  # None: exact search
    seed: int


class Cell(_CellFields):
    """A measured setting, as a comparison names it."""

    model_config = ConfigDict(frozen=True)

    def key(self) -> str:
        """A canonical string of the matching fields (build parameters in name order)."""
        return json.dumps(self.model_dump(mode="json"), sort_keys=True)

    def label(self, context: Sequence[str] = ()) -> str:
        """backend, its build parameters, ordering and ef, then the `context` fields named."""
        params = " ".join(f"{name}={value}" for name, value in sorted(self.build_params.items()))
        parts = [self.backend, params, self.ordering, "no ef" if self.ef is None else f"ef={self.ef}"]
        parts += [f"{name}={getattr(self, name)}" for name in context]
        return " ".join(p for p in parts if p)


class PublishedRow(ResultModel, _CellFields):
    """What a comparison reads of a published dense row (indexer.model.results.DenseRow). Every other
    field is ignored, so reports written by other versions of the engine (fields added or gone, another
    cell key) still compare. Build parameters are gathered from the flattened JSON as DenseRow does."""

    model_config = ConfigDict(extra="ignore")

    representation: Literal["dense"]
    precision: str = "f32"  # a row field (DenseRow.precision), not a build parameter of a backend without one
    recall: Measure = None
    qps: float
    recall_file: str | None = None  # per-query recall@k, float32 in query order, relative to the report
    qps_all: list[float] = []  # the QPS of every timed pass (empty: a row from before they were published)

    def cell(self) -> Cell:
        return Cell.model_validate({name: getattr(self, name) for name in MATCH_FIELDS})


class _SpecPart(BaseModel):
    """The part of a run's spec that decides its queries."""

    model_config = ConfigDict(extra="ignore")

    dataset: dict[str, Any]


class _ReportDocument(BaseModel):
    """report.json as a comparison reads it (indexer.report.write): its spec and its rows."""

    model_config = ConfigDict(extra="ignore")

    spec: _SpecPart | None = None
    rows: list[dict[str, Any]]


class PublishedRun(BaseModel):
    """One finished run: its rows as published and the folder their files are relative to."""

    label: str  # how the output names the run: a report directory, an experiment id
    folder: Path
    dataset: dict[str, Any] | None  # the spec's dataset part (None: the run carries no spec)
    rows: list[dict[str, Any]]


def published_run(label: str, folder: Path, spec: Mapping[str, Any] | None,
                  rows: Sequence[Mapping[str, Any]]) -> PublishedRun:
    """A run from its spec JSON and published rows (a stored experiment, a report.json)."""
    try:
        dataset = _SpecPart.model_validate(spec).dataset if spec is not None else None
    except ValidationError:
        raise UserError(f"{label}: its spec has no dataset") from None
    return PublishedRun(label=label, folder=folder, dataset=dataset, rows=[dict(r) for r in rows])


def read_report_dir(path: Path) -> PublishedRun:
    """A report directory written by `indexer run` (report.json, neighbors/); UserError when it is not one."""
    try:
        report = _ReportDocument.model_validate(read_report_json(path))
    except ValidationError as err:
        raise UserError(f"{path / 'report.json'} is not a report: {err.errors()[0]['msg']}") from None
    spec = report.spec.model_dump() if report.spec is not None else None
    return published_run(str(path), path, spec, report.rows)


# ---- the comparison, as the CLI prints it in JSON and the API serves it ------------------------------


class RecallChange(BaseModel):
    """A cell's mean recall@k in each run and their paired difference over its queries."""

    a: float | None  # mean over the queries with a recall in both runs (the row's mean when untested)
    b: float | None
    difference: float | None  # mean over the queries of B - A; None when untested
    interval: tuple[float, float] | None  # percentile bootstrap over queries, at the comparison's confidence
    significant: bool  # the interval excludes zero
    queries: int  # with a recall in both runs; 0 when a run has no per-query recall (untested)


class SpeedChange(BaseModel):
    """Queries per second in each run and B / A."""

    a: float
    b: float
    ratio: float | None  # above 1: B answers faster
    interval: tuple[float, float] | None  # from the timed passes; None when each QPS is one median
    basis: Literal["passes", "median"]


class CellChange(BaseModel):
    cell: Cell
    recall: RecallChange
    qps: SpeedChange
    worse: bool  # recall significantly lower in B, by at least the comparison's min_recall_drop


class Comparison(BaseModel):
    """Run B against run A, cell by cell."""

    a: str
    b: str
    resamples: int
    confidence: float
    seed: int
    min_recall_drop: float
    cells: list[CellChange]  # in run A's row order
    worse: int  # cells whose recall is significantly worse in B
    untested: int  # matched cells without per-query recall in a run: recall not tested
    only_in_a: list[Cell]
    only_in_b: list[Cell]
    not_compared: int  # sparse and hybrid rows: no recall against exact kNN to compare
    notes: list[str]


def compare_runs(a: PublishedRun, b: PublishedRun, *, resamples: int = DEFAULT_RESAMPLES,
                 confidence: float = DEFAULT_CONFIDENCE, seed: int = 0, min_recall_drop: float = 0.0,
                 max_queries: int | None = None, max_draws: int | None = None) -> Comparison:
    """Run B against run A. UserError when the runs cannot be compared: different datasets, no matching
    cell, different query counts, a per-query file missing or unreadable, or past a bound.

    Bounds (the API's): each per-query array at most `max_queries` long (checked from the file's header,
    before it is read), and matched cells x queries x resamples at most `max_draws`. Memory is one cell's
    arrays plus one bootstrap block (indexer.science.paired.BLOCK_DRAWS) at a time."""
    if resamples < 1 or not 0.0 <= min_recall_drop <= 1.0:
        raise UserError(f"resamples must be at least 1 and min_recall_drop in [0, 1], got {resamples} and "
                        f"{min_recall_drop}")
    notes = _check_same_dataset(a, b)
    rows_a, skipped_a = _dense_rows(a)
    rows_b, skipped_b = _dense_rows(b)
    pairs = [(row, rows_b[key]) for key, row in rows_a.items() if key in rows_b]
    if not pairs:
        raise UserError(f"no cells match between {a.label} ({len(rows_a)} dense cells) and {b.label} "
                        f"({len(rows_b)}): cells match on {', '.join(MATCH_FIELDS)}"
                        + _example_cells(rows_a, rows_b))
    sizes = [_query_counts(a, ra, b, rb, max_queries) for ra, rb in pairs]
    draws = sum(n for n in sizes if n is not None) * resamples
    if max_draws is not None and draws > max_draws:
        raise UserError(f"max_compare_draws: {len(pairs):,} cells x their queries x {resamples:,} resamples = "
                        f"{draws:,} bootstrap draws, over the limit of {max_draws:,}; `indexer compare` on the "
                        "report directories has no limit")
    cells = [_compare_cell(a, ra, b, rb, resamples=resamples, confidence=confidence, seed=seed,
                           min_recall_drop=min_recall_drop) for ra, rb in pairs]
    untested = sum(c.recall.queries == 0 for c in cells)
    if untested:
        notes.append(f"{untested} matched cells have no per-query recall in one run (a report written before "
                     "recall files): their recall is shown, not tested")
    if any(c.qps.basis == "median" for c in cells):
        notes.append("QPS is each run's median timed pass; without the QPS of every pass the ratio has no interval")
    return Comparison(
        a=a.label, b=b.label, resamples=resamples, confidence=confidence, seed=seed,
        min_recall_drop=min_recall_drop, cells=cells, worse=sum(c.worse for c in cells), untested=untested,
        only_in_a=[r.cell() for key, r in rows_a.items() if key not in rows_b],
        only_in_b=[r.cell() for key, r in rows_b.items() if key not in rows_a],
        not_compared=skipped_a + skipped_b, notes=notes,
    )


def _check_same_dataset(a: PublishedRun, b: PublishedRun) -> list[str]:
    """The runs' queries are the same as far as their specs tell; the notes say what could not be checked."""
    if a.dataset is None or b.dataset is None:
        return ["a run carries no spec: its queries were checked by count only"]
    if a.dataset != b.dataset:
        differ = sorted(k for k in a.dataset.keys() | b.dataset.keys() if a.dataset.get(k) != b.dataset.get(k))
        raise UserError(f"the runs' datasets differ ({', '.join(differ)}), so their queries are not the same: "
                        "recall can only be compared query by query over the same queries")
    if a.dataset.get("kind") in ("file", "beir"):
        return ["the runs read their data from files: equal paths were checked, not the files' contents"]
    return []


def _dense_rows(run: PublishedRun) -> tuple[dict[str, PublishedRow], int]:
    """The run's dense rows by cell key, and how many rows of other representations were left out."""
    out: dict[str, PublishedRow] = {}
    skipped = 0
    for i, raw in enumerate(run.rows):
        if raw.get("representation") in OTHER_REPRESENTATIONS:
            skipped += 1
            continue
        try:
            row = PublishedRow.model_validate(raw)
        except ValidationError as err:
            problem = err.errors()[0]
            where = ".".join(str(p) for p in problem["loc"])
            raise UserError(f"{run.label}: row {i} is not a dense result row ({where}: {problem['msg']})") from None
        key = row.cell().key()
        if key in out:
            raise UserError(f"{run.label}: two rows measure the same cell ({row.cell().label(_CONTEXT_FIELDS)}); "
                            "cannot tell which to compare")
        out[key] = row
    return out, skipped


def _example_cells(rows_a: Mapping[str, PublishedRow], rows_b: Mapping[str, PublishedRow]) -> str:
    if not rows_a or not rows_b:
        return ""
    first_a = next(iter(rows_a.values())).cell().label(_CONTEXT_FIELDS)
    first_b = next(iter(rows_b.values())).cell().label(_CONTEXT_FIELDS)
    return f"; e.g. A has {first_a}, B has {first_b}"


def _recall_path(run: PublishedRun, row: PublishedRow) -> Path | None:
    """The row's per-query recall file, confined to the run's folder (None: the row names none)."""
    if row.recall_file is None:
        return None
    folder = run.folder.resolve()
    path = (folder / row.recall_file).resolve()
    if not path.is_relative_to(folder):
        raise UserError(f"{run.label}: recall file {row.recall_file!r} lies outside the report")
    if not path.is_file():
        raise UserError(f"{run.label}: recall file {row.recall_file!r} is missing; the report is incomplete")
    return path


def _open_recalls(run: PublishedRun, path: Path, max_queries: int | None) -> np.ndarray:
    """The per-query recall array, memory-mapped: only its header is read until its values are used."""
    try:
        loaded = np.load(path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError) as err:
        raise UserError(f"{run.label}: cannot read recall file {path.name}: {err}") from None
    if not isinstance(loaded, np.ndarray):  # an .npz archive
        raise UserError(f"{run.label}: recall file {path.name} is not one .npy array")
    values: np.ndarray = loaded
    if values.ndim != 1 or values.dtype.kind not in "fiu":
        raise UserError(f"{run.label}: recall file {path.name} holds {values.dtype} {values.shape}, "
                        "not one number per query")
    if max_queries is not None and values.size > max_queries:
        raise UserError(f"{run.label}: recall file {path.name} has {values.size:,} queries, over the limit of "
                        f"{max_queries:,}")
    return values


def _query_counts(a: PublishedRun, ra: PublishedRow, b: PublishedRun, rb: PublishedRow,
                  max_queries: int | None) -> int | None:
    """The cell's query count, the same in both runs (None: a run has no per-query recall for it)."""
    path_a, path_b = _recall_path(a, ra), _recall_path(b, rb)
    if path_a is None or path_b is None:
        return None
    n_a = _open_recalls(a, path_a, max_queries).size
    n_b = _open_recalls(b, path_b, max_queries).size
    if n_a != n_b:
        raise UserError(f"the runs' queries differ: {ra.cell().label(_CONTEXT_FIELDS)} has {n_a} per-query "
                        f"recalls in {a.label} and {n_b} in {b.label}")
    return n_a


def _compare_cell(a: PublishedRun, ra: PublishedRow, b: PublishedRun, rb: PublishedRow, *, resamples: int,
                  confidence: float, seed: int, min_recall_drop: float) -> CellChange:
    path_a, path_b = _recall_path(a, ra), _recall_path(b, rb)
    if path_a is None or path_b is None:
        recall = RecallChange(a=_finite(ra.recall), b=_finite(rb.recall), difference=None, interval=None,
                              significant=False, queries=0)
    else:
        paired = paired_difference(a=np.asarray(_open_recalls(a, path_a, None), dtype=np.float64),
                                   b=np.asarray(_open_recalls(b, path_b, None), dtype=np.float64),
                                   resamples=resamples, confidence=confidence, seed=seed)
        recall = RecallChange(a=_finite(paired.mean_a), b=_finite(paired.mean_b),
                              difference=_finite(paired.difference), interval=_pair(paired.interval),
                              significant=paired.significant, queries=paired.n)
    worse = (recall.significant and recall.difference is not None and recall.difference < 0
             and -recall.difference >= min_recall_drop)
    return CellChange(cell=ra.cell(), recall=recall, qps=_speed(ra, rb, resamples, confidence, seed), worse=worse)


def _speed(ra: PublishedRow, rb: PublishedRow, resamples: int, confidence: float, seed: int) -> SpeedChange:
    ratio = rb.qps / ra.qps if ra.qps > 0 else None
    passes_a, passes_b = ra.qps_all, rb.qps_all
    if ratio is None or len(passes_a) < 2 or len(passes_b) < 2 or min(passes_a) <= 0:
        return SpeedChange(a=ra.qps, b=rb.qps, ratio=ratio, interval=None, basis="median")
    spread = ratio_of_medians(a=np.asarray(passes_a), b=np.asarray(passes_b), resamples=resamples,
                              confidence=confidence, seed=seed)
    interval = _pair(spread.interval) if spread.interval is not None else None
    return SpeedChange(a=ra.qps, b=rb.qps, ratio=ratio, interval=interval, basis="passes")


def _finite(value: float | None) -> float | None:
    """JSON has no NaN: an undefined mean is None."""
    return value if value is not None and math.isfinite(value) else None


def _pair(interval: Interval) -> tuple[float, float] | None:
    if not (math.isfinite(interval.low) and math.isfinite(interval.high)):
        return None
    return (interval.low, interval.high)


# ---- plain-text table ---------------------------------------------------------------------------------


def format_comparison(comparison: Comparison) -> str:
    """The comparison as a plain-text table (what `indexer compare` prints without --json)."""
    cells = [c.cell for c in comparison.cells] + comparison.only_in_a + comparison.only_in_b
    varying = [f for f in _CONTEXT_FIELDS if len({json.dumps(getattr(c, f)) for c in cells}) > 1]
    constant = [f for f in _CONTEXT_FIELDS if f not in varying]
    pct = f"{comparison.confidence:.0%}"
    header = ["cell", "queries", "recall A", "recall B", "B - A", f"{pct} interval", "", "qps A", "qps B", "B / A",
              f"{pct} interval"]
    table = [header]
    for change in comparison.cells:
        r, q = change.recall, change.qps
        table.append([
            change.cell.label(varying), f"{r.queries:,}" if r.queries else "-", _num(r.a, ".4f"), _num(r.b, ".4f"),
            _num(r.difference, "+.4f"), _interval(r.interval, "+.4f"), _verdict(change), _num(q.a, ",.0f"),
            _num(q.b, ",.0f"),
            _num(q.ratio, ".2f") + ("x" if q.ratio is not None else ""), _interval(q.interval, ".2f"),
        ])
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    lines = [f"A: {comparison.a}", f"B: {comparison.b}",
             ", ".join(f"{f} {getattr(cells[0], f)}" for f in constant),
             f"recall: mean over queries of B - A, {pct} percentile bootstrap interval ({comparison.resamples:,} "
             f"resamples of the queries, seed {comparison.seed})", ""]
    for i, row in enumerate(table):
        lines.append("  ".join(v.ljust(w) if j == 0 else v.rjust(w) for j, (v, w) in enumerate(zip(row, widths,
                                                                                                  strict=True))).rstrip())
        if i == 0:
            lines.append("  ".join("-" * w for w in widths))
    lines.append("")
    drop = f" by at least {comparison.min_recall_drop:g}" if comparison.min_recall_drop else ""
    lines.append(f"{comparison.worse} of {len(comparison.cells)} matched cells have recall significantly worse in B{drop}")
    for side, only in (("A", comparison.only_in_a), ("B", comparison.only_in_b)):
        if only:
            lines.append(f"only in {side} (not compared): {len(only)} cells, e.g. {only[0].label(varying)}")
    if comparison.not_compared:
        lines.append(f"{comparison.not_compared} sparse or hybrid rows not compared (no recall against exact kNN)")
    lines += [f"note: {note}" for note in comparison.notes]
    return "\n".join(lines)


def _verdict(change: CellChange) -> str:
    """worse (counts against B), lower (significant but under the drop), higher, n.s., or untested."""
    recall = change.recall
    if recall.queries == 0:
        return "untested"
    if change.worse:
        return "worse"
    if not recall.significant:
        return "n.s."
    return "lower" if (recall.difference or 0.0) < 0 else "higher"


def _num(value: float | None, fmt: str) -> str:
    return "-" if value is None else format(value, fmt)


def _interval(interval: tuple[float, float] | None, fmt: str) -> str:
    return "-" if interval is None else f"[{interval[0]:{fmt}}, {interval[1]:{fmt}}]"
