"""The README's churn figures (study 8), made from a run summary's `churn` rows (one per cell, checkpoint and ef).

Each spec entry is one line: a system at its defaults, at common settings, or with a delete variant
(hnswlib's replace_deleted, pgvector's vacuum, duckdb's compaction, lancedb's optimize), matched to its rows by
backend and build parameters at its largest ef. Every figure is over the run's seeds: the mean with the range, a
difference called one only when every seed agrees (figure_numbers.points).
"""

from __future__ import annotations

from collections.abc import Callable
from statistics import mean, median
from typing import Any

from figure_numbers import every_seed, points, spread

Row = dict[str, Any]
Entry = dict[str, Any]
NOT_PARAMS = ("name", "ef_search", "filter_mode")
ARRIVAL_BASELINE = "churn-arrival-random"  # the run the lid_asc arrival run is read beside


def _params(entry: Entry) -> dict[str, Any]:
    return {k: v for k, v in entry.items() if k not in NOT_PARAMS}


def _variants(params: dict[str, Any]) -> list[str]:
    """The delete variants a row or entry turns on: build parameters that are true booleans (replace_deleted)."""
    return sorted(k for k, v in params.items() if v is True)


def entries(spec: dict[str, Any]) -> list[tuple[str, Entry]]:
    """(label, entry) per backend entry of the spec, in spec order: a system named more than once with the same
    delete variants is at its defaults first (a report's spec holds them resolved), then at `M <M>`; `+variant`
    for each delete variant an entry turns on."""
    out, seen = [], set()
    for e in spec["backends"]:
        variants = tuple(_variants(_params(e)))
        twins = [o for o in spec["backends"] if o["name"] == e["name"] and tuple(_variants(_params(o))) == variants]
        label = e["name"]
        if len(twins) > 1:
            label += " defaults" if (e["name"], variants) not in seen else f" M {e.get('M')}"
        seen.add((e["name"], variants))
        out.append((label + "".join(f" +{v}" for v in variants), e))
    return out


def _owner(row: Row, spec: dict[str, Any]) -> int | None:
    """The index of the most specific spec entry whose parameters (and delete variants) the row's build has."""
    built = row.get("build_params") or {}
    best, size = None, -1
    for i, e in enumerate(spec["backends"]):
        mine = _params(e)
        if e["name"] != row["backend"] or _variants(built) != _variants(mine):
            continue
        if all(built.get(k) == v for k, v in mine.items()) and len(mine) > size:
            best, size = i, len(mine)
    return best


def rows_of(run: dict[str, Any], entry: Entry) -> list[Row]:
    """The churn rows the entry ran, at its largest ef (exact search: its one ef), in checkpoint order. Two entries
    that resolve to the same build (a system whose defaults are the common settings) share their rows."""
    index = run["spec"]["backends"].index(entry)
    same = [i for i, e in enumerate(run["spec"]["backends"]) if e == entry]
    mine = [r for r in run["churn"] if _owner(r, run["spec"]) in same]
    assert index in same
    top = max((r["ef"] or 0) for r in mine)
    return [r for r in mine if (r["ef"] or 0) == top]


def _seeds(rows: list[Row]) -> dict[int, list[Row]]:
    out: dict[int, list[Row]] = {}
    for r in rows:
        out.setdefault(r["seed"], []).append(r)
    return dict(sorted(out.items()))


def _ef_at(row: Row, target: float, fresh: bool) -> int | None:
    for t in row.get("ef_at_target") or []:
        if t["target"] == target:
            return t["baseline_ef"] if fresh else t["ef"]
    return None


def _ef_text(values: list[int | None]) -> str:
    """Median over seeds; `—` where no seed reaches it, `n/m` where only some do."""
    got = [v for v in values if v is not None]
    if not got:
        return "—"
    text = f"{median(got):,.0f}"
    return text if len(got) == len(values) else f"{text} ({len(got)}/{len(values)})"


def _speed(last: list[Row], target: float) -> list[float]:
    """Per seed, the live index's QPS at its ef for `target` as a share of the fresh index's at its own."""
    out = []
    for r in last:
        for t in r.get("ef_at_target") or []:
            if t["target"] == target and t.get("qps") and t.get("baseline_qps"):
                out.append(t["qps"] / t["baseline_qps"])
    return out


def _describe(rows: list[Row], label: str, target: float) -> list[str]:
    by_seed = _seeds(rows)
    first = [rs[0]["recall"] for rs in by_seed.values()]
    worst = [min(r["recall"] for r in rs) for rs in by_seed.values()]
    last = [rs[-1] for rs in by_seed.values()]
    fresh = [r["baseline_recall"] for r in last]
    gap = points([r["recall"] - f for r, f in zip(last, fresh, strict=True)]) if None not in fresh else "–"
    deletes = last[0]["deletes"]
    ef_live = _ef_text([_ef_at(r, target, False) for r in last]) if last[0].get("ef_at_target") else "–"
    ef_fresh = _ef_text([_ef_at(r, target, True) for r in last]) if last[0].get("ef_at_target") else "–"
    speed = _speed(last, target)
    stranded = [r["unreachable"] for r in last if r.get("unreachable") is not None]
    ef = last[0]["ef"]
    return [f"{label} (ef {ef if ef is not None else '-'})", "none: rebuilt" if deletes == "none" else deletes,
            spread(first), spread(worst), spread([r["recall"] for r in last]),
            spread(fresh) if None not in fresh else "–", gap, f"{ef_live} / {ef_fresh}",
            f"{mean(speed):.2f}x" if speed and len(speed) == len(last) and deletes != "none" else "–",
            f"{mean(stranded):,.0f}" if stranded else "–",
            f"{mean(r.get('short_results', 0) for r in last):,.0f}"]


def table(run: dict[str, Any], target: float = 0.95) -> str:
    """Per spec entry at its largest ef: recall at the first checkpoint, the worst, the last, a fresh index over
    the same points at the last, their gap in points, the ef for `target` in each, the live index's QPS there as
    a share of the fresh one's at its own ef (equal recall), and the live points the graph no longer reaches
    (hnswlib), and the answers with fewer than k live ids at the last checkpoint."""
    head = ["system (ef)", "deletes", "first checkpoint", "worst", "last", "fresh index, last", "last − fresh, points",
            f"ef for {target:g}: live / fresh", f"QPS at {target:g}: live / fresh", "unreachable, last",
            "short answers, last"]
    lines = ["| " + " | ".join(head) + " |", "|---|---|" + "---:|" * (len(head) - 2)]
    for label, entry in entries(run["spec"]):
        lines.append("| " + " | ".join(_describe(rows_of(run, entry), label, target)) + " |")
    return "\n".join(lines) + "\n"


def effect(run: dict[str, Any], target: float = 0.95) -> str:
    """Which entries end below a fresh index over the same points in every seed, which do not, how much slower
    the live index searches, and the deleted ids returned (must be none)."""
    below, above, level, slower = [], [], [], []
    for label, entry in entries(run["spec"]):
        last = [rs[-1] for rs in _seeds(rows_of(run, entry)).values()]
        if last[0]["deletes"] == "none" or entry["name"] == "exact" or None in [r["baseline_recall"] for r in last]:
            continue
        diffs = [r["recall"] - r["baseline_recall"] for r in last]
        group = level if not every_seed(diffs) else below if mean(diffs) < 0 else above
        group.append(f"{label} {points(diffs)}")
        speed = _speed(last, target)
        if speed and len(speed) == len(last):
            slower.append((mean(speed), label))
    returned = sum(r["deleted_returned"] for r in run["churn"])
    lines = [f"- Below a fresh index over the same points at the last checkpoint, in every seed (points): "
             f"{'; '.join(below) or 'none'}.",
             f"- Above it in every seed: {'; '.join(above) or 'none'}.",
             f"- Neither in every seed: {'; '.join(level) or 'none'}."]
    if slower:
        speed, who = min(slower)
        lines.append(f"- At equal recall ({target:g}), the slowest against its fresh index: {who}, at {speed:.2f}x "
                     "the fresh index's QPS.")
    lines.append(f"- Deleted ids returned, over every row: {returned}.")
    return "\n".join(lines) + "\n"


def _gap(last: list[Row]) -> str:
    """Last checkpoint minus the fresh index, points, mean over seeds (– where nothing was deleted or no fresh)."""
    if last[0]["deletes"] == "none" or None in [r["baseline_recall"] for r in last]:
        return "–"
    return f"{100 * mean(r['recall'] - r['baseline_recall'] for r in last):+.1f}"


def arrival(run: dict[str, Any]) -> str:
    """lid_asc arrival (this run) against random arrival (churn-arrival-random, the same runbook otherwise), per
    entry: recall before and after the deletes, lid_asc minus random, in points per seed."""
    import readme_figures  # the loader of committed runs (imported here: it imports this module)

    other = readme_figures.load(ARRIVAL_BASELINE)
    head = ["system (ef)", "before deletes: lid_asc − random", "after deletes: lid_asc − random",
            "after deletes, last − fresh: lid_asc / random"]
    lines = ["| " + " | ".join(head) + " |", "|---|" + "---:|" * (len(head) - 1)]
    for label, entry in entries(run["spec"]):
        if entry["name"] == "exact" or entry not in other["spec"]["backends"]:
            continue
        mine, theirs = _seeds(rows_of(run, entry)), _seeds(rows_of(other, entry))
        seeds = sorted(set(mine) & set(theirs))
        before = [mine[s][0]["recall"] - theirs[s][0]["recall"] for s in seeds]
        after = [mine[s][-1]["recall"] - theirs[s][-1]["recall"] for s in seeds]

        ef = mine[seeds[0]][0]["ef"]
        lines.append(f"| {label} (ef {ef if ef is not None else '-'}) | {points(before)} | {points(after)} | "
                     f"{_gap([mine[s][-1] for s in seeds])} / {_gap([theirs[s][-1] for s in seeds])} |")
    return "\n".join(lines) + "\n"


TABLES: dict[str, Callable[[dict[str, Any]], str]] = {
    "churn-table": table,
    "churn-effect": effect,
    "churn-arrival": arrival,
}
