"""Model ranking: how the order of embedding models changes when exact search gives way to HNSW."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from indexer.report import cells
from indexer.report.blocks import Para, Section, Table
from indexer.report.results import Results
from indexer.report.values import hashable, num


def model_ranking_section(
    res: Results, extras: Mapping[str, Any], highlights: list[str], limit: int = 30
) -> Section | None:
    """How the ranking of embedding models changes when exact search is swapped for HNSW."""
    entries = [
        e for e in extras.get("model_ranking") or []
        if isinstance(e, Mapping) and isinstance(e.get("ranking"), list) and e.get("backend") != "exact"
    ]  # fmt: skip
    if not entries:
        return None
    measure = next(
        (k for e in entries for m in e["ranking"] if isinstance(m, Mapping) for k in m if "@" in k), "ndcg@10"
    )
    varying = [
        k
        for k in ("index_size", "reduction", "ordering", "seed")
        if len({hashable(e.get(k)) for e in entries}) > 1
    ]
    table = Table(
        ["backend / ef"]
        + [k.replace("_", " ") for k in varying]
        + [f"models by {measure} (change vs exact)", "max change"],
        [],
    )
    entries.sort(key=lambda e: -(num(e.get("max_change")) or 0.0))
    for e in entries[:limit]:
        col = res.col_of(e)
        ranked = []
        for m in e["ranking"]:
            if not isinstance(m, Mapping):
                continue
            change = num(m.get("change")) or 0.0
            arrow = "=" if change == 0 else (f"↑{change:.0f}" if change > 0 else f"↓{-change:.0f}")
            ranked.append(f"{m.get('model')} {cells.f3(num(m.get(measure)))} ({arrow})")
        table.rows.append(
            [res.col_label(col)]
            + [str(e.get(k)) for k in varying]
            + ["; ".join(ranked), cells.count(num(e.get("max_change")))]
        )
    top = entries[0]
    worst = num(top.get("max_change")) or 0.0
    col = res.col_of(top)
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
