"""The report as a title and its sections in reading order: the one list of what a report holds."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from indexer.engine.spec import ExperimentSpec
from indexer.model.results import ResultModel, RunExtras
from indexer.report.blocks import Bullets, Section
from indexer.report.results import Results, typed_extras, typed_rows
from indexer.report.sections.advice import advice_section
from indexer.report.sections.category import category_section
from indexer.report.sections.churn import churn_section
from indexer.report.sections.cost import cost_section
from indexer.report.sections.diagnostics import diagnostics_section
from indexer.report.sections.filtered import filtered_section
from indexer.report.sections.hard_queries import hard_queries_section
from indexer.report.sections.index_size import index_size_section
from indexer.report.sections.ir import ir_section
from indexer.report.sections.lid_bins import lid_bin_section
from indexer.report.sections.lid_space import lid_section
from indexer.report.sections.loss import loss_section
from indexer.report.sections.model_ranking import model_ranking_section
from indexer.report.sections.notes import notes_section
from indexer.report.sections.overview import overview_section
from indexer.report.sections.preflight import preflight_section
from indexer.report.sections.recall import recall_section
from indexer.report.sections.reduction import reduction_section
from indexer.report.sections.speed import speed_section


def document(spec: ExperimentSpec, rows: Sequence[ResultModel | Mapping[str, Any]],
             extras: RunExtras | Mapping[str, Any] | None) -> tuple[str, list[Section]]:
    """The report's title and its sections; highlights gather what the sections found most telling.

    Rows and extras may be typed (the runner's) or their JSON (a published report.json's)."""
    res = Results(spec, typed_rows(rows))
    typed = typed_extras(extras)
    highlights: list[str] = []
    sections = [s for s in (preflight_section(typed), overview_section(res)) if s is not None]  # data checks first
    body: list[Section | None] = [
        advice_section(typed, highlights),
        recall_section(res, highlights),
        category_section(res, highlights),
        lid_bin_section(res),
        diagnostics_section(res),
        cost_section(res),
        hard_queries_section(res),
        loss_section(res),
        filtered_section(typed),
        churn_section(typed),
        lid_section(res, typed, highlights),
        reduction_section(res),
        speed_section(res, typed),
        ir_section(res),
        model_ranking_section(res, typed, highlights),
        index_size_section(res, highlights),
        notes_section(typed),
    ]
    if highlights:
        sections.append(Section("highlights", "Highlights", [Bullets(highlights)]))
    sections += [s for s in body if s is not None and s.blocks]
    return spec.name, sections
