"""Churn: recall while an index lives, at every checkpoint of the spec's runbook (indexer.engine.churn).

A summary table (per cell and ef: mean recall over the checkpoints, the worst, the last and its gap to a fresh
index over the same points), then the checkpoint table: per checkpoint the points in the index, recall and its
interval, ids returned that are not in the index (must be 0), short answers, QPS, the graph's stranded live
points where it is readable, the self-miss of sampled live points, the process's resident memory, and the fresh
index's recall where a baseline ran.
"""

from __future__ import annotations

from indexer.model.results import ChurnRow, ChurnSummary, RunExtras
from indexer.report import cells
from indexer.report.blocks import Block, Bullets, Para, Section, Table, fold

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
    blocks.append(fold([_checkpoint_table(rows)], "the checkpoints"))
    wrong = sorted({f"{r.backend} (step {r.step})" for r in rows if r.deleted_returned})
    if wrong:
        blocks.append(Bullets([f"Returned ids that are not in the index: {', '.join(wrong)}."]))
    return Section("churn", "Churn: recall while the index lives", blocks)


def _summary_table(summary: list[ChurnSummary]) -> Table:
    table = Table(["backend", "seed", "ef", "checkpoints", "mean recall", "worst (step)", "final", "baseline",
                   "gap"], [], left=3, caption="per cell and ef: recall over the checkpoints, and the last one "
                                              "against a fresh index over the same points")
    for s in summary:
        table.rows.append([
            _entry(s.backend, dict(s.build_params)), str(s.seed), "-" if s.ef is None else str(s.ef),
            str(s.checkpoints), cells.f3(s.mean_recall),
            f"{cells.f3(s.worst_recall)} ({s.worst_step})", cells.f3(s.final_recall),
            cells.f3(s.final_baseline_recall), cells.f3(s.final_gap)])
    return table


def _checkpoint_table(rows: list[ChurnRow]) -> Table:
    table = Table(["backend", "seed", "step", "operation", "ef", "live", "recall", "95% CI", "deleted returned",
                   "short", "QPS", "unreachable", "zero in-degree", "self-miss", "RSS", "baseline"], [], left=4,
                  caption="every checkpoint: recall against exact kNN over the live points")
    for r in rows:
        step = f"{r.step}" if r.batch is None else f"{r.step}.{r.batch}"
        ci = " – ".join(cells.f3(v) for v in r.recall_ci95)
        table.rows.append([
            _entry(r.backend, dict(r.build_params)), str(r.seed), step, r.operation,
            "-" if r.ef is None else str(r.ef), str(r.live), cells.f3(r.recall), ci, str(r.deleted_returned),
            str(r.short_results), cells.compact(r.qps), "-" if r.unreachable is None else str(r.unreachable),
            "-" if r.zero_in_degree is None else str(r.zero_in_degree), cells.f3(r.self_miss),
            "-" if r.rss_bytes is None else f"{r.rss_bytes / 2**20:,.0f} MiB", cells.f3(r.baseline_recall)])
    return table
