"""Recall by query LID: queries in quantile bins of their pointwise LID, per insertion ordering."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING

import numpy as np

from indexer.model.results import DenseRow
from indexer.report import cells
from indexer.report.blocks import Block, Figure, Heading, Para, Section, Table, drawn, fold
from indexer.report.figures import MAX_PANELS, cap, grid, legend, ordering_style
from indexer.report.results import ColKey, Results, by, ordering_matters, trivially_exact, with_col
from indexer.report.values import mean

if TYPE_CHECKING:
    from matplotlib.figure import Figure as MplFigure


def lid_bin_section(res: Results) -> Section | None:
    panels = _lid_bin_panels(res)
    if not panels:
        return None
    blocks: list[Block] = [
        Para(
            f"Queries split into quantile bins of their pointwise LID (low to high); mean recall@{res.k} "
            "per bin and insertion ordering, at each backend's smallest ef (where the search is least "
            "forgiving)."
        )
    ]
    blocks += drawn(_lid_bin_figure(res, panels))
    tables: list[Block] = []
    for label, col, crows in panels:
        if len(panels) > 1:
            tables.append(Heading(f"{res.col_label(col)}" + (f" · {label}" if res.section_keys else "")))
        bins_all = _lid_bins(crows)
        headers = ["ordering"] + [_bin_label(b, info) for b, info in bins_all.items()]
        table = Table(headers, [])
        for ordering in res.orderings:
            bins = _lid_bins(by(crows, "ordering", ordering))
            if bins:
                table.rows.append(
                    [str(ordering)] + [cells.f3(bins.get(b, {}).get("recall")) for b in bins_all]
                )
        counts = [bins_all[b].get("n") for b in bins_all]
        if any(c is not None for c in counts):
            table.rows.append(["queries"] + [cells.count(c) for c in counts])
        tables.append(table)
    blocks.append(fold(tables, "Per-bin tables"))
    return Section("lid-bins", "Recall by query LID", blocks)


def _lid_bin_panels(res: Results) -> list[tuple[str, ColKey, list[DenseRow]]]:
    """(section label, column, rows) at each backend's lowest ef, where bins have data."""
    panels = []
    for label, srows in res.sections(res.dense):
        for col in res.picked_columns(srows, highest=False):
            crows = with_col(res, srows, col)
            if trivially_exact(crows) or not ordering_matters(res, col) or not _lid_bins(crows):
                continue
            panels.append((label, col, crows))
    return panels


def _lid_bins(rows: Iterable[DenseRow]) -> dict[int, dict[str, float | None]]:
    """Mean recall per query-LID bin over rows (seeds), keeping each bin's LID range and query count."""
    acc: dict[int, dict[str, list[float | None]]] = {}
    for r in rows:
        for entry in r.recall_by_lid_bin:
            slot = acc.setdefault(entry.bin, {"recall": [], "lo": [], "hi": [], "n": []})
            for key, value in (("recall", entry.recall), ("lo", entry.lo), ("hi", entry.hi), ("n", entry.n)):
                slot[key].append(value)
    return {b: {key: mean(vals) for key, vals in slot.items()} for b, slot in sorted(acc.items())}


def _bin_label(b: int, info: Mapping[str, float | None]) -> str:
    lo, hi = info.get("lo"), info.get("hi")
    if lo is None or hi is None:
        return f"bin {b + 1}"
    return f"bin {b + 1} (LID {lo:.1f}–{hi:.1f})"


def _lid_bin_figure(res: Results, panels: list[tuple[str, ColKey, list[DenseRow]]]) -> Figure | None:
    panels, capped = cap(panels, MAX_PANELS // 2)

    def draw() -> MplFigure:
        fig, axes = grid(len(panels), sharey=False)
        ncols = min(3, len(panels))
        for idx, (ax, (label, col, crows)) in enumerate(zip(axes, panels, strict=True)):
            bins_all = _lid_bins(crows)
            xs = list(range(len(bins_all)))
            for ordering in res.orderings:
                bins = _lid_bins(by(crows, "ordering", ordering))
                ys = [bins.get(b, {}).get("recall") for b in bins_all]
                if all(y is None for y in ys):
                    continue
                color, marker = ordering_style(res, ordering)
                ax.plot(xs, [np.nan if y is None else y for y in ys], color=color, marker=marker,
                        label=str(ordering))  # fmt: skip
            ticks = []
            for b, info in bins_all.items():
                lo, hi = info.get("lo"), info.get("hi")
                ticks.append(f"{lo:.1f}–{hi:.1f}" if lo is not None and hi is not None else f"bin {b + 1}")
            ax.set_xticks(xs, ticks, rotation=20 if len(xs) > 4 else 0)
            ax.set_xlabel("query LID (bin range)")
            ax.set_title(res.col_label(col) + (f"\n{label}" if res.section_keys else ""))
            if idx % ncols == 0:
                ax.set_ylabel(f"recall@{res.k}")
        legend(fig, axes, title="insertion ordering")
        return fig

    return Figure(
        "Recall by query-LID bin (low to high LID, quantile bins), one line per insertion ordering, at "
        "each backend's smallest ef. High-LID queries are usually the hard ones." + capped,
        draw,
    )
