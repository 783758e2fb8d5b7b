"""Retrieval quality against the relevance judgements (qrels), next to recall against exact kNN."""

from __future__ import annotations

from indexer.report import cells
from indexer.report.blocks import Para, Section, Table
from indexer.report.cells import MISSING
from indexer.report.results import IR_FIELDS, Results, measure, with_col
from indexer.report.values import mean


def ir_section(res: Results) -> Section | None:
    rows = [r for r in res.rows if r.judged]
    if not rows:
        return None
    note = ""
    if len(res.distinct("index_size", rows)) > 1:
        biggest = max(r.index_size for r in rows)
        rows = [r for r in rows if r.index_size == biggest]
        note = f" At the largest index size ({biggest:,.0f}); the section on index size shows the rest."
    metrics = [m for m in IR_FIELDS if any(measure(r, m) is not None for r in rows)]
    keys = [k for k in res.section_keys if k != "index_size"]
    by_ordering = len(res.distinct("ordering", rows)) > 1
    id_headers = (
        [k.replace("_", " ") for k in keys] + ["backend / ef"] + (["ordering"] if by_ordering else [])
    )
    table = Table(id_headers + [f"recall@{res.k}"] + metrics, [], left=len(id_headers))
    group_keys = keys + (["ordering"] if by_ordering else [])
    for values, grows in res.group(rows, group_keys):
        for col in res.columns(grows):
            crows = with_col(res, grows, col)
            ident = [str(v) if v is not None else MISSING for v in values]
            if by_ordering:
                ident = ident[:-1] + [res.col_label(col), ident[-1]]
            else:
                ident = ident + [res.col_label(col)]
            table.rows.append(ident + [cells.f3(mean(measure(r, m) for r in crows)) for m in ["recall", *metrics]])
    return Section(
        "ir",
        "Retrieval quality",
        [
            Para(
                "Retrieval quality against the relevance judgements (qrels), next to recall against "
                "exact kNN; means over seeds." + note
            ),
            table,
        ],
    )
