"""Recall by insertion order: a table per result group, and recall against ef in a figure."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from indexer.model.results import DenseRow
from indexer.report import cells
from indexer.report.blocks import Block, Figure, Heading, Para, Section, Table, drawn
from indexer.report.cells import MISSING, TIE
from indexer.report.figures import (
    MARKERS,
    MAX_PANELS,
    PALETTE,
    cap,
    ef_axis,
    fit_y,
    grid,
    legend,
    ordering_style,
)
from indexer.report.results import (
    UNCONTROLLED_MARK,
    ColKey,
    Results,
    by,
    ordering_matters,
    trivially_exact,
    with_col,
)
from indexer.report.values import mean, num, std

if TYPE_CHECKING:
    from matplotlib.figure import Figure as MplFigure


def recall_section(res: Results, highlights: list[str]) -> Section:
    blocks: list[Block] = [
        Para(
            f"Mean recall@{res.k} against exact kNN in the original space"
            + (", mean ± standard deviation over seeds" if res.multi_seed else "")
            + (
                ", one row per insertion ordering. Best ordering per column in bold; the last row is the "
                "spread between the best and worst ordering, in points (1 point = 0.01 recall)."
                if len(res.orderings) > 1
                else f" ({res.orderings[0] if res.orderings else 'one'} insertion ordering)."
            )
        ),
        Para(_definitions(res)),
    ]
    spreads: list[tuple[float, str, str, str, float, str, float]] = []
    tables: list[Block] = []
    sections = res.sections(res.dense)
    if len(res.orderings) == 1 and len(sections) > 1:
        if _recall_columns(res, res.dense):
            tables.append(_recall_by_group_table(res, sections))
        sections = []
    for label, srows in sections:
        cols = _recall_columns(res, srows)
        if not cols:
            continue
        if len(sections) > 1:
            tables.append(Heading(label))
        groups, subs = res.column_groups(cols)
        table = Table(["ordering"] + [res.col_label(c) for c in cols], [], groups=groups, sub_headers=subs)
        means: dict[ColKey, dict[str, float]] = {c: {} for c in cols}
        for ordering in res.orderings:
            line = [str(ordering)]
            for col in cols:
                cell = with_col(res, by(srows, "ordering", ordering), col)
                per_seed = [mean(r.recall for r in rs) for _, rs in res.group(cell, ["seed"])]
                m = mean(per_seed)
                if m is not None:
                    means[col][ordering] = m
                sd = std(per_seed)
                line.append(cells.f3(m) + (f" ± {sd:.3f}" if sd is not None else ""))
            table.rows.append(line)
        if len(res.orderings) > 1:
            spread_line = ["spread (pts)"]
            for j, col in enumerate(cols):
                vals = means[col]
                if len(vals) < 2 or not ordering_matters(res, col):
                    spread_line.append(MISSING)
                    continue
                best = max(vals, key=lambda o: vals[o])
                worst = min(vals, key=lambda o: vals[o])
                spread = vals[best] - vals[worst]
                if spread >= TIE:  # a bold winner among equals would mislead
                    table.strong.add((res.orderings.index(best), j + 1))
                spread_line.append(cells.pts(spread))
                spreads.append((spread, label, res.col_label(col), best, vals[best], worst, vals[worst]))
            table.rows.append(spread_line)
        tables.append(table)
    if spreads:
        spread, label, col_label, best, bv, worst, wv = max(spreads)
        where = col_label + (f", {label}" if len(sections) > 1 else "")
        highlights.append(
            f"Insertion order moved mean recall@{res.k} by up to {spread * 100:.1f} points "
            f"({where}: {best} {bv:.3f} vs {worst} {wv:.3f})."
        )
    if res.uncontrolled and len(res.orderings) > 1:
        blocks.append(Para(
            f"{UNCONTROLLED_MARK} {', '.join(sorted(res.uncontrolled))}: the system inserts in an order of its "
            "own (batches, several threads), so its rows are shown under the ordering the run asked for but "
            "left out of the spread and of every comparison between orderings."
        ))
    blocks += drawn(_recall_vs_ef_figure(res))
    blocks += tables
    title = "Recall by insertion order" if len(res.orderings) > 1 else "Recall"
    return Section("recall", title, blocks)


def _recall_columns(res: Results, rows: Sequence[DenseRow]) -> list[ColKey]:
    """Columns that have a recall against exact kNN (BM25 and hybrid rows are scored by IR metrics)."""
    with_recall = [r for r in rows if num(r.recall) is not None]
    return res.columns(with_recall)


def _recall_by_group_table(res: Results, sections: list[tuple[str, list[DenseRow]]]) -> Table:
    """One ordering: a single table, one line per result group, (backend, ef) columns."""
    cols = _recall_columns(res, res.dense)
    groups, subs = res.column_groups(cols)
    table = Table(["results"] + [res.col_label(c) for c in cols], [], groups=groups, sub_headers=subs)
    for label, srows in sections:
        if not any(num(r.recall) is not None for r in srows):
            continue
        line = [label]
        for col in cols:
            per_seed = [
                mean(r.recall for r in rs) for _, rs in res.group(with_col(res, srows, col), ["seed"])
            ]
            sd = std(per_seed)
            line.append(cells.f3(mean(per_seed)) + (f" ± {sd:.3f}" if sd is not None else ""))
        table.rows.append(line)
    return table


Series = tuple[str, str, str, list[DenseRow]]  # label, colour, marker, rows


def _recall_vs_ef_figure(res: Results) -> Figure | None:
    """Lines per ordering in a panel per (result group, backend); with one ordering, lines per group."""
    by_group = len(res.orderings) == 1 and len(res.sections(res.dense)) > 1
    panels: list[tuple[str, list[Series], list[DenseRow]]] = []
    if by_group:
        graph = [r for r in res.dense if r.ef is not None and num(r.recall) is not None]
        for config in res.configs(graph):
            crows = [r for r in graph if res.config_of(r) == config]
            series = [
                (label, PALETTE[i % len(PALETTE)], MARKERS[i % len(MARKERS)], rows)
                for i, (label, rows) in enumerate(res.sections(crows))
            ]
            panels.append((res.config_label(config), series, []))
    else:
        for label, srows in res.sections(res.dense):
            graph = [r for r in srows if r.ef is not None and num(r.recall) is not None]
            flat = [r for r in srows if r.ef is None]
            for config in res.configs(graph):
                grows = [r for r in graph if res.config_of(r) == config]
                series = [(str(o), *ordering_style(res, o), by(grows, "ordering", o)) for o in res.orderings]
                title = res.config_label(config) + (f"\n{label}" if res.section_keys else "")
                panels.append((title, series, flat))
    if not panels:
        return None
    panels, capped = cap(panels, MAX_PANELS)

    def draw() -> MplFigure:
        fig, axes = grid(len(panels), sharey=False)
        ncols = min(3, len(panels))
        for idx, (ax, (title, series, flat)) in enumerate(zip(axes, panels, strict=True)):
            efs: list[float] = []
            shown: list[float] = []
            for label, color, marker, rows in series:
                xs, ys, lo, hi = [], [], [], []
                for ef, erows in res.group(rows, ["ef"]):
                    m = mean(r.recall for r in erows)
                    if m is None:
                        continue
                    xs.append(float(ef[0]))
                    ys.append(m)
                    ci = _ci(erows)
                    lo.append(ci[0] if ci else m)
                    hi.append(ci[1] if ci else m)
                if not xs:
                    continue
                efs += xs
                shown += ys
                ax.plot(xs, ys, color=color, marker=marker, label=label)
                if len(xs) > 1:
                    ax.fill_between(xs, lo, hi, color=color, alpha=0.07, linewidth=0)
            for ref in res.configs(flat):
                rrows = [r for r in flat if res.config_of(r) == ref]
                m = mean(r.recall for r in rrows)
                if m is None or trivially_exact(rrows):
                    continue
                shown.append(m)
                ax.axhline(m, color="0.45", linestyle="--", linewidth=1.0)
                ax.annotate(
                    f"{res.config_label(ref)} {m:.3f}", xy=(0.99, m), xycoords=("axes fraction", "data"),
                    ha="right", va="bottom", fontsize=8, color="0.3",
                )  # fmt: skip
            ef_axis(ax, efs)
            fit_y(ax, shown)
            ax.set_title(title)
            if idx % ncols == 0:
                ax.set_ylabel(f"recall@{res.k}")
        legend(fig, axes, title=None if by_group else "insertion ordering")
        return fig

    if by_group:
        what = f"one line per result group ({res.orderings[0]} ordering); one panel per backend"
    else:
        what = "one line per insertion ordering; one panel per backend" + (
            " and result group" if res.section_keys else ""
        )
    return Figure(
        f"Recall@{res.k} against exact kNN as ef grows, {what}. Shaded: mean 95% confidence interval over "
        "queries. Dashed lines: backends without ef (e.g. exact search in a reduced space)." + capped,
        draw,
    )


def _ci(rows: Iterable[DenseRow]) -> tuple[float, float] | None:
    los, his = [], []
    for r in rows:
        lo, hi = (num(r.recall_ci95[0]), num(r.recall_ci95[1])) if len(r.recall_ci95) == 2 else (None, None)
        if lo is not None and hi is not None:
            los.append(lo)
            his.append(hi)
    return (sum(los) / len(los), sum(his) / len(his)) if los else None


def _definitions(res: Results) -> str:
    """One line on how recall is counted here and by the peers, with the run's own gap between them."""
    pairs = [(r.recall, r.recall_ids, r.recall_annb) for r in res.dense
             if r.recall is not None and r.recall_ids is not None and r.recall_annb is not None]
    gap = ""
    if pairs:
        ids_gap = max(abs(a - b) for a, b, _ in pairs) * 100
        annb_gap = max(abs(a - c) for a, _, c in pairs) * 100
        gap = (f" In this run they differ from ours by at most {ids_gap:.2f} points (ids) and {annb_gap:.2f} "
               "points (ann-benchmarks); rows carry all three (recall, recall_ids, recall_annb).")
    return ("How recall is counted: from the returned ids alone, each re-scored exactly from the original "
            "vectors (never the backend's own scores); a distinct id counts when it is a true neighbour or "
            "ties the k-th true score, repeats once, padding never. VectorDBBench counts the plain id "
            "intersection (no ties); ann-benchmarks counts every returned entry within the k-th true distance "
            "+ 1e-3, repeats each time." + gap)
