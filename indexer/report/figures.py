"""Figures: matplotlib drawn to SVG for inlining, and the style every figure of every report shares.

matplotlib is imported lazily, inside the drawing, so the Markdown and CSV never pay for it.
"""

from __future__ import annotations

import io
import math
import re
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from indexer.report.results import Results

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure as MplFigure


# Fixed colours and markers so one ordering looks the same in every plot of every report.
ORDERING_STYLE: dict[str, tuple[str, str]] = {
    "random": ("#4d4d4d", "o"),
    "given": ("#8c564b", "s"),
    "lid_asc": ("#1f77b4", "^"),
    "lid_desc": ("#d62728", "v"),
    "category": ("#2ca02c", "D"),
    "category_interleaved": ("#17becf", "P"),
    "cluster": ("#9467bd", "X"),
}
REPRESENTATION_COLORS = {"dense": "#1f77b4", "sparse": "#ff7f0e", "hybrid": "#2ca02c"}
PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
           "#bcbd22", "#17becf")  # fmt: skip
MARKERS = ("o", "s", "^", "v", "D", "P", "X", "*", "<", ">")
LINESTYLES = ("-", "--", ":", "-.")

_RC: dict[str, Any] = {
    "font.size": 9.0,
    "axes.titlesize": 9.5,
    "axes.labelsize": 9.0,
    "legend.fontsize": 9.0,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.alpha": 0.35,
    "grid.linewidth": 0.6,
    "lines.linewidth": 1.6,
    "lines.markersize": 5.0,
    "svg.fonttype": "none",  # text stays text: smaller and searchable
    "svg.hashsalt": "indexer-report",  # deterministic ids
    "font.family": "sans-serif",
    "font.sans-serif": ["DejaVu Sans", "Arial", "Helvetica"],
}


def render_svg(draw: Callable[[], MplFigure], prefix: str) -> str:
    """Draw, serialise as SVG, strip the XML prolog and metadata, and make its ids unique in the page."""
    import matplotlib

    with matplotlib.rc_context(_RC):  # type: ignore[arg-type]
        fig = draw()
        buf = io.StringIO()
        fig.savefig(buf, format="svg", metadata={"Date": None, "Creator": None}, bbox_inches="tight")
    text = buf.getvalue()
    text = text[text.index("<svg") :]
    text = re.sub(r"<metadata>.*?</metadata>", "", text, flags=re.S)
    ids = set(re.findall(r'\bid="([^"]+)"', text))
    if ids:
        pattern = re.compile(
            r'(id="|#)(' + "|".join(re.escape(i) for i in sorted(ids, key=len, reverse=True)) + r')(?=["\)])'
        )
        text = pattern.sub(lambda m: f"{m.group(1)}{prefix}{m.group(2)}", text)
    return text


T = TypeVar("T")
MAX_PANELS = 12  # beyond this a figure is slow to draw and too small to read; the tables hold all numbers


def cap(panels: list[T], limit: int) -> tuple[list[T], str]:
    """Keep the first `limit` panels and say so in the caption."""
    if len(panels) <= limit:
        return panels, ""
    return panels[:limit], f" Showing the first {limit} of {len(panels)} panels; the tables hold all results."


def grid(
    n: int, *, ncols_max: int = 3, panel_w: float = 3.9, panel_h: float = 2.9, sharey: bool = True
) -> tuple[MplFigure, list[Axes]]:
    from matplotlib.figure import Figure as MplFigure

    ncols = max(1, min(ncols_max, n))
    nrows = math.ceil(n / ncols)
    if ncols == 1:
        panel_w *= 1.6
    fig = MplFigure(figsize=(panel_w * ncols, panel_h * nrows + 0.45), layout="constrained")
    axes = list(fig.subplots(nrows, ncols, squeeze=False, sharey=sharey).flat)
    for ax in axes[n:]:
        ax.set_visible(False)
    return fig, axes[:n]


def legend(fig: MplFigure, axes: Sequence[Axes], title: str | None = None) -> None:
    """One legend for the whole figure, above the panels, without repeated entries."""
    handles: dict[str, Any] = {}
    for ax in axes:
        for h, label in zip(*ax.get_legend_handles_labels(), strict=True):
            if not label.startswith("_"):
                handles.setdefault(label, h)
    if handles:
        # As many columns as fit the figure's width (about 0.075 in per character at 9 pt).
        entry = 0.6 + 0.075 * max(len(label) for label in handles)
        ncols = max(1, min(len(handles), 7, int(fig.get_figwidth() // entry)))
        fig.legend(
            list(handles.values()), list(handles), loc="outside upper center",
            ncols=ncols, frameon=False, title=title,
        )  # fmt: skip


def ordering_style(res: Results, ordering: str) -> tuple[str, str]:
    if ordering in ORDERING_STYLE:
        return ORDERING_STYLE[ordering]
    i = res.orderings.index(ordering) if ordering in res.orderings else 0
    return PALETTE[i % len(PALETTE)], MARKERS[i % len(MARKERS)]


def fit_y(ax: Axes, values: Sequence[float], min_span: float = 0.05) -> None:
    """Fit the y range to the lines, not to the confidence bands (which may span the whole axis);
    never narrower than `min_span`, so noise of a few queries does not look like an effect."""
    if not values:
        return
    lo, hi = min(values), max(values)
    if hi - lo < min_span:
        mid = (lo + hi) / 2
        lo, hi = mid - min_span / 2, mid + min_span / 2
    pad = 0.08 * (hi - lo)
    ax.set_ylim(max(-0.005, lo - pad), min(1.005, hi + pad) if hi <= 1.0 else hi + pad)


def ef_axis(ax: Axes, efs: Sequence[float]) -> None:
    """A log axis when ef spans a wide range; ticks exactly at the measured ef values."""
    efs = sorted(set(efs))
    if not efs:
        return
    if min(efs) > 0 and max(efs) / min(efs) >= 8:
        ax.set_xscale("log", base=2)
    ax.set_xticks(efs, [f"{e:g}" for e in efs])
    ax.minorticks_off()
    ax.set_xlabel("ef (search)")
