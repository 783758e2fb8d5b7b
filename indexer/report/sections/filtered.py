"""Filtered search: what each system returns when the queries carry a filter, grouped by how it filters.

One table per filter workload: a line per (backend and its filter mode, build parameters, strategy, ordering,
ef) and a column per selectivity (or one, for a label filter), each cell giving recall against exact filtered
kNN, the answers shorter than min(k, kept points) and the QPS; where the library counts them, a table of the
distance computations per query; a backend that returned an id its filter does not keep is named apart (it
must never happen). A backend with several filter modes (pgvector's iterative scans, lancedb's postfilter,
qdrant_edge's forced graph and ACORN) has a line per mode, labelled `pgvector relaxed_order`.
"""

from __future__ import annotations

from collections import defaultdict
from typing import TYPE_CHECKING

import numpy as np

from indexer.model.results import FilteredRow, RunExtras
from indexer.report import cells
from indexer.report.blocks import Block, Bullets, Figure, Para, Section, Table, drawn
from indexer.report.figures import PALETTE, grid, legend
from indexer.report.values import mean

if TYPE_CHECKING:
    from matplotlib.figure import Figure as MplFigure

STRATEGIES = {"in_graph": "in the graph search", "pre": "before the search (brute force over the kept points)",
              "post": "after an unfiltered search, widened until k pass", "iterative": "by an iterative scan"}


def filtered_section(extras: RunExtras) -> Section | None:
    rows = extras.filtered
    if not rows:
        return None
    blocks: list[Block] = [Para(
        "Each dense cell also answers its queries under each filter; recall is against exact kNN among the "
        "points the filter keeps (of min(k, kept points) per query, from the returned ids alone). Each cell: "
        "recall · answers short of that · QPS (one pass, queries sharing a filter searched together). "
        "Strategies: " + "; ".join(f"{name} filters {what}" for name, what in STRATEGIES.items()) + ".")]
    by_filter: dict[str, list[FilteredRow]] = defaultdict(list)
    for row in rows:
        by_filter[row.filter].append(row)
    for name, group in by_filter.items():
        sels = sorted({r.selectivity for r in group}, key=lambda s: -(s or 2.0))
        kept = {s: mean(r.kept for r in group if r.selectivity == s) for s in sels}
        headers = ["backend", "strategy", "ordering", "ef"] + [
            group[0].filter_kind if s is None else f"{s:g} (kept {cells.f3(kept[s])})" for s in sels]
        table = Table(headers, [], left=4, caption=f"filter {name} ({group[0].filter_kind}): "
                                                  "recall · short answers · QPS, by selectivity")
        lines: dict[tuple[str, str, str, str], dict[float | None, list[FilteredRow]]] = defaultdict(
            lambda: defaultdict(list))
        for r in group:
            key = (_backend(r), r.strategy, r.ordering, "-" if r.ef is None else str(r.ef))
            lines[key][r.selectivity].append(r)
        for key, per_sel in lines.items():
            table.rows.append(list(key) + [_cell(per_sel.get(s, [])) for s in sels])
        blocks.append(table)
        cost = _cost_table(name, group, sels)
        if cost is not None:
            blocks.append(cost)
        distances = _distance_table(name, group, sels)
        if distances is not None:
            blocks.append(distances)
    blocks += drawn(_selectivity_figure(rows))
    wrong = sorted({f"{_mode(r)} ({r.filter})" for r in rows if r.violations})
    if wrong:
        blocks.append(Bullets([f"Returned ids their filter does not keep: {', '.join(wrong)}."]))
    empty = sorted({f"{r.filter} at {r.selectivity:g}" for r in rows if r.queries_without_match and r.selectivity})
    if empty:
        blocks.append(Bullets([f"Queries whose filter keeps no indexed point (left out of recall): {', '.join(empty)}."]))
    return Section("filtered", "Filtered search", blocks)


def _mode(r: FilteredRow) -> str:
    """The backend and its filter mode, where it has several: `pgvector relaxed_order`."""
    return r.backend if r.filter_mode is None else f"{r.backend} {r.filter_mode}"


def _backend(r: FilteredRow) -> str:
    """A table line's backend: with its filter mode and build parameters."""
    params = " ".join(f"{k}={v}" for k, v in sorted(r.build_params.items()))
    return f"{_mode(r)} {params}".strip()


MEASURES = (("recall", "filtered recall"), ("short", "share of answers short"), ("qps", "QPS (log)"))


def _selectivity_figure(rows: list[FilteredRow]) -> Figure | None:
    """Per filter with selectivities, a row of three panels against selectivity (log): recall, the share of
    answers that came back short, and QPS; a line per backend (and filter mode) at its largest ef (mean over
    orderings and seeds), the lines ordered by strategy so each strategy's systems sit together."""
    panels = sorted({r.filter for r in rows if r.selectivity is not None})
    if not panels:
        return None

    def values(at: list[FilteredRow], sels: list[float], measure: str) -> list[float]:
        out: list[float] = []
        for s in sels:
            mine = [r for r in at if r.selectivity == s]
            if measure == "recall":
                got = [float(r.recall) for r in mine if r.recall is not None]
                out.append(float(np.mean(got)) if got else np.nan)
            elif measure == "short":
                out.append(float(np.mean([r.short_results / max(r.queries, 1) for r in mine])))
            else:
                out.append(float(np.mean([r.qps for r in mine])))
        return out

    def draw() -> MplFigure:
        fig, axes = grid(len(panels) * len(MEASURES), sharey=False)
        for p, name in enumerate(panels):
            mine = [r for r in rows if r.filter == name]
            backends = sorted(dict.fromkeys(_mode(r) for r in mine),
                              key=lambda b: next(r.strategy for r in mine if _mode(r) == b))
            for i, backend in enumerate(backends):
                theirs = [r for r in mine if _mode(r) == backend]
                top = max((r.ef for r in theirs if r.ef is not None), default=None)
                at = [r for r in theirs if r.ef == top]
                sels = sorted({r.selectivity for r in at if r.selectivity is not None})
                strategy = theirs[0].strategy
                label = f"{backend} ({strategy})" if top is None else f"{backend} ({strategy}, ef {top})"
                for m, (measure, _) in enumerate(MEASURES):
                    axes[p * len(MEASURES) + m].plot(sels, values(at, sels, measure), color=PALETTE[i % len(PALETTE)],
                                                     marker="o", label=label)
            for m, (measure, title) in enumerate(MEASURES):
                ax = axes[p * len(MEASURES) + m]
                ax.set_xscale("log")
                if measure == "qps":
                    ax.set_yscale("log")
                ax.set_xlabel("selectivity (share kept)")
                ax.set_ylabel(title)
                ax.set_title(f"filter {name} ({mine[0].filter_kind})")
        legend(fig, axes, title="backend (strategy, ef)")
        return fig

    return Figure("Against selectivity (log), a row per filter: filtered recall, the share of answers that came "
                  "back with fewer than min(k, kept) ids, and QPS; one line per backend (and filter mode) at its "
                  "largest ef, grouped by strategy.", draw)


def _cost_table(name: str, group: list[FilteredRow], sels: list[float | None]) -> Table | None:
    """The cost to win recall back under the filter: the ef reaching the target (0.95 where the spec asks
    for it) per backend and selectivity, from the cells' own search for it (validation and held-out halves)."""
    targets = sorted({c.target for r in group for c in r.cost_at_recall})
    if not targets:
        return None
    target = 0.95 if 0.95 in targets else targets[0]
    table = Table(["backend", "strategy", "ordering"] + [group[0].filter_kind if s is None else f"{s:g}" for s in sels], [],
                  left=3, caption=f"filter {name}: the ef reaching recall {target:g} (its held-out recall; "
                                  "* where the held-out half falls short)")
    lines: dict[tuple[str, str, str], dict[float | None, list[str]]] = defaultdict(lambda: defaultdict(list))
    for r in group:
        if r.ef is None:
            continue
        cell = next((c for c in r.cost_at_recall if c.target == target), None)
        if cell is None:
            continue
        text = ("not reached" if cell.ef is None else
                f"{cell.ef} ({cells.f3(cell.held_out_recall)}){'' if cell.confirmed else '*'}")
        per_seed = lines[(_backend(r), r.strategy, r.ordering)][r.selectivity]
        if text not in per_seed:
            per_seed.append(text)
    for key, per_sel in lines.items():
        table.rows.append(list(key) + [" / ".join(per_sel.get(s, [])) for s in sels])
    return table if table.rows else None


def _distance_table(name: str, group: list[FilteredRow], sels: list[float | None]) -> Table | None:
    """Distance computations per query under the filter, as the libraries that count them do (faiss), per
    backend, ordering and ef (mean over seeds); None when no row has them."""
    counted = [r for r in group if r.distances_per_query is not None]
    if not counted:
        return None
    table = Table(["backend", "strategy", "ordering", "ef"] + ["label" if s is None else f"{s:g}" for s in sels], [],
                  left=4, caption=f"filter {name}: distance computations per query (the library's own count)")
    lines: dict[tuple[str, str, str, str], dict[float | None, list[FilteredRow]]] = defaultdict(
        lambda: defaultdict(list))
    for r in counted:
        lines[(_backend(r), r.strategy, r.ordering, "-" if r.ef is None else str(r.ef))][r.selectivity].append(r)
    for key, per_sel in lines.items():
        table.rows.append(list(key) + [cells.compact(mean(r.distances_per_query for r in per_sel[s]))
                                       if per_sel.get(s) else "" for s in sels])
    return table


def _cell(rows: list[FilteredRow]) -> str:
    """Mean over seeds: recall · short answers · QPS."""
    if not rows:
        return ""
    short = mean(r.short_results for r in rows)
    return (f"{cells.f3(mean(r.recall for r in rows))} · {cells.count(short)} · "
            f"{cells.compact(mean(r.qps for r in rows))}")
