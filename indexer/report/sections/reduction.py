"""Dimensionality reduction: recall against the original and the reduced space, by dimensions kept."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from indexer.report import cells
from indexer.report.blocks import Block, Figure, Heading, Para, Section, Table, drawn
from indexer.report.figures import MARKERS, MAX_PANELS, PALETTE, cap, grid, legend
from indexer.report.results import GroupKey, Results, with_col
from indexer.report.values import mean, num

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure as MplFigure


def reduction_section(res: Results) -> Section | None:
    if len(res.distinct("reduction")) < 2:
        return None
    keys = [k for k in res.section_keys if k != "reduction"]
    blocks: list[Block] = [
        Para(
            f"Mean recall@{res.k} against exact kNN in the original space for each reduction; in "
            "parentheses, against exact kNN in the reduced space itself (what an index on the reduced "
            "vectors can at best find). Averaged over orderings and seeds; HNSW at its largest ef."
        )
    ]
    for label, srows in res.sections([r for r in res.dense if num(r.recall) is not None], keys=keys):
        cols = res.picked_columns(srows, highest=True)
        if keys:
            blocks.append(Heading(label))
        table = Table(["reduction", "dims"] + [res.col_label(c) for c in cols], [], left=1)
        for _, rrows in res.group(srows, ["reduction"]):
            line = [rrows[0].reduction, cells.count(mean(r.dims for r in rrows))]
            for col in cols:
                crows = with_col(res, rrows, col)
                recall = mean(r.recall for r in crows)
                within = mean(r.recall_within for r in crows)
                line.append(cells.f3(recall) + (f" ({within:.3f})" if within is not None else ""))
            table.rows.append(line)
        blocks.append(table)
    blocks += drawn(_dims_figure(res, keys))
    return Section("reductions", "Dimensionality reduction", blocks)


def _dims_figure(res: Results, keys: Sequence[GroupKey]) -> Figure | None:
    panels = []
    for label, srows in res.sections([r for r in res.dense if num(r.recall) is not None], keys=keys):
        for col in res.picked_columns(srows, highest=True):
            panels.append((label, col, with_col(res, srows, col)))
    if not panels:
        return None
    panels, capped = cap(panels, MAX_PANELS)
    families = list(dict.fromkeys(_family(r) for r in res.ordered("reduction", res.distinct("reduction"))))
    families = [f for f in families if f != "none"]

    def draw() -> MplFigure:
        fig, axes = grid(len(panels))
        ncols = min(3, len(panels))
        within_drawn = False
        for idx, (ax, (label, col, crows)) in enumerate(zip(axes, panels, strict=True)):
            all_dims: list[float] = []
            for i, fam in enumerate(families):
                frows = [r for r in crows if _family(r.reduction) == fam]
                pts = []
                for dims, drows in res.group(frows, ["dims"]):
                    d = num(dims[0])
                    if d is None:
                        continue
                    pts.append(
                        (
                            d,
                            mean(r.recall for r in drows),
                            mean(r.recall_within for r in drows),
                        )
                    )
                pts.sort()
                if not pts:
                    continue
                color, marker = PALETTE[i % len(PALETTE)], MARKERS[i % len(MARKERS)]
                xs = [p[0] for p in pts]
                all_dims += xs
                ax.plot(xs, [np.nan if p[1] is None else p[1] for p in pts], color=color, marker=marker,
                        label=fam)  # fmt: skip
                if any(p[2] is not None for p in pts):
                    within_drawn = True
                    ax.plot(xs, [np.nan if p[2] is None else p[2] for p in pts], color=color, linestyle=":",
                            linewidth=1.1, alpha=0.8)  # fmt: skip
            base = mean(r.recall for r in crows if r.reduction == "none")
            if base is not None:
                ax.axhline(base, color="0.4", linestyle="--", linewidth=1.0, label="no reduction")
            if all_dims:
                _dims_axis(ax, all_dims)
            ax.set_title(res.col_label(col) + (f"\n{label}" if keys else ""))
            if idx % ncols == 0:
                ax.set_ylabel(f"recall@{res.k}")
        if within_drawn:  # a legend entry for the dotted lines, which carry no label of their own
            axes[0].plot([], [], color="0.35", linestyle=":", label="vs the reduced space's exact kNN")
        legend(fig, axes, title="reduction")
        return fig

    return Figure(
        f"Recall@{res.k} against exact kNN in the original space as the reduced dimension grows, one line "
        "per reduction (solid); dotted: against the reduced space's own exact kNN; dashed: no reduction. "
        "Averaged over orderings and seeds, HNSW at its largest ef." + capped,
        draw,
    )


def _dims_axis(ax: Axes, dims: Sequence[float]) -> None:
    ds = sorted(set(dims))
    if min(ds) > 0 and max(ds) / min(ds) >= 8:
        ax.set_xscale("log", base=2)
    ax.set_xticks(ds, [f"{d:g}" for d in ds])
    ax.minorticks_off()
    ax.set_xlabel("dimensions kept")


def _family(reduction: Any) -> str:
    """'fft-low-64' -> 'fft-low': the reduction without its size, one line in a dims plot."""
    return re.sub(r"-\d+$", "", str(reduction))
