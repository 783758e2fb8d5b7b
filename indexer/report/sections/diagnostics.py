"""Graph diagnostics: where an ordering strands points (unreachable, no in-links), how skewed the graph's
in-degrees are against the data's own hubness, and how often a point's own vector misses it."""

from __future__ import annotations

from typing import TYPE_CHECKING

from indexer.model.results import DenseRow, GroupDiagnostics
from indexer.report import cells
from indexer.report.blocks import Block, Figure, Heading, Para, Section, Table, drawn, fold
from indexer.report.figures import MAX_PANELS, cap, grid, legend, ordering_style
from indexer.report.results import ConfigKey, Results, by
from indexer.report.values import mean

if TYPE_CHECKING:
    from matplotlib.figure import Figure as MplFigure

TARGET = 0.95


def diagnostics_section(res: Results) -> Section | None:
    rows = [r for r in res.dense if r.self_miss is not None and r.ef is not None]  # exact search misses nothing
    if not rows:
        return None
    blocks: list[Block] = [Para(
        "Per built index (means over seeds): base points that no search can reach on layer 0 from the entry "
        "point, points no layer-0 link points to, the layer-0 in-degree distribution and its skewness (graph "
        "hubness) beside the skewness of the data's exact k-occurrence (data hubness), the share of sampled "
        "base points whose own vector does not return them first (self-miss) at the smallest and largest ef, "
        f"and the ef needed for recall {TARGET:g}. Graph figures only for backends that expose their graph."
    )]
    details: list[Block] = []
    for label, srows in res.sections(rows):
        if res.section_keys:
            blocks.append(Heading(label))
        table = Table(["backend", "ordering", "unreachable", "no in-links", "in-degree p1 / median / p99 / max",
                       "graph hubness", "data hubness", "self-miss (low ef)", "self-miss (high ef)",
                       "recall (low ef)", f"ef for {TARGET:g}"], [], left=2)
        for config in res.configs(srows):
            for ordering in res.orderings:
                crows = [r for r in by(srows, "ordering", ordering) if res.config_of(r) == config]
                if crows:
                    table.rows.append(_line(res, config, str(ordering), crows))
                    details += _groups(res, config, str(ordering), crows)
        blocks.append(table)
    blocks += drawn(_self_miss_figure(res, rows))
    if details:
        blocks.append(fold(details, "Diagnostics by category and by base-LID bin, at the smallest ef"))
    return Section("diagnostics", "Why recall is lost: graph diagnostics", blocks)


def _self_miss_figure(res: Results, rows: list[DenseRow]) -> Figure | None:
    """Self-miss by group (category, else base-LID bin) at the smallest ef, a line per ordering, a panel
    per backend: where in the data an ordering leaves points its own search cannot find."""
    panels = []
    for config in res.configs(rows):
        crows = [r for r in rows if res.config_of(r) == config]
        efs = sorted({r.ef for r in crows if r.ef is not None})
        low = [r for r in crows if r.ef == efs[0]] if efs else []
        kind, get = ("category", _by_category) if any(r.diagnostics_by_category for r in low) else (
            "base-LID bin", _by_lid_bin)
        if any(get(r) for r in low):
            panels.append((config, kind, get, low, efs[0]))
    if not panels:
        return None
    panels, capped = cap(panels, MAX_PANELS)

    def draw() -> MplFigure:
        fig, axes = grid(len(panels), sharey=False)
        for ax, (config, kind, get, low, ef) in zip(axes, panels, strict=True):
            groups = list(dict.fromkeys(g.group for r in low for g in get(r)))
            for ordering in res.orderings:
                orows = by(low, "ordering", ordering)
                values = [mean(g.self_miss for r in orows for g in get(r) if g.group == name) for name in groups]
                if all(v is None for v in values):
                    continue
                color, marker = ordering_style(res, ordering)
                ax.plot(range(len(groups)), [float("nan") if v is None else v for v in values], color=color,
                        marker=marker, label=str(ordering))
            ax.set_xticks(range(len(groups)), [g if len(g) <= 18 else g[:17] + "…" for g in groups], rotation=30,
                          ha="right")
            ax.set_xlabel(kind)
            ax.set_ylabel(f"self-miss at ef={ef}")
            ax.set_title(res.config_label(config))
        legend(fig, axes, title="insertion ordering")
        return fig

    return Figure("Share of base points whose own vector does not find them first, by group, at each backend's "
                  "smallest ef: one line per insertion ordering." + capped, draw)


def _line(res: Results, config: ConfigKey, ordering: str, rows: list[DenseRow]) -> list[str]:
    efs = sorted({r.ef for r in rows if r.ef is not None})
    low = [r for r in rows if r.ef == (efs[0] if efs else None)]
    high = [r for r in rows if r.ef == (efs[-1] if efs else None)]
    graphs = [r.graph for r in low if r.graph is not None]
    degree = (" / ".join(cells.count(mean(getattr(g.in_degree, f) for g in graphs))
                         for f in ("p1", "median", "p99", "max")) if graphs else cells.MISSING)
    ef95 = [c.ef for r in low for c in r.cost_at_recall if c.target == TARGET]
    return [
        res.config_label(config), ordering,
        cells.count(mean(g.unreachable for g in graphs)) if graphs else cells.MISSING,
        cells.count(mean(g.zero_in_degree for g in graphs)) if graphs else cells.MISSING,
        degree,
        cells.f2(mean(g.hubness for g in graphs)) if graphs else cells.MISSING,
        cells.f2(mean(g.data_hubness for g in graphs)) if graphs else cells.MISSING,
        cells.f3(mean(r.self_miss for r in low)), cells.f3(mean(r.self_miss for r in high)),
        cells.f3(mean(r.recall for r in low)),
        ("not reached" if any(e is None for e in ef95) else cells.count(mean(ef95))) if ef95 else cells.MISSING,
    ]


def _groups(res: Results, config: ConfigKey, ordering: str, rows: list[DenseRow]) -> list[Block]:
    efs = sorted({r.ef for r in rows if r.ef is not None})
    low = [r for r in rows if r.ef == (efs[0] if efs else None)]
    out: list[Block] = []
    for kind, get in (("category", _by_category), ("base-LID bin", _by_lid_bin)):
        groups: dict[str, list[GroupDiagnostics]] = {}
        for r in low:
            for g in get(r):
                groups.setdefault(g.group, []).append(g)
        if not groups:
            continue
        table = Table([kind, "points", "unreachable", "no in-links", "self-miss"], [],
                      caption=f"{res.config_label(config)} · {ordering}")
        for name, gs in groups.items():
            table.rows.append([name, cells.count(mean(g.size for g in gs)), cells.f3(mean(g.unreachable for g in gs)),
                               cells.f3(mean(g.zero_in_degree for g in gs)), cells.f3(mean(g.self_miss for g in gs))])
        out.append(table)
    return out


def _by_category(row: DenseRow) -> list[GroupDiagnostics]:
    return row.diagnostics_by_category


def _by_lid_bin(row: DenseRow) -> list[GroupDiagnostics]:
    return row.diagnostics_by_lid_bin
