"""Where the lost recall goes: each cell's loss split by cause (indexer.engine.measure.LossSplit), as a table and
as a waterfall from recall 1.0 down to the cell's recall. Shown where something besides the graph can lose (a
quantized or reduced index, or rescoring): otherwise the graph takes it all and the recall tables say so."""

from __future__ import annotations

from typing import TYPE_CHECKING

from indexer.model.results import DenseRow
from indexer.report import cells
from indexer.report.blocks import Block, Figure, Heading, Para, Section, Table, drawn
from indexer.report.figures import MAX_PANELS, cap
from indexer.report.results import ConfigKey, Results, by
from indexer.report.values import mean

if TYPE_CHECKING:
    from matplotlib.figure import Figure as MplFigure

# the waterfall's colours: what the stored form loses, what the graph loses, what re-ranking wins back
COLOURS = {"representation": "#c0392b", "graph": "#e67e22", "rescore": "#27ae60"}


def _says_more_than_the_graph(rows: list[DenseRow]) -> bool:
    return any(r.precision != "f32" or r.reduction != "none" or r.recovered_by_rescore is not None for r in rows)


def loss_section(res: Results) -> Section | None:
    rows = [r for r in res.dense if r.loss_graph is not None or r.precision != "f32"]
    if not rows or not _says_more_than_the_graph(rows):
        return None
    blocks: list[Block] = [Para(
        f"Each cell's lost recall@{res.k} (against exact kNN on the original vectors), in points, by cause: the "
        "representation (exact search over what the index stores — its vectors reduced and/or quantized — against "
        "the original), the graph (the index against exact search over what it stores; against its answers "
        "without re-ranking where it re-ranks), and what re-ranking by the original vectors wins back. "
        "Representation + graph - recovered = 100 x (1 - recall). Empty where the index's stored form cannot be "
        "read back (lancedb's SQ codes). Means over seeds."
    )]
    for label, srows in res.sections(rows):
        if res.section_keys:
            blocks.append(Heading(label))
        blocks.append(_table(res, srows))
    blocks += drawn(_waterfall(res, rows))
    return Section("loss", "Where the lost recall goes", blocks)


def _table(res: Results, rows: list[DenseRow]) -> Table:
    table = Table(["backend", "precision", "bytes/vector", "ordering", "ef", "recall", "representation",
                   "graph", "recovered by rescore"], [], left=4,
                  caption="Points of recall lost to each cause")
    for config in res.configs(rows):
        for ordering in res.orderings:
            crows = [r for r in by(rows, "ordering", ordering) if res.config_of(r) == config]
            for ef in sorted({r.ef for r in crows}, key=lambda e: -1 if e is None else e):
                at = [r for r in crows if r.ef == ef]
                table.rows.append([
                    res.config_label(config), at[0].precision, cells.count(at[0].bytes_per_vector), str(ordering),
                    cells.MISSING if ef is None else str(ef), cells.f3(mean(r.recall for r in at)),
                    cells.pts(mean(r.loss_representation for r in at)), cells.pts(mean(r.loss_graph for r in at)),
                    cells.pts(mean(r.recovered_by_rescore for r in at))])
    return table


def _bars(res: Results, rows: list[DenseRow]) -> list[tuple[str, float, float, float, float]]:
    """Per configuration and ordering at its largest ef: (label, recall_stored, graph loss, recovered, recall)."""
    out = []
    for config in res.configs(rows):
        for ordering in res.orderings:
            crows = [r for r in by(rows, "ordering", ordering) if res.config_of(r) == config
                     and r.loss_graph is not None]
            efs = [r.ef for r in crows if r.ef is not None]
            at = [r for r in crows if r.ef == (max(efs) if efs else None)]
            stored, graph = mean(r.recall_stored for r in at), mean(r.loss_graph for r in at)
            recall = mean(r.recall for r in at)
            if stored is None or graph is None or recall is None:
                continue
            recovered = mean(r.recovered_by_rescore for r in at) or 0.0
            name = _label(res, config, ordering, at[0])
            out.append((name, stored, graph, recovered, recall))
    return out


def _label(res: Results, config: ConfigKey, ordering: str, row: DenseRow) -> str:
    where = "" if len(res.orderings) < 2 else f" {ordering}"
    stores = "" if row.precision == "f32" else f" {row.precision}"
    return f"{res.config_label(config)}{stores}{where}" + ("" if row.ef is None else f" ef={row.ef}")


def _waterfall(res: Results, rows: list[DenseRow]) -> Figure | None:
    bars, capped = cap(_bars(res, rows), MAX_PANELS * 4)
    if not bars:
        return None

    def draw() -> MplFigure:
        from matplotlib.figure import Figure as MplFigure

        fig = MplFigure(figsize=(8.5, 0.9 + 0.42 * len(bars)), layout="constrained")
        ax = fig.add_subplot()
        for y, (_, stored, graph, recovered, recall) in enumerate(bars):
            ax.barh(y, 1.0 - stored, left=stored, color=COLOURS["representation"],
                    label="representation" if y == 0 else "_")
            ax.barh(y, graph, left=stored - graph, color=COLOURS["graph"], label="graph" if y == 0 else "_")
            if recovered:
                ax.barh(y, recovered, left=recall - recovered, height=0.4, color=COLOURS["rescore"],
                        label="recovered by rescore")
            ax.plot([recall, recall], [y - 0.4, y + 0.4], color="black", linewidth=1.5)
        ax.set_yticks(range(len(bars)), [b[0] for b in bars])
        ax.invert_yaxis()
        low = min(min(b[1] - b[2], b[4]) for b in bars)
        ax.set_xlim(max(0.0, low - 0.05), 1.0)
        ax.set_xlabel(f"recall@{res.k} (black: the cell's recall)")
        ax.legend(loc="lower left", fontsize="small")
        return fig

    return Figure("From recall 1.0 down to each cell's recall at its largest ef: what the stored form loses (red), "
                  "what the graph loses (orange), and what re-ranking wins back (green)." + capped, draw)
