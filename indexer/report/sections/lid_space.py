"""Intrinsic dimensionality: the LID of base and queries, and how uniformly each space is used."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

import numpy as np

from indexer.model.results import Distribution, RunExtras
from indexer.report import cells
from indexer.report.blocks import Block, Figure, Heading, Para, Pre, Section, Table, drawn
from indexer.report.figures import PALETTE, grid, legend
from indexer.report.results import Results
from indexer.report.values import num

if TYPE_CHECKING:
    from matplotlib.figure import Figure as MplFigure


def lid_section(res: Results, extras: RunExtras, highlights: list[str]) -> Section | None:
    blocks: list[Block] = []
    stats_keys = ("median", "mean", "p10", "p90", "n")
    sets, where = _lid_sets(extras)
    if sets:
        blocks.append(
            Para(
                f"Pointwise local intrinsic dimensionality (maximum-likelihood estimate from the "
                f"{res.spec.lid.k} nearest neighbours) of the base vectors and the queries"
                + (f", in space {where}." if where else ".")
            )
        )
        blocks += [Para(
            f"Base LID in space {name} from an HNSW kNN graph ({summary.n:,} points); against exact LID on a "
            f"seeded sample: median relative error {cells.f3(summary.lid_median_relative_error)}, Spearman rank "
            f"correlation {cells.f3(summary.lid_rank_correlation)}.")
            for name, summary in extras.space.items() if summary.lid_method == "approximate"]
        present = [k for k in stats_keys if any(num(getattr(s, k)) is not None for s in sets.values())]
        table = Table(["points"] + present, [])
        for name, s in sets.items():
            table.rows.append(
                [name]
                + [cells.count(num(s.n)) if k == "n" else cells.f2(num(getattr(s, k))) for k in present]
            )
        blocks.append(table)
        medians = [f"{name} {cells.f2(num(s.median))}" for name, s in sets.items() if num(s.median)]
        if medians:
            highlights.append("Median pointwise LID: " + ", ".join(medians) + ".")
        for name, s in sets.items():
            hist = _histogram(s)
            if hist is not None:
                blocks.append(Pre(f"LID histogram, {name}\n" + _text_histogram(*hist), only="md"))
        blocks += drawn(_lid_figure(sets))
    columns = [(key, header) for key, header in SPACE_COLUMNS
               if any(_space_number(getattr(s, key)) is not None for s in extras.space.values())]
    if extras.space and columns:
        table = Table(["space"] + [header for _, header in columns], [])
        for name, summary in extras.space.items():
            table.rows.append([name] + [_space_value(key, getattr(summary, key)) for key, _ in columns])
        blocks += [
            Heading("How each space is used"),
            Para(
                "IsoScore: how uniformly the space's dimensions are used (1 = isotropic). Relative contrast: "
                "mean distance over nearest-neighbour distance per query (near 1 means hard queries). LID "
                "medians per space."
            ),
            table,
        ]
    if not blocks:
        return None
    return Section("lid", "Intrinsic dimensionality", blocks)


def _lid_sets(extras: RunExtras) -> tuple[dict[str, Distribution], str]:
    """LID distributions of base and queries, in the first space measured."""
    for label, summary in extras.space.items():
        return {"base": summary.lid_base, "queries": summary.lid_queries}, label
    return {}, ""


# The space table's columns: a number, or a distribution shown by its median.
SPACE_COLUMNS = (
    ("dims", "dims"), ("n", "n"), ("isoscore", "isoscore"), ("lid_global", "lid global"),
    ("lid_base", "lid base (median)"), ("lid_queries", "lid queries (median)"),
    ("relative_contrast", "relative contrast (median)"),
)


def _space_number(value: float | int | Distribution) -> float | None:
    return num(value.median if isinstance(value, Distribution) else value)


def _space_value(key: str, value: float | int | Distribution) -> str:
    x = _space_number(value)
    if key in ("dims", "n"):
        return cells.count(x)
    return cells.f2(x) if "lid" in key else cells.f3(x)


def _histogram(stats: Distribution) -> tuple[list[float], list[float]] | None:
    hist = stats.histogram
    if hist is None or not hist.counts or len(hist.edges) != len(hist.counts) + 1:
        return None
    return [float(e) for e in hist.edges], [float(c) for c in hist.counts]


def _text_histogram(edges: list[float], counts: list[float], width: int = 40) -> str:
    """A bar chart in characters, for readers of the markdown."""
    while len(counts) > 24:  # merge neighbours until it fits a screen
        counts = [sum(counts[i : i + 2]) for i in range(0, len(counts), 2)]
        edges = edges[::2] if (len(edges) - 1) % 2 == 0 else edges[::2] + [edges[-1]]
    top = max(counts) or 1.0
    lines = []
    for lo, hi, c in zip(edges[:-1], edges[1:], counts, strict=True):
        bar = "█" * int(round(c / top * width))
        lines.append(f"{lo:8.2f} – {hi:8.2f} │{bar} {c:,.0f}")
    return "\n".join(lines)


def _lid_figure(sets: Mapping[str, Distribution]) -> Figure | None:
    hists = {name: h for name, s in sets.items() if (h := _histogram(s)) is not None}
    if not hists:
        return None

    def draw() -> MplFigure:
        fig, (ax,) = grid(1, panel_h=2.8)
        for i, (name, (edges, counts)) in enumerate(hists.items()):
            total = sum(counts) or 1.0
            widths = np.diff(edges)
            density = [c / total / w if w > 0 else 0.0 for c, w in zip(counts, widths, strict=True)]
            color = PALETTE[i % len(PALETTE)]
            ax.stairs(density, edges, color=color, linewidth=1.8, label=name)
            ax.stairs(density, edges, color=color, alpha=0.12, fill=True)
            median = num(sets[name].median)
            if median is not None:
                ax.axvline(median, color=color, linestyle=":", linewidth=1.2)
        ax.set_xlabel("pointwise LID (MLE)")
        ax.set_ylabel("density")
        legend(fig, [ax])
        return fig

    return Figure("Distribution of pointwise LID (dotted: medians).", draw)
