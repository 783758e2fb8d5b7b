"""Cost at equal recall: the ef, QPS and distance computations each ordering needs to reach a target recall,
and recall against QPS per backend with the Pareto front (the form in which an engineer decides)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from indexer.model.results import CostAtRecall, DenseRow
from indexer.report import cells
from indexer.report.blocks import Block, Figure, Heading, Para, Section, Table, drawn
from indexer.report.figures import MAX_PANELS, cap, grid, legend, ordering_style
from indexer.report.results import ConfigKey, Results, by
from indexer.report.values import mean

if TYPE_CHECKING:
    from matplotlib.figure import Figure as MplFigure

PREFERRED_TARGET = 0.95


def cost_section(res: Results) -> Section | None:
    rows = [r for r in res.dense if r.cost_at_recall]
    if not rows:
        return None
    targets = sorted({c.target for r in rows for c in r.cost_at_recall})
    target = PREFERRED_TARGET if PREFERRED_TARGET in targets else targets[len(targets) // 2]
    blocks: list[Block] = [Para(
        f"For each built index, the smallest ef that reaches each target recall@{res.k} (doubling from k, "
        "then bisection, on the same index), and the queries per second there; distance computations per "
        "query where the library counts them (faiss). The ef is chosen on the even-numbered queries and confirmed "
        "on the odd ones; where the odd ones fall short the cell says so, with the smallest ef both halves "
        "reach. Comparing orderings at equal recall compares their cost; "
        "at a fixed ef it compares different recalls. Means over seeds; – : not reached by ef "
        "min(index size, 4096)."
    )]
    for label, srows in res.sections(rows):
        if res.section_keys:
            blocks.append(Heading(label))
        configs = res.configs(srows)
        table = Table(["ordering"] + [res.config_label(c) for c in configs], [],
                      caption=f"Cost to reach recall {target:g}: ef · qps" + " · distances/query")
        for ordering in res.orderings:
            line = [str(ordering)]
            for config in configs:
                line.append(_cost_cell(_costs(res, by(srows, "ordering", ordering), config, target)))
            table.rows.append(line)
        blocks.append(table)
    blocks += drawn(_recall_qps_figure(res, rows))
    return Section("cost", "Cost at equal recall", blocks)


def _costs(res: Results, rows: list[DenseRow], config: ConfigKey, target: float) -> list[CostAtRecall]:
    """One cost per build (the first ef row of each cell carries the cell's costs)."""
    cells_seen: dict[str, CostAtRecall] = {}
    for r in rows:
        if res.config_of(r) == config:
            for c in r.cost_at_recall:
                if c.target == target:
                    cells_seen.setdefault(r.cell, c)
    return list(cells_seen.values())


def _cost_cell(costs: list[CostAtRecall]) -> str:
    if not costs:
        return cells.MISSING
    if any(c.ef is None for c in costs):
        return "not reached"
    ef, qps = mean(c.ef for c in costs), mean(c.qps for c in costs)
    dist = mean(c.distance_computations for c in costs)
    text = f"{cells.count(ef)} · {cells.compact(qps)}"
    text += f" · {cells.count(dist)}" if dist is not None else ""
    if any(c.confirmed is False for c in costs):  # the held-out half fell short at the chosen ef
        both = mean(c.ef_both_halves for c in costs)
        text += f" (not confirmed; both halves: ef {cells.count(both) if both is not None else 'none'})"
    return text


def _points(res: Results, rows: list[DenseRow]) -> list[tuple[float, float]]:
    """(recall, qps) of every measured setting: the ef sweep's rows and each target's cost."""
    pts = {(r.recall, r.qps) for r in rows if r.recall is not None}
    pts |= {(c.recall, c.qps) for r in rows for c in r.cost_at_recall if c.recall is not None and c.qps}
    return sorted((float(a), float(b)) for a, b in pts)


def pareto(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """The points no other point beats on both recall and QPS, by increasing recall."""
    front: list[tuple[float, float]] = []
    for recall, qps in sorted(points, key=lambda p: (-p[0], -p[1])):
        if not front or qps > front[-1][1]:
            front.append((recall, qps))
    return sorted(front)


def _recall_qps_figure(res: Results, rows: list[DenseRow]) -> Figure | None:
    panels = [(label, config, [r for r in srows if res.config_of(r) == config])
              for label, srows in res.sections(rows) for config in res.configs(srows)]
    if not panels:
        return None
    panels, capped = cap(panels, MAX_PANELS)

    def draw() -> MplFigure:
        fig, axes = grid(len(panels), sharey=False)
        for ax, (label, config, crows) in zip(axes, panels, strict=True):
            every: list[tuple[float, float]] = []
            for ordering in res.orderings:
                pts = _points(res, by(crows, "ordering", ordering))
                if not pts:
                    continue
                every += pts
                color, marker = ordering_style(res, ordering)
                ax.plot([p[0] for p in pts], [p[1] for p in pts], color=color, marker=marker, label=str(ordering))
            front = pareto(every)
            if len(front) > 1:
                ax.plot([p[0] for p in front], [p[1] for p in front], color="black", linestyle="--", linewidth=1.0,
                        label="Pareto front", zorder=0)
            ax.set_yscale("log")
            ax.set_xlabel(f"recall@{res.k}")
            ax.set_ylabel("queries per second")
            ax.set_title(res.config_label(config) + (f"\n{label}" if res.section_keys else ""))
        legend(fig, axes, title="insertion ordering")
        return fig

    return Figure(
        f"Recall@{res.k} against queries per second (log), one line per insertion ordering over the ef sweep and "
        "the ef found for each target; dashed: the Pareto front over all orderings." + capped, draw)
