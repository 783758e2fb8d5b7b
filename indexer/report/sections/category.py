"""Recall by category: the category the insertion order moves most, and the weakest category."""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING

from indexer.model.results import DenseRow
from indexer.report import cells
from indexer.report.blocks import Block, Figure, Heading, Para, Section, Table, drawn, fold
from indexer.report.cells import MISSING, TIE
from indexer.report.figures import MAX_PANELS, cap, grid, legend, ordering_style
from indexer.report.results import Results, by, ef_of_col, ordering_matters, trivially_exact, with_col
from indexer.report.values import mean, num

if TYPE_CHECKING:
    from matplotlib.figure import Figure as MplFigure


def category_section(res: Results, highlights: list[str]) -> Section | None:
    if not any(r.recall_by_category for r in res.dense):
        return None
    several = len(res.orderings) > 1
    headers = ["backend / ef"]
    if several:
        headers += ["most order-sensitive category", "best → worst ordering", "spread (pts)"]
    headers += ["weakest category", "recall vs all", "gap (pts)"]
    tables: list[Block] = []
    best_gap: tuple[float, str] | None = None
    sections = res.sections(res.dense)
    for label, srows in sections:
        table = Table(headers, [])
        for col in res.columns(srows):
            crows = with_col(res, srows, col)
            if trivially_exact(crows) or not ordering_matters(res, col):
                continue
            per_ordering = {o: _category_recalls(by(crows, "ordering", o)) for o in res.orderings}
            per_ordering = {o: c for o, c in per_ordering.items() if c}
            if not per_ordering:
                continue
            line = [res.col_label(col)]
            if several:
                spread_row = _largest_spread(per_ordering)
                if spread_row is None or spread_row[2] - spread_row[4] < TIE:
                    line += ["(none: equal under every ordering)", MISSING, MISSING]
                else:
                    cat, best_o, best, worst_o, worst = spread_row
                    line += [cat, f"{best_o} {best:.3f} → {worst_o} {worst:.3f}", cells.pts(best - worst)]
                    text = (
                        f"The biggest per-category gap between orderings: category '{cat}' under "
                        f"{res.col_label(col)}"
                        + (f" ({label})" if len(sections) > 1 else "")
                        + f" reaches {best:.3f} with {best_o} but {worst:.3f} with {worst_o} "
                        f"({(best - worst) * 100:.1f} points)."
                    )
                    if best_gap is None or best - worst > best_gap[0]:
                        best_gap = (best - worst, text)
            cats: dict[str, list[float]] = {}
            for c in per_ordering.values():
                for name, (value, _n) in c.items():
                    cats.setdefault(name, []).append(value)
            cat_means = {name: sum(v) / len(v) for name, v in cats.items()}
            overall = mean(r.recall for r in crows)
            weakest = min(cat_means, key=lambda n: cat_means[n])
            gap = cat_means[weakest] - overall if overall is not None else None
            line += [weakest, f"{cells.f3(cat_means[weakest])} vs {cells.f3(overall)}", cells.pts(gap)]
            table.rows.append(line)
        if table.rows:
            tables += ([Heading(label)] if len(sections) > 1 else []) + [table]
    if not tables:
        return None
    explain = (
        "For each backend and ef: "
        + (
            "the category whose recall differs most between insertion orderings (best and worst "
            "ordering, means over seeds), and "
            if several
            else ""
        )
        + "the category with the lowest recall (averaged over orderings) against the overall mean "
        "recall; a negative gap means below the mean."
        + (" Exact search and BM25 are left out: the insertion order cannot change them." if several else "")
    )
    blocks: list[Block] = [Para(explain)]
    blocks += drawn(_category_figure(res))
    blocks.append(fold(tables, "Per-category tables"))
    if best_gap is not None:
        highlights.append(best_gap[1])
    return Section("categories", "Recall by category", blocks)


def _largest_spread(
    per_ordering: Mapping[str, Mapping[str, tuple[float, int]]],
) -> tuple[str, str, float, str, float] | None:
    """The category whose recall varies most across orderings, with its best and worst ordering."""
    found: tuple[float, str, str, float, str, float] | None = None
    names = sorted({n for c in per_ordering.values() for n in c})
    for name in names:
        vals = {o: c[name][0] for o, c in per_ordering.items() if name in c}
        if len(vals) < 2:
            continue
        best = max(vals, key=lambda o: vals[o])
        worst = min(vals, key=lambda o: vals[o])
        spread = vals[best] - vals[worst]
        if found is None or spread > found[0]:
            found = (spread, name, best, vals[best], worst, vals[worst])
    return None if found is None else found[1:]


def _category_recalls(rows: Iterable[DenseRow]) -> dict[str, tuple[float, int]]:
    """Mean recall per category over rows (seeds), with the query count."""
    acc: dict[str, list[float]] = {}
    counts: dict[str, int] = {}
    for r in rows:
        for name, entry in r.recall_by_category.items():
            x = num(entry.recall)
            if x is None:
                continue
            acc.setdefault(name, []).append(x)
            counts[name] = entry.n
    return {name: (sum(v) / len(v), counts.get(name, 0)) for name, v in acc.items()}


def _category_figure(res: Results, max_categories: int = 40) -> Figure | None:
    panels = []
    for label, srows in res.sections(res.dense):
        for col in res.picked_columns(srows, highest=False):
            crows = with_col(res, srows, col)
            if ef_of_col(col) is not None and ordering_matters(res, col) and _category_recalls(crows):
                panels.append((label, col, crows))
    if not panels:
        return None
    panels, capped = cap(panels, MAX_PANELS // 2)
    # One category order for every panel (worst on top), so panels read side by side.
    overall = _category_recalls(itertools.chain.from_iterable(p[2] for p in panels))
    names = sorted(overall, key=lambda n: overall[n][0])
    dropped = 0
    if len(names) > max_categories:
        spread = {}
        for n in names:
            vals = [
                c[n][0]
                for _, _, crows in panels
                for o in res.orderings
                if n in (c := _category_recalls(by(crows, "ordering", o)))
            ]
            spread[n] = max(vals) - min(vals) if vals else 0.0
        keep = set(sorted(names, key=lambda n: -spread[n])[:max_categories])
        dropped = len(names) - len(keep)
        names = [n for n in names if n in keep]

    def draw() -> MplFigure:
        ncols = 2 if len(panels) > 1 else 1
        fig, axes = grid(len(panels), ncols_max=ncols, panel_w=4.6, panel_h=0.8 + 0.24 * len(names))
        ys = list(range(len(names)))
        for ax, (label, col, crows) in zip(axes, panels, strict=True):
            per_ordering = {o: _category_recalls(by(crows, "ordering", o)) for o in res.orderings}
            for y, name in zip(ys, names, strict=True):
                vals = [c[name][0] for c in per_ordering.values() if name in c]
                if len(vals) > 1:
                    ax.plot([min(vals), max(vals)], [y, y], color="0.75", linewidth=3, solid_capstyle="round",
                            zorder=1)  # fmt: skip
            for ordering, cats in per_ordering.items():
                pts = [(cats[n][0], y) for y, n in zip(ys, names, strict=True) if n in cats]
                if not pts:
                    continue
                color, marker = ordering_style(res, ordering)
                ax.scatter([p[0] for p in pts], [p[1] for p in pts], color=color, marker=marker, s=26,
                           label=str(ordering), zorder=2)  # fmt: skip
            ax.set_yticks(ys, [_shorten(n) for n in names])
            ax.set_ylim(len(names) - 0.5, -0.5)
            ax.set_xlabel(f"recall@{res.k}")
            ax.grid(axis="y", alpha=0.15)
            ax.set_title(res.col_label(col) + (f"\n{label}" if res.section_keys else ""))
        legend(fig, axes, title="insertion ordering")
        return fig

    note = f" The {dropped} categories whose recall varies least are left out." if dropped else ""
    return Figure(
        "Recall by category, one marker per insertion ordering (grey bar: the spread between the best and "
        "worst ordering), at each backend's smallest ef; weakest categories on top." + note + capped,
        draw,
    )


def _shorten(text: str, width: int = 28) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"
