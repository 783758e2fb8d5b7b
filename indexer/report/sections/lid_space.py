"""Intrinsic dimensionality: the LID of base and queries, and how uniformly each space is used."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from indexer.report import cells
from indexer.report.blocks import Block, Figure, Heading, Para, Pre, Section, Table
from indexer.report.figures import PALETTE, grid, legend
from indexer.report.results import Results
from indexer.report.values import num

if TYPE_CHECKING:
    from matplotlib.figure import Figure as MplFigure


def lid_section(res: Results, extras: Mapping[str, Any], highlights: list[str]) -> Section | None:
    space = extras.get("space")
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
        present = [k for k in stats_keys if any(num(s.get(k)) is not None for s in sets.values())]
        table = Table(["points"] + present, [])
        for name, s in sets.items():
            table.rows.append(
                [name]
                + [cells.count(num(s.get(k))) if k == "n" else cells.f2(num(s.get(k))) for k in present]
            )
        blocks.append(table)
        medians = [
            f"{name} {cells.f2(num(s.get('median')))}" for name, s in sets.items() if num(s.get("median"))
        ]
        if medians:
            highlights.append("Median pointwise LID: " + ", ".join(medians) + ".")
        for name, s in sets.items():
            hist = _histogram(s)
            if hist is not None:
                blocks.append(Pre(f"LID histogram, {name}\n" + _text_histogram(*hist), only="md"))
        figure = _lid_figure(sets)
        if figure is not None:
            blocks.append(figure)
    stats = (
        {str(k): v for k, v in space.items() if isinstance(v, Mapping)} if isinstance(space, Mapping) else {}
    )
    columns = _space_columns(list(stats.values()))
    if stats and columns:
        table = Table(["space"] + [header for _, header in columns], [])
        for name, entry in stats.items():
            table.rows.append([name] + [_space_value(key, entry.get(key)) for key, _ in columns])
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


def _lid_sets(extras: Mapping[str, Any]) -> tuple[dict[str, Mapping[str, Any]], str]:
    """LID distributions of base and queries: `extras["lid"]`, else those of the first space measured."""
    lid = extras.get("lid")
    if isinstance(lid, Mapping):
        sets = {str(name): v for name, v in lid.items() if isinstance(v, Mapping)}
        if sets:
            return sets, ""
    space = extras.get("space")
    if isinstance(space, Mapping):
        for label, entry in space.items():
            if isinstance(entry, Mapping):
                sets = {
                    name: entry[key]
                    for name, key in (("base", "lid_base"), ("queries", "lid_queries"))
                    if isinstance(entry.get(key), Mapping)
                }
                if sets:
                    return sets, str(label)
    return {}, ""


def _space_columns(stats: Sequence[Mapping[str, Any]]) -> list[tuple[str, str]]:
    """(key, header) for every number or distribution (shown by its median) the spaces report."""
    preferred = ["dims", "n", "isoscore", "lid_median", "lid_global", "lid_base", "lid_queries", "relative_contrast_median",
                 "relative_contrast"]  # fmt: skip
    found: dict[str, str] = {}
    for entry in stats:
        for key, value in entry.items():
            if num(value) is not None:
                found.setdefault(key, key.replace("_", " "))
            elif isinstance(value, Mapping) and num(value.get("median")) is not None:
                found.setdefault(key, f"{key.replace('_', ' ')} (median)")
    order = [k for k in preferred if k in found] + sorted(k for k in found if k not in preferred)
    return [(k, found[k]) for k in order]


def _space_value(key: str, value: Any) -> str:
    if isinstance(value, Mapping):
        value = value.get("median")
    x = num(value)
    if key in ("dims", "n"):
        return cells.count(x)
    return cells.f2(x) if "lid" in key else cells.f3(x)


def _histogram(stats: Mapping[str, Any]) -> tuple[list[float], list[float]] | None:
    hist = stats.get("histogram")
    if not isinstance(hist, Mapping):
        return None
    edges = [num(e) for e in hist.get("edges") or []]
    counts = [num(c) for c in hist.get("counts") or []]
    if not counts or len(edges) != len(counts) + 1 or any(v is None for v in edges + counts):
        return None
    return [float(e) for e in edges if e is not None], [float(c) for c in counts if c is not None]


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


def _lid_figure(sets: Mapping[str, Mapping[str, Any]]) -> Figure | None:
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
            median = num(sets[name].get("median"))
            if median is not None:
                ax.axvline(median, color=color, linestyle=":", linewidth=1.2)
        ax.set_xlabel("pointwise LID (MLE)")
        ax.set_ylabel("density")
        legend(fig, [ax])
        return fig

    return Figure("Distribution of pointwise LID (dotted: medians).", draw)
