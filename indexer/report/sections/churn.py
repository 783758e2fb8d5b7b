"""Churn: recall while an index lives, at every checkpoint of the spec's runbook (indexer.engine.churn).

A summary table (per cell and ef: mean recall over the checkpoints, the worst, the last and its gap to a fresh
index over the same points), then the checkpoint table: per checkpoint the points in the index, recall and its
interval, ids returned that are not in the index (must be 0), short answers, QPS, the graph's stranded live
points and their in-degrees where it is readable, the self-miss of sampled live points, the index's size and the
process's resident memory, and the fresh
index's recall where a baseline ran, with the ef each needs for the recall targets.

The figure puts the runbook itself on top, as a strip: the points in the index at each checkpoint, each span
coloured by what happened since the previous one (inserts, deletes, both); under it recall against the
checkpoint per ef (a line per backend entry, the fresh index over the same points dashed where a baseline ran),
the live points the graph no longer reaches, and the ef the live and the fresh index need for recall 0.95 (else
the highest target below 1): churn's price, drawn as the gap between a solid line and its dashed twin.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from indexer.model.results import ChurnFilteredRow, ChurnRow, ChurnSummary, EfAtTarget, RunExtras
from indexer.report import cells
from indexer.report.blocks import Block, Bullets, Figure, Para, Section, Table, drawn, fold
from indexer.report.figures import MAX_PANELS, PALETTE, cap, grid, legend

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure as MplFigure

MODES = {"tombstone": "marks deleted points, which keep routing", "repair": "inserts take deleted points' places",
         "compact": "removes deleted points from storage", "none": "cannot delete: a fresh index at every checkpoint"}


def _entry(backend: str, params: dict[str, object]) -> str:
    return f"{backend} {' '.join(f'{k}={v}' for k, v in sorted(params.items()))}".strip()


def churn_section(extras: RunExtras) -> Section | None:
    rows = extras.churn
    if not rows:
        return None
    modes = sorted({r.deletes for r in rows})
    blocks: list[Block] = [Para(
        "The runbook runs on one index per backend entry and seed; at each checkpoint the queries are searched at "
        "every ef and judged against exact kNN over the points in the index at that moment. Deletes: "
        + "; ".join(f"{m} {MODES.get(m, '')}".strip() for m in modes) + ".")]
    if extras.churn_summary:
        blocks.append(_summary_table(extras.churn_summary))
    blocks += drawn(_churn_figure(rows))
    if extras.churn_filtered:
        blocks.append(_filtered_table(extras.churn_filtered))
    blocks.append(fold([_checkpoint_table(rows)], "the checkpoints"))
    wrong = sorted({f"{r.backend} (step {r.step})" for r in rows if r.deleted_returned}
                   | {f"{r.backend} (step {r.step})" for r in extras.churn_filtered if r.deleted_returned})
    kept_out = sorted({f"{r.backend} {r.filter} (step {r.step})" for r in extras.churn_filtered if r.violations})
    if kept_out:
        blocks.append(Bullets([f"Returned ids their filter does not keep: {', '.join(kept_out)}."]))
    if wrong:
        blocks.append(Bullets([f"Returned ids that are not in the index: {', '.join(wrong)}."]))
    return Section("churn", "Churn: recall while the index lives", blocks)


def _summary_table(summary: list[ChurnSummary]) -> Table:
    targets = sorted({t.target for s in summary for t in s.final_ef_at_target})
    table = Table(["backend", "seed", "ef", "checkpoints", "mean recall", "worst (step)", "final", "baseline",
                   "gap"] + [f"ef for {t:g}: live / fresh" for t in targets], [], left=3,
                  caption="per cell and ef: recall over the checkpoints, and the last one against a fresh index over "
                          "the same points; the ef each needs there for each recall target and its QPS there (- : not reached)")
    for s in summary:
        reach = {t.target: t for t in s.final_ef_at_target}
        table.rows.append([
            _entry(s.backend, dict(s.build_params)), str(s.seed), "-" if s.ef is None else str(s.ef),
            str(s.checkpoints), cells.f3(s.mean_recall),
            f"{cells.f3(s.worst_recall)} ({s.worst_step})", cells.f3(s.final_recall),
            cells.f3(s.final_baseline_recall), cells.f3(s.final_gap)]
            + [_reach(reach.get(t)) for t in targets])
    return table


def _reach(t: EfAtTarget | None) -> str:
    """`ef (QPS) live / ef (QPS) fresh` of one target (- where not reached or no fresh index)."""
    if t is None:
        return ""

    def one(ef: int | None, qps: float | None) -> str:
        return "-" if ef is None else f"{ef} ({cells.compact(qps)} QPS)"

    return f"{one(t.ef, t.qps)} / {one(t.baseline_ef, t.baseline_qps)}"


def _checkpoint_table(rows: list[ChurnRow]) -> Table:
    table = Table(["backend", "seed", "step", "operation", "ef", "live", "recall", "95% CI", "deleted returned",
                   "short", "QPS", "unreachable", "zero in-degree", "in-degree min / median / max", "self-miss", "index",
                   "RSS", "fresh recall", "fresh QPS"], [],
                  left=4,
                  caption="every checkpoint: recall against exact kNN over the live points")
    for r in rows:
        step = f"{r.step}" if r.batch is None else f"{r.step}.{r.batch}"
        ci = " – ".join(cells.f3(v) for v in r.recall_ci95)
        table.rows.append([
            _entry(r.backend, dict(r.build_params)), str(r.seed), step, r.operation,
            "-" if r.ef is None else str(r.ef), str(r.live), cells.f3(r.recall), ci, str(r.deleted_returned),
            str(r.short_results), cells.compact(r.qps), "-" if r.unreachable is None else str(r.unreachable),
            "-" if r.zero_in_degree is None else str(r.zero_in_degree),
            "-" if r.in_degree is None else f"{r.in_degree.min:g} / {r.in_degree.median:g} / {r.in_degree.max:g}",
            cells.f3(r.self_miss), "-" if r.index_bytes is None else f"{r.index_bytes / 2**20:,.1f} MiB",
            "-" if r.rss_bytes is None else f"{r.rss_bytes / 2**20:,.0f} MiB", cells.f3(r.baseline_recall),
            "-" if r.baseline_qps is None else cells.compact(r.baseline_qps)])
    return table


def _checkpoint_name(r: ChurnRow) -> str:
    return f"{r.step}" if r.batch is None else f"{r.step}.{r.batch}"


def _runbook_strip(ax: Axes, rows: list[ChurnRow]) -> None:
    """The runbook as its checkpoints saw it: live points per checkpoint, each span coloured by what happened
    since the one before (from the cumulative insert and delete counts of one cell's rows)."""
    colours = {"insert": "#2ca02c", "delete": "#d62728", "insert and delete": "#ff7f0e", "search only": "#bbbbbb"}
    before = (0, 0)
    for i, r in enumerate(rows):
        added, removed = r.inserted - before[0], r.deleted - before[1]
        kind = ("insert and delete" if added and removed else "insert" if added else "delete" if removed
                else "search only")
        ax.bar(i, r.live, width=0.9, color=colours[kind], label=kind)
        before = (r.inserted, r.deleted)
    ax.set_ylabel("points in the index")
    ax.set_title("the runbook (since the previous checkpoint)")


def _churn_figure(rows: list[ChurnRow]) -> Figure | None:
    """The runbook strip, recall per ef, unreachable live points, and ef for the highest target below 1 (module
    doc); lines are means over seeds, per backend entry."""
    entries: dict[str, list[ChurnRow]] = defaultdict(list)
    for r in rows:
        entries[_entry(r.backend, dict(r.build_params))].append(r)
    first = next(iter(entries.values()))
    names = list(dict.fromkeys(_checkpoint_name(r) for r in first))
    if len(names) < 2:
        return None
    efs, note = cap(list(dict.fromkeys(r.ef for r in rows)), MAX_PANELS - 3)
    graphs = any(r.unreachable is not None for r in rows)
    targets = sorted({t.target for r in rows for t in r.ef_at_target if t.target < 1.0})
    target = 0.95 if 0.95 in targets else (targets[-1] if targets else None)  # the unit: ef for 0.95
    x = np.arange(len(names))

    def series(mine: list[ChurnRow], value: Callable[[ChurnRow], float | int | None]) -> list[float]:
        out = []
        for name in names:
            picked = [value(r) for r in mine if _checkpoint_name(r) == name]
            got = [float(v) for v in picked if v is not None and not np.isnan(v)]
            out.append(float(np.mean(got)) if got else np.nan)
        return out

    def reach(r: ChurnRow, fresh: bool) -> float | None:
        for t in r.ef_at_target:
            if t.target == target:
                return t.baseline_ef if fresh else t.ef
        return None

    def draw() -> MplFigure:
        count = 1 + len(efs) + int(graphs) + int(target is not None)
        fig, axes = grid(count, sharey=False)
        one_cell = [r for r in first if r.cell == first[0].cell and r.ef == first[0].ef]
        _runbook_strip(axes[0], one_cell)
        for i, (label, mine) in enumerate(entries.items()):
            colour = PALETTE[i % len(PALETTE)]
            for p, ef in enumerate(efs, start=1):
                at = [r for r in mine if r.ef == ef]
                if not at:
                    continue
                axes[p].plot(x, series(at, lambda r: r.recall), color=colour, marker="o", label=label)
                if any(r.baseline_recall is not None for r in at) and at[0].deletes != "none":
                    axes[p].plot(x, series(at, lambda r: r.baseline_recall), color=colour, linestyle="--",
                                 marker="x")
            top = [r for r in mine if r.ef == mine[0].ef]
            if graphs and any(r.unreachable is not None for r in top):
                axes[1 + len(efs)].plot(x, series(top, lambda r: r.unreachable), color=colour, marker="o",
                                        label=label)
            if target is not None and any(r.ef_at_target for r in top):
                ax = axes[-1]
                ax.plot(x, series(top, lambda r: reach(r, False)), color=colour, marker="o", label=label)
                if top[0].deletes != "none":
                    ax.plot(x, series(top, lambda r: reach(r, True)), color=colour, linestyle="--", marker="x")
        for p, ef in enumerate(efs, start=1):
            axes[p].set_title("recall" + ("" if ef is None else f" at ef {ef}"))
            axes[p].set_ylabel("recall@k (live points)")
        if graphs:
            axes[1 + len(efs)].set_title("live points unreachable on layer 0")
        if target is not None:
            axes[-1].set_title(f"ef for recall {target:g}: live (solid), fresh (dashed)")
            axes[-1].set_yscale("log")
        for ax in axes:
            ax.set_xticks(x, names, rotation=90 if len(names) > 12 else 0)
            ax.set_xlabel("checkpoint (after step)")
        legend(fig, axes, title="backend entry; dashed: a fresh index over the same points")
        return fig

    return Figure("The runbook on top (points in the index per checkpoint, coloured by what happened since the one "
                  "before), then recall against the checkpoint per ef, live points the graph no longer reaches, and "
                  "the ef each index needs for recall 0.95: solid the churned index, dashed a fresh "
                  "one over the same points (mean over seeds)." + note, draw)


def _filtered_table(rows: list[ChurnFilteredRow]) -> Table:
    """Per backend entry (and filter mode), filter and selectivity, at its largest ef: filtered recall at each
    checkpoint (mean over seeds), answers short of min(k, kept live points) marked."""
    names = list(dict.fromkeys(_name(r) for r in rows))
    lines: dict[tuple[str, str, str], list[ChurnFilteredRow]] = defaultdict(list)
    for r in rows:
        entry = _entry(r.backend, dict(r.build_params)) + ("" if r.filter_mode is None else f" {r.filter_mode}")
        sel = r.filter if r.selectivity is None else f"{r.filter} {r.selectivity:g}"
        lines[(entry, r.strategy, sel)].append(r)
    table = Table(["backend", "strategy", "filter", "ef"] + [f"after {n}" for n in names], [], left=4,
                  caption="filtered recall against exact filtered kNN over the live points, per checkpoint, at each "
                          "entry's largest ef (mean over seeds; † some answers short)")
    for (entry, strategy, sel), mine in lines.items():
        top = max((r.ef for r in mine if r.ef is not None), default=None)
        at = [r for r in mine if r.ef == top]
        cells_ = []
        for n in names:
            here = [r for r in at if _name(r) == n]
            got = [float(r.recall) for r in here if r.recall is not None]
            mark = " †" if any(r.short_results for r in here) else ""
            cells_.append((cells.f3(float(np.mean(got))) if got else "-") + mark)
        table.rows.append([entry, strategy, sel, "-" if top is None else str(top), *cells_])
    return table


def _name(r: ChurnRow | ChurnFilteredRow) -> str:
    return f"{r.step}" if r.batch is None else f"{r.step}.{r.batch}"
