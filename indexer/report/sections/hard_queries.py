"""Hard queries: recall on the tenth of the queries with the lowest relative contrast beside the rest (as VIBE
splits them), and how much ef each query needs for recall 1.0 (a mean hides the few that need far more)."""

from __future__ import annotations

from indexer.model.results import DenseRow
from indexer.report import cells
from indexer.report.blocks import Block, Heading, Para, Section, Table
from indexer.report.results import ConfigKey, Results, by, trivially_exact
from indexer.report.sections.cost import PREFERRED_TARGET
from indexer.report.values import mean, num


def hard_queries_section(res: Results) -> Section | None:
    rows = [r for r in res.dense if num(r.recall_hardest10) is not None and not trivially_exact([r])]
    if not rows:
        return None
    blocks: list[Block] = [Para(
        f"Recall@{res.k} on the 10% of queries with the lowest relative contrast at k (their neighbours barely "
        "stand out from the rest of the base, known before any build) beside the other 90%, at each ef; and, per "
        "built index, the smallest ef at which each query reaches recall 1.0 against exact kNN, searched on a "
        "ladder k, 2k, 4k, ... up to a cap (min(1,024, index size, the backend's largest ef)): its median, 90th "
        "and 99th percentile over the queries, and the share of queries that reach 1.0 at no ef up to the cap "
        "(a percentile among those shows as > cap), beside the ef at which the mean recall reaches a target (cost "
        "at equal recall). Means over seeds."
    )]
    for label, srows in res.sections(rows):
        if res.section_keys:
            blocks.append(Heading(label))
        blocks.append(_recall_table(res, srows))
        ladder = _ef_table(res, srows)
        if ladder.rows:
            blocks.append(ladder)
    return Section("hard-queries", "Hard queries", blocks)


def _recall_table(res: Results, rows: list[DenseRow]) -> Table:
    table = Table(["backend", "ordering", "ef", "hardest 10%", "rest", "gap (points)"], [], left=2,
                  caption=f"Recall@{res.k}: the hardest 10% of queries by relative contrast, and the rest")
    for config in res.configs(rows):
        for ordering in res.orderings:
            crows = [r for r in by(rows, "ordering", ordering) if res.config_of(r) == config]
            for ef in sorted({r.ef for r in crows}, key=lambda e: -1 if e is None else e):
                at = [r for r in crows if r.ef == ef]
                hard, rest = mean(r.recall_hardest10 for r in at), mean(r.recall_rest for r in at)
                gap = None if hard is None or rest is None else rest - hard
                table.rows.append([res.config_label(config), str(ordering), cells.MISSING if ef is None else str(ef),
                                   cells.f3(hard), cells.f3(rest), cells.pts(gap)])
    return table


def _ef_table(res: Results, rows: list[DenseRow]) -> Table:
    targets = sorted({c.target for r in rows for c in r.cost_at_recall})
    target = None if not targets else PREFERRED_TARGET if PREFERRED_TARGET in targets else targets[len(targets) // 2]
    table = Table(["backend", "ordering", "p50", "p90", "p99", "capped %", "cap"]
                  + ([f"mean {target:g}"] if target is not None else []), [], left=2,
                  caption="The ef each query needs for recall 1.0" + (
                      f"; last column: the ef at which the mean recall reaches {target:g}" if target is not None else ""))
    for config in res.configs(rows):
        for ordering in res.orderings:
            cell_rows = _one_per_cell(res, by(rows, "ordering", ordering), config)
            if not cell_rows:
                continue
            cap = mean(r.ef_full_cap for r in cell_rows)
            table.rows.append([res.config_label(config), str(ordering),
                               *(_percentile([getattr(r, f"ef_full_{p}") for r in cell_rows], cap)
                                 for p in ("p50", "p90", "p99")),
                               cells.pts(mean(r.ef_full_capped for r in cell_rows)), cells.count(cap)]
                              + ([_mean_cost(cell_rows, target)] if target is not None else []))
    return table


def _mean_cost(cell_rows: list[DenseRow], target: float) -> str:
    """The ef at which each cell's mean recall reaches `target` (its cost at equal recall), mean over seeds."""
    efs = [c.ef for r in cell_rows for c in r.cost_at_recall if c.target == target]
    if not efs:
        return cells.MISSING
    return "not reached" if any(ef is None for ef in efs) else cells.count(mean(efs))


def _one_per_cell(res: Results, rows: list[DenseRow], config: ConfigKey) -> list[DenseRow]:
    """The first row of each built index of `config` that took the ladder (each of its rows carries the same)."""
    seen: dict[str, DenseRow] = {}
    for r in rows:
        if res.config_of(r) == config and r.ef_full_capped is not None:
            seen.setdefault(r.cell, r)
    return list(seen.values())


def _percentile(values: list[int | None], cap: float | None) -> str:
    """The mean over seeds; above the cap when any seed's percentile falls among its capped queries."""
    if any(v is None for v in values):
        return f"> {cells.count(cap)}"
    return cells.count(mean(values))
