"""Model ranking: how the order of embedding models changes when exact search gives way to HNSW."""

from __future__ import annotations

from indexer.model.results import ModelRanking, RunExtras
from indexer.report import cells
from indexer.report.blocks import Para, Section, Table
from indexer.report.results import BUILD_PARAMS, ColKey, Results
from indexer.report.values import num


def model_ranking_section(res: Results, extras: RunExtras, highlights: list[str], limit: int = 30
                          ) -> Section | None:
    """How the ranking of embedding models changes when exact search is swapped for HNSW."""
    entries = [e for e in extras.model_ranking or [] if e.backend != "exact"]
    if not entries:
        return None
    measure = next((m.measure for e in entries for m in e.ranking), "ndcg@10")
    varying = [k for k in ("index_size", "reduction", "ordering", "seed")
               if len({getattr(e, k) for e in entries}) > 1]
    table = Table(
        ["backend / ef"]
        + [k.replace("_", " ") for k in varying]
        + [f"models by {measure} (change vs exact)", "max change"],
        [],
    )
    entries.sort(key=lambda e: -e.max_change)
    for e in entries[:limit]:
        ranked = []
        for m in e.ranking:
            arrow = "=" if m.change == 0 else (f"↑{m.change}" if m.change > 0 else f"↓{-m.change}")
            ranked.append(f"{m.model} {cells.f3(num(m.score))} ({arrow})")
        table.rows.append(
            [res.col_label(_col(e))]
            + [str(getattr(e, k)) for k in varying]
            + ["; ".join(ranked), cells.count(e.max_change)]
        )
    top = entries[0]
    worst = top.max_change
    col = _col(top)
    if worst > 0:
        highlights.append(
            f"Swapping exact search for {res.col_label(col)} moved an embedding model by up to {worst:.0f} "
            f"place{'s' if worst != 1 else ''} in the {measure} ranking."
        )
    else:
        highlights.append(
            f"The {measure} ranking of the models is the same under exact and approximate search."
        )
    note = f" The {limit} settings with the largest changes are shown." if len(entries) > limit else ""
    return Section(
        "models",
        "Model ranking: exact vs approximate",
        [
            Para(
                f"Models ranked by {measure} under each approximate-search setting; in parentheses, how many "
                "places each moved against its rank under exact search (↑ better, ↓ worse)." + note
            ),
            table,
        ],
    )


def _col(entry: ModelRanking) -> ColKey:
    """The report column of the search setting a ranking was taken under."""
    return (entry.backend, *(entry.build_params.get(p) for p in BUILD_PARAMS), entry.ef)
