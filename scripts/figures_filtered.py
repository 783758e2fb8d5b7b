"""The README's filtered-search figures (studies 7 and 8), made from a run summary's `filtered` rows.

A spec may name a system twice (its own defaults, then common settings) or once per filtering mode; each
spec entry is one line of a table, matched to its rows by backend, build parameters, ef and mode. Every
figure is a mean over the run's seeds, with the range where the seeds differ (readme_figures.spread).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from statistics import mean, median
from typing import Any

from figure_numbers import points, spread

Row = dict[str, Any]
Entry = dict[str, Any]
GRAPH_PARAMS = ("M", "ef_construction")
MODE = "filter_mode"


def entries(spec: dict[str, Any]) -> list[tuple[str, Entry]]:
    """(label, entry) per backend entry of the spec and filter mode it lists, in spec order; a system named more
    than once is told apart by its mode, or else by its first entry being its defaults and the others its
    settings. An entry without `filter_mode` ran its system's default mode (its rows name it)."""
    names = [e["name"] for e in spec["backends"]]
    out, seen = [], set()
    for e in spec["backends"]:
        label = e["name"]
        if names.count(e["name"]) > 1 and not e.get(MODE):
            label += " defaults" if e["name"] not in seen else f" M {e.get('M')} / ef {max(e.get('ef_search') or [0])}"
        seen.add(e["name"])
        modes = e.get(MODE)
        for mode in ([modes] if isinstance(modes, str) else modes or [None]):
            out.append((label if mode is None else f"{label} {mode}", {**e, MODE: mode}))
    return out


def rows_of(run: dict[str, Any], entry: Entry) -> list[Row]:
    """The filtered rows the entry built, at its largest ef (exact search: its one row)."""
    mine = [r for r in run["filtered"] if r["backend"] == entry["name"]
            and all((r.get("build_params") or {}).get(p, entry[p]) == entry[p] for p in GRAPH_PARAMS if p in entry)
            and entry[MODE] in (None, r.get(MODE))]
    efs = entry.get("ef_search")
    top = max(efs) if efs else max((r["ef"] or 0) for r in mine)
    return [r for r in mine if (r["ef"] or 0) == top]


def _columns(run: dict[str, Any], kinds: Sequence[str] | None) -> list[tuple[str, float | None]]:
    return [(f["name"], s) for f in run["spec"]["filters"] if kinds is None or f["kind"] in kinds
            for s in (f.get("selectivities") or [None])]


def _per_seed(rows: list[Row], name: str, sel: float | None) -> list[float]:
    at = [r for r in rows if r["filter"] == name and r["selectivity"] == sel and r["recall"] is not None]
    return [mean(r["recall"] for r in at if r["seed"] == seed) for seed in sorted({r["seed"] for r in at})]


def table(run: dict[str, Any], kinds: Sequence[str] | None = None) -> str:
    """Filtered recall per spec entry at its largest ef, one column per (filter, selectivity) of the given
    kinds (over orderings, then seeds); † where some answers came back with fewer than min(k, kept) ids."""
    cols = _columns(run, kinds)
    head = ["backend (strategy, ef)"] + [name if s is None else f"{name} {s:g}" for name, s in cols]
    lines = ["| " + " | ".join(head) + " |", "|---|" + "---:|" * len(cols)]
    for label, entry in entries(run["spec"]):
        rows = rows_of(run, entry)
        cells = []
        for name, sel in cols:
            short = any(r["short_results"] for r in rows if r["filter"] == name and r["selectivity"] == sel)
            cells.append(spread(_per_seed(rows, name, sel)) + (" †" if short else ""))
        lines.append(f"| {label} ({rows[0]['strategy']}, ef {rows[0]['ef'] or '-'}) | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def short(run: dict[str, Any]) -> str:
    """One clause per spec entry: from which selectivity of each filter on its answers come back short."""
    parts = []
    for label, entry in entries(run["spec"]):
        rows, said = rows_of(run, entry), []
        for f in run["spec"]["filters"]:
            hit = sorted({r["selectivity"] or 0.0 for r in rows if r["filter"] == f["name"] and r["short_results"]},
                         reverse=True)
            if hit:
                said.append(f"{f['name']} from {hit[0]:g} on" if f.get("selectivities") else f["name"])
        parts.append(f"{label}: " + (", ".join(said) if said else "never"))
    return ("Answers with fewer than min(k, kept) ids, at each entry's largest ef, by filter: "
            + "; ".join(parts) + ".\n")


def cost(run: dict[str, Any], target: float = 0.95) -> str:
    """Per graph entry and filter: the ef at which filtered recall reaches the target (median over seeds and
    orderings; `n/m` where only n of m runs reach it below the cap, `—` where none does)."""
    cols = _columns(run, None)
    head = ["backend"] + [name if s is None else f"{name} {s:g}" for name, s in cols]
    lines = [f"| {' | '.join(head)} |", "|---|" + "---:|" * len(cols)]
    for label, entry in entries(run["spec"]):
        if entry["name"] == "exact":
            continue
        rows, cells = rows_of(run, entry), []
        for name, sel in cols:
            at = [c for r in rows if r["filter"] == name and r["selectivity"] == sel
                  for c in r.get("cost_at_recall") or [] if c["target"] == target]
            efs = [c["ef"] for c in at if c["ef"] is not None]
            text = f"{median(efs):,.0f}" if efs else "—"
            cells.append(text if len(efs) == len(at) or not efs else f"{text} ({len(efs)}/{len(at)})")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def subspace(run: dict[str, Any]) -> str:
    """Label filter (the query's own subspace), each graph entry's smallest ef: recall per subspace and ordering."""
    lines: list[str] = []
    for label, entry in entries(run["spec"]):
        rows = [r for r in run["filtered"] if r["backend"] == entry["name"] and r["filter_kind"] == "label"
                and r["ef"] is not None and entry[MODE] in (None, r.get(MODE))]
        if not rows:
            continue
        low = min(r["ef"] for r in rows)
        rows = [r for r in rows if r["ef"] == low]
        groups = list(dict.fromkeys(g for r in rows for g in r["recall_by_category"]))
        if not lines:
            lines = ["| backend (ef) | ordering | " + " | ".join(groups) + " |", "|---|---|" + "---:|" * len(groups)]
        for ordering in run["spec"]["orderings"]:
            at = [r for r in rows if r["ordering"] == ordering]
            cells = [spread([r["recall_by_category"][g]["recall"] for r in at]) for g in groups]
            lines.append(f"| {label} ({low}) | {ordering} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def subspace_effect(run: dict[str, Any]) -> str:
    """Whether the high-LID subspace loses more than the low-LID one under its own label filter, per ordering
    (graph entries that lose any recall at their smallest ef), and what the LID orderings do to the high one."""
    def by_seed(entry: Entry, ordering: str, group: str) -> dict[int, float]:
        rows = [r for r in run["filtered"] if r["backend"] == entry["name"] and r["filter_kind"] == "label"
                and r["ef"] is not None and r["ordering"] == ordering and entry[MODE] in (None, r.get(MODE))]
        low = min(r["ef"] for r in rows)
        return {r["seed"]: r["recall_by_category"][group]["recall"] for r in rows if r["ef"] == low}

    sample = next(r for r in run["filtered"] if r["filter_kind"] == "label")
    groups = list(sample["recall_by_category"])
    lo_group, hi_group = groups[0], groups[-1]
    graph = [(label, e) for label, e in entries(run["spec"]) if e["name"] != "exact"]
    lines = []
    for ordering in run["spec"]["orderings"]:
        losing = [label for label, e in graph if min(by_seed(e, ordering, hi_group).values()) < 1.0
                  or min(by_seed(e, ordering, lo_group).values()) < 1.0]
        worse = [label for label, e in graph if label in losing and all(
            h < lo for h, lo in zip(by_seed(e, ordering, hi_group).values(), by_seed(e, ordering, lo_group).values(),
                                   strict=True))]
        lines.append(f"- {ordering}: {hi_group} below {lo_group} in every seed for {len(worse)} of the "
                     f"{len(losing)} graph backends that lose any recall"
                     + (f" (not: {', '.join(sorted(set(losing) - set(worse)))})" if set(losing) - set(worse) else ""))
    others = [o for o in run["spec"]["orderings"] if o != "random"]
    if "random" in run["spec"]["orderings"] and others:
        effects = []
        for label, e in graph:
            base = by_seed(e, "random", hi_group)
            if min(base.values()) >= 1.0:
                continue
            diffs = [f"{o} {points([by_seed(e, o, hi_group)[s] - base[s] for s in sorted(base)])}" for o in others]
            effects.append(f"{label}: " + ", ".join(diffs))
        lines.append(f"- {hi_group} recall against random order, points: " + "; ".join(effects))
    return "\n".join(lines) + "\n"


TABLES: dict[str, Callable[[dict[str, Any]], str]] = {
    "filtered-table": table,
    "filtered-table-near": lambda run: table(run, ("label", "random", "range", "column")),
    "filtered-table-far": lambda run: table(run, ("correlated", "anti_correlated")),
    "filtered-short": short,
    "filtered-cost": cost,
    "filtered-subspace": subspace,
    "filtered-subspace-effect": subspace_effect,
}
