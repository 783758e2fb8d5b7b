"""The advisor: of the configurations a run built, the cheapest that reach a target recall.

Every cell's cost at equal recall already holds the smallest ef reaching each target on the even-numbered
queries and the recall there on the odd ones (indexer.engine.diagnostics.cost_at_recall): a configuration is
a candidate when the validation half reaches the target, and confirmed when the held-out half does too.
The choice is among confirmed candidates (or, when none is, among the candidates, and the advice says so):
the cheapest by queries per second at its ef, by build time, and by index size. The fastest by queries is
named with every candidate whose timed passes overlap its own: those the timing cannot rank.
"""

from __future__ import annotations

from collections.abc import Sequence

from indexer.model.results import Advice, Candidate, DenseRow, ResultRow


def advise(rows: Sequence[ResultRow], target: float, skipped: int = 0) -> Advice:
    """The advice over a run's rows for `target` (one candidate per built cell; `skipped` were not built
    within the budget)."""
    built: dict[str, DenseRow] = {}
    for r in rows:
        if isinstance(r, DenseRow) and r.ef is not None:
            built.setdefault(r.cell, r)
    candidates = []
    for row in built.values():
        cost = next((c for c in row.cost_at_recall if c.target == target), None)
        if cost is None or cost.ef is None or cost.qps is None:
            continue
        confirmed = cost.held_out_recall is not None and cost.held_out_recall >= target
        candidates.append(Candidate(
            backend=row.backend, build_params=dict(row.build_params), ordering=row.ordering, seed=row.seed,
            ef=cost.ef, held_out_recall=cost.held_out_recall, held_out_ci95=cost.held_out_ci95,
            confirmed=confirmed, qps=cost.qps, qps_range=cost.qps_range, build_seconds=row.build_seconds, index_bytes=row.index_bytes,
        ))
    pool = [c for c in candidates if c.confirmed] or candidates
    fastest = max(pool, key=lambda c: c.qps, default=None)
    return Advice(
        target_recall=target, tried=len(built), reached=len(candidates), not_built=skipped,
        fastest_queries=fastest,
        fastest_queries_ties=[c for c in pool if fastest is not None and c is not fastest and _overlap(c, fastest)],
        fastest_build=min(pool, key=lambda c: c.build_seconds, default=None),
        smallest=min(pool, key=lambda c: c.index_bytes, default=None),
    )


def _overlap(a: Candidate, b: Candidate) -> bool:
    """Whether the timed passes of two candidates overlap: then neither is faster on this evidence."""
    lo_a, hi_a = a.qps_range or [a.qps, a.qps]
    lo_b, hi_b = b.qps_range or [b.qps, b.qps]
    return lo_a <= hi_b and lo_b <= hi_a
