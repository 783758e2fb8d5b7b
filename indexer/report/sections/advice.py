"""The advisor's answer: the cheapest configuration reaching the target recall by query time, by build time
and by memory, with its held-out recall."""

from __future__ import annotations

from indexer.model.results import Candidate, RunExtras
from indexer.report import cells
from indexer.report.blocks import Block, Bullets, Para, Section, Table


def advice_section(extras: RunExtras, highlights: list[str]) -> Section | None:
    advice = extras.advice
    if advice is None:
        return None
    table = Table(["cheapest by", "backend", "build parameters", "ordering", "ef", "held-out recall (95% CI)",
                   "qps", "build s", "index MB"], [], left=4)
    for what, pick in (("query time", advice.fastest_queries), ("build time", advice.fastest_build),
                       ("memory", advice.smallest)):
        if pick is not None:
            table.rows.append(_line(what, pick))
    blocks: list[Block] = [Para(
        f"Of {advice.tried} built configurations, {advice.reached} reach recall {advice.target_recall:g} on the "
        "validation queries (the even-numbered ones) at some ef; that ef's recall on the held-out queries (the "
        "odd-numbered ones) confirms the choice. The cheapest confirmed configuration by each cost:"
    ), table]
    unconfirmed = [p for p in (advice.fastest_queries, advice.fastest_build, advice.smallest)
                   if p is not None and not p.confirmed]
    if unconfirmed:
        blocks.append(Bullets(["No configuration's held-out recall reaches the target: these picks reached it "
                               "on the validation queries only."]))
    ties = advice.fastest_queries_ties
    if ties:
        blocks.append(Bullets([f"The fastest by queries is not told apart by the timing from {len(ties)} other "
                               f"configuration{'s' if len(ties) > 1 else ''} (their timed passes overlap): "
                               + "; ".join(f"{c.backend} {_params(c)} {c.ordering} ef {c.ef}" for c in ties[:5])
                               + ("; ..." if len(ties) > 5 else "")]))
    if advice.fastest_queries is not None:
        pick = advice.fastest_queries
        verb = "answers fastest" if not ties else f"is among the {len(ties) + 1} fastest, which the timing cannot rank"
        highlights.append(f"Advice: for recall {advice.target_recall:g}, {pick.backend} "
                          f"{_params(pick)} in {pick.ordering} order at ef {pick.ef} {verb} "
                          f"({pick.qps:,.0f} qps, held-out recall {cells.f3(pick.held_out_recall)}).")
    return Section("advice", f"Advice: the cheapest way to recall {advice.target_recall:g}", blocks)


def _params(pick: Candidate) -> str:
    return " ".join(f"{k}={v}" for k, v in pick.build_params.items())


def _line(what: str, pick: Candidate) -> list[str]:
    lo, hi = (pick.held_out_ci95 + [None, None])[:2]
    ci = f" ({cells.f3(lo)}–{cells.f3(hi)})" if lo is not None and hi is not None else ""
    return [what, pick.backend, _params(pick), pick.ordering, str(pick.ef),
            cells.f3(pick.held_out_recall) + ci + ("" if pick.confirmed else " not confirmed"),
            cells.compact(pick.qps), cells.secs(pick.build_seconds), cells.megabytes(pick.index_bytes)]
