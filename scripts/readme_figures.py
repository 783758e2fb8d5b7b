"""The README's study figures, generated from runs: never typed, so never stale.

    python scripts/readme_figures.py summarize OUT_DIR NAME   # keep a run's rows as docs/runs/NAME.json
    python scripts/readme_figures.py write                    # regenerate every marked block of README.md
    python scripts/readme_figures.py check                    # exit 1 when README.md differs (a test runs this)

A block of README.md between `<!-- figures:TABLE:RUN -->` and `<!-- /figures -->` is the output of the table
function TABLE over the committed summary docs/runs/RUN.json (the rows of a report.json, without per-query
files and breakdowns). Every study runs at least three seeds; a table shows the mean over seeds and the
range, and a difference is called one only when it has the same sign in every seed.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from statistics import mean
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import figures_churn  # noqa: E402  (sibling script modules: the churn and filtered-search figures)
import figures_filtered  # noqa: E402
from figure_numbers import points, spread  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
RUNS = ROOT / "docs" / "runs"
README = ROOT / "README.md"
BLOCK = re.compile(r"(<!-- figures:(?P<table>[\w-]+):(?P<run>[\w-]+) -->\n)(?P<body>.*?)(<!-- /figures -->)", re.S)
# what a summary keeps of each row: what the tables read, not the per-query files and breakdowns
KEEP = ("dataset", "model", "metric", "index_size", "reduction", "dims", "representation", "ordering", "backend",
        "M", "ef_construction", "ef", "k", "seed", "recall", "recall_within", "recall_ids", "recall_annb",
        "ndcg@10", "mrr@10", "build_seconds", "qps", "library_version", "order_controlled", "cost_at_recall",
        "self_miss", "short_results", "duplicate_results", "recall_by_category", "recall_by_lid_bin", "graph")
FILTERED_KEEP = ("backend", "build_params", "filter_mode", "strategy", "ordering", "seed", "ef", "filter", "filter_kind",
                 "selectivity", "kept", "recall", "short_results", "mean_returned", "violations", "qps",
                 "distances_per_query", "cost_at_recall", "recall_by_category")
CHURN_KEEP = ("backend", "build_params", "deletes", "reinserted_ids", "seed", "step", "batch", "operation", "live",
              "inserted", "deleted", "update_seconds", "ef", "recall", "deleted_returned", "short_results", "qps",
              "unreachable", "zero_in_degree", "baseline_recall", "baseline_build_seconds", "baseline_qps",
              "self_miss", "ef_at_target", "rss_bytes")
# a churn row's own fields in a report (its build parameters are flattened beside them: M, replace_deleted, ...)
CHURN_FIELDS = frozenset(CHURN_KEEP) | {"dataset", "model", "metric", "index_size", "reduction", "k", "cell",
                                       "recall_ci95", "self_miss_sampled", "baseline_build_seconds"}
SPACE_SCALARS = ("isoscore", "lid_global", "dims", "n")  # and the median/p10/p90 of the distributions
Row = dict[str, Any]


def summarize(out_dir: Path, name: str) -> Path:
    """docs/runs/NAME.json from a report directory: its spec, provenance and the kept fields of its rows."""
    report = json.loads((out_dir / "report.json").read_text())
    rows = [{k: r[k] for k in KEEP if k in r} for r in report["rows"]]
    extras = report.get("extras") or {}
    space = {label: {part: ({k: v for k, v in summary.items() if k in ("n", "median", "p10", "p90")}
                            if isinstance(summary, dict) else summary)
                     for part, summary in measures.items()
                     if part in ("lid_base", "lid_queries", "relative_contrast") or part in SPACE_SCALARS}
             for label, measures in (extras.get("space") or {}).items()}
    filtered = [{k: r[k] for k in FILTERED_KEEP if k in r} for r in extras.get("filtered") or []]
    churn = [{**{k: r[k] for k in CHURN_KEEP if k in r},
              "build_params": {k: v for k, v in r.items() if k not in CHURN_FIELDS and v is not None}}
             for r in extras.get("churn") or []]
    summary = {"spec": report["spec"], "provenance": extras.get("provenance"), "space": space, "rows": rows,
               **({"filtered": filtered} if filtered else {}), **({"churn": churn} if churn else {})}
    RUNS.mkdir(parents=True, exist_ok=True)
    path = RUNS / f"{name}.json"
    path.write_text(json.dumps(summary, indent=1, sort_keys=True) + "\n")
    return path


def load(run: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((RUNS / f"{run}.json").read_text())
    return data


# --- numbers as the tables print them -----------------------------------------------------------------------


def thousands(x: float) -> str:
    return f"{x:,.0f}"


# --- the deployed systems (README study 5) --------------------------------------------------------------------


def _systems(spec: dict[str, Any]) -> dict[str, tuple[dict[str, Any], dict[str, Any]]]:
    """Per system, in spec order: its first entry (its own defaults) and its last (the common settings);
    a spec names each system once per study part, the defaults first (examples/systems-*.yaml)."""
    out: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {}
    for entry in spec["backends"]:
        if entry["name"] != "exact":
            out[entry["name"]] = (out.get(entry["name"], (entry, entry))[0], entry)
    return out


def _rows_of(rows: list[Row], entry: dict[str, Any], ordering: str = "random") -> list[Row]:
    """The rows an entry of the spec built: its backend and, where given, its build parameters and ef."""
    efs = entry.get("ef_search")
    out = [r for r in rows if r["backend"] == entry["name"] and r["ordering"] == ordering
           and all(r.get(p) == entry[p] for p in ("M", "ef_construction") if p in entry)
           and (efs is None or r["ef"] in efs)]
    return out


def systems_defaults(run: dict[str, Any]) -> str:
    """Each system at its own defaults and at the spec's common settings: recall, build time, speed."""
    rows, systems = run["rows"], _systems(run["spec"])
    hnswlib_build = mean(r["build_seconds"] for r in _rows_of(rows, systems["hnswlib"][1]))
    lines = ["| system | defaults (M / efC / ef) | recall@10 at defaults | recall@10 at M 16 / efC 128 / ef 64 "
             "| build s at common | build vs hnswlib | qps at common |",
             "|---|---|---|---|---|---|---|"]
    for name, (own, common) in systems.items():
        mine, at_common = _rows_of(rows, own), _rows_of(rows, common)
        build = mean(r["build_seconds"] for r in at_common)
        lines.append(
            f"| {name} | {own['M']} / {own['ef_construction']} / {mine[0]['ef']} "
            f"| {spread([r['recall'] for r in mine])} | {spread([r['recall'] for r in at_common])} "
            f"| {build:.1f} | {build / hnswlib_build:.1f}x | {thousands(mean(r['qps'] for r in at_common))} |")
    return "\n".join(lines) + "\n"


def systems_defaults_range(run: dict[str, Any]) -> str:
    """One sentence: the lowest and highest recall a user gets at a system's defaults."""
    rows, systems = run["rows"], _systems(run["spec"])
    means = {name: mean(r["recall"] for r in _rows_of(rows, own)) for name, (own, _) in systems.items()}
    common = [mean(r["recall"] for r in _rows_of(rows, c)) for _, c in systems.values()]
    lo, hi = min(means, key=means.__getitem__), max(means, key=means.__getitem__)
    return (f"At its defaults a user gets between {means[lo]:.3f} ({lo}) and {means[hi]:.3f} ({hi}) recall@10 "
            f"(means over {len(run['spec']['seeds'])} seeds); at common settings every system lands within "
            f"{min(common):.3f}–{max(common):.3f}.\n")


def systems_gap(run: dict[str, Any]) -> str:
    """One sentence: how far the peers' recall definitions sit from ours at each system's defaults."""
    rows, parts = run["rows"], []
    for name, (own, _) in _systems(run["spec"]).items():
        mine = _rows_of(rows, own)
        annb = mean(r["recall_annb"] - r["recall"] for r in mine) * 100
        ids = mean(r["recall"] - r["recall_ids"] for r in mine) * 100
        parts.append(f"{name} (ef {mine[0]['ef']}) {annb:+.2f} / {ids:+.2f}")
    return ("ann-benchmarks' recall minus ours / ours minus the plain id intersection, in points, at each "
            "system's defaults (mean over seeds): " + "; ".join(parts) + ".\n")


def systems_ordering(run: dict[str, Any]) -> str:
    """Recall per ordering inside each order-controlled system, and lid_desc - lid_asc over seeds."""
    rows = run["rows"]
    lines = ["| system (M 16 / efC 128 / ef 64) | LID-ordered builds vary by seed | random | lid_asc | lid_desc "
             "| lid_desc - lid_asc (pts, range over seeds) |",
             "|---|---|---|---|---|---|"]
    for name, (_, entry) in _systems(run["spec"]).items():
        by = {o: sorted(_rows_of(rows, entry, o), key=lambda r: r["seed"])
              for o in ("random", "lid_asc", "lid_desc")}
        diffs = [d["recall"] - a["recall"] for d, a in zip(by["lid_desc"], by["lid_asc"], strict=True)]
        varies = len({r["recall"] for r in by["lid_asc"] + by["lid_desc"]}) > 2
        lines.append(f"| {name} | {'yes' if varies else 'no'} | {spread([r['recall'] for r in by['random']])} "
                     f"| {spread([r['recall'] for r in by['lid_asc']])} "
                     f"| {spread([r['recall'] for r in by['lid_desc']])} | {points(diffs, varies)} |")
    return "\n".join(lines) + "\n"


# --- insertion order and intrinsic dimensionality (README study 1) ---------------------------------------------


def compact(values: Sequence[float]) -> str:
    """Mean over seeds ± half the range, for wide tables."""
    half = (max(values) - min(values)) / 2
    return f"{mean(values):.3f}" + (f"±{half:.3f}" if f"{half:.3f}" != "0.000" else "")


def _recalls(rows: list[Row], **where: Any) -> list[float]:
    """Recall of the rows matching `where`, one per seed, in seed order."""
    chosen = [r for r in rows if all(r.get(k) == v for k, v in where.items())]
    return [r["recall"] for r in sorted(chosen, key=lambda r: r["seed"])]


def _hnsw_backends(run: dict[str, Any]) -> list[str]:
    return [e["name"] for e in run["spec"]["backends"] if e.get("ef_search")]


def ordering_table(run: dict[str, Any]) -> str:
    """Recall@k per ordering (rows) and backend x ef (columns), mean over seeds ± half the range."""
    rows, spec = run["rows"], run["spec"]
    cols = [(b, ef) for e in spec["backends"] if e.get("ef_search") for b, ef in
            ((e["name"], ef) for ef in e["ef_search"])]
    head = ["ordering"] + [f"{b} ef={ef}" if i == 0 or cols[i - 1][0] != b else f"ef={ef}"
                           for i, (b, ef) in enumerate(cols)]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for ordering in spec["orderings"]:
        cells = [compact(_recalls(rows, backend=b, ef=ef, ordering=ordering)) for b, ef in cols]
        lines.append(f"| {ordering} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def ordering_effect(run: dict[str, Any]) -> str:
    """lid_desc - lid_asc per backend and ef, in points over seeds, and whether every seed agrees."""
    rows, spec, parts = run["rows"], run["spec"], []
    for entry in spec["backends"]:
        for ef in entry.get("ef_search") or []:
            d = _recalls(rows, backend=entry["name"], ef=ef, ordering="lid_desc")
            a = _recalls(rows, backend=entry["name"], ef=ef, ordering="lid_asc")
            parts.append(f"{entry['name']} ef={ef} {points([x - y for x, y in zip(d, a, strict=True)])}")
    return (f"Inserting high-LID points first (lid_desc) against low-LID points first (lid_asc), recall@{spec['k']} "
            f"in points over seeds {spec['seeds']}: " + "; ".join(parts) + ".\n")


def ordering_breakdown(run: dict[str, Any]) -> str:
    """Where the loss sits: the category losing most between lid_desc and lid_asc, and recall by query-LID
    bin, for the first backend at its middle ef (means over seeds)."""
    rows, spec = run["rows"], run["spec"]
    backend = _hnsw_backends(run)[0]
    efs = next(e["ef_search"] for e in spec["backends"] if e["name"] == backend)
    ef = efs[len(efs) // 2]

    def of(ordering: str) -> list[Row]:
        return [r for r in rows if r["backend"] == backend and r["ef"] == ef and r["ordering"] == ordering]

    def by_category(ordering: str) -> dict[str, float]:
        names = of(ordering)[0]["recall_by_category"]
        return {n: mean(r["recall_by_category"][n]["recall"] for r in of(ordering)) for n in names}

    def by_bin(ordering: str) -> str:
        bins = len(of(ordering)[0]["recall_by_lid_bin"])
        return " / ".join(f"{mean(r['recall_by_lid_bin'][b]['recall'] for r in of(ordering)):.3f}"
                          for b in range(bins))

    desc, asc = by_category("lid_desc"), by_category("lid_asc")
    worst = max(desc, key=lambda n: desc[n] - asc[n]) if desc else None
    lid = next(iter(run["space"].values()))["lid_base"]
    category = (f"the category losing most from lid_desc to lid_asc is {worst} ({desc[worst]:.3f} to "
                f"{asc[worst]:.3f}); " if worst is not None else "")
    return (f"{backend} at ef={ef}: {category}recall by query-LID bin, lowest LID first: lid_desc "
            f"{by_bin('lid_desc')}, lid_asc {by_bin('lid_asc')}. Pointwise LID of the base (MLE, "
            f"k={spec['lid']['k']}): median {lid['median']:.1f}, p10 {lid['p10']:.1f}, p90 {lid['p90']:.1f}.\n")


# --- why recall is lost and what winning it back costs (README study 6) ------------------------------------------


def _cost(row: Row, target: float) -> dict[str, Any] | None:
    return next((c for c in row.get("cost_at_recall") or [] if c["target"] == target), None)


def _range_int(values: Sequence[float]) -> str:
    text = f"{mean(values):.0f}"
    return text + (f" ({min(values):.0f}–{max(values):.0f})" if min(values) != max(values) else "")


def diagnostics_table(run: dict[str, Any], target: float = 0.95) -> str:
    """Per ordering and backend, at the lowest ef: recall, stranded points, self-miss; and the cost of
    reaching `target` (ef, whether the held-out half confirms it, distance computations where counted)."""
    rows, spec = run["rows"], run["spec"]
    lines = [f"| ordering | backend | recall@{spec['k']} ef={{ef}} | unreachable | no in-links | self-miss ef={{ef}} "
             f"| ef for {target:g} | held-out confirms | distances/query at {target:g} |", "|---|---|---|---|---|---|---|---|---|"]
    low = None
    for ordering in spec["orderings"]:
        for backend in _hnsw_backends(run):
            mine = [r for r in rows if r["backend"] == backend and r["ordering"] == ordering]
            low = min(r["ef"] for r in mine)
            at = sorted((r for r in mine if r["ef"] == low), key=lambda r: r["seed"])
            costs = [c for c in (_cost(r, target) for r in at) if c is not None]
            efs = [c["ef"] for c in costs if c["ef"] is not None]
            dist = [c["distance_computations"] for c in costs if c.get("distance_computations")]
            graph = [r["graph"] for r in at if r.get("graph")]
            confirmed = sum(1 for c in costs if c.get("confirmed"))
            lines.append(
                f"| {ordering} | {backend} | {compact([r['recall'] for r in at])} "
                f"| {_range_int([g['unreachable'] for g in graph]) if graph else '–'} "
                f"| {_range_int([g['zero_in_degree'] for g in graph]) if graph else '–'} "
                f"| {compact([r['self_miss'] for r in at])} "
                f"| {_range_int(efs) if len(efs) == len(costs) and efs else 'not reached'} "
                f"| {confirmed} of {len(costs)} seeds | {_range_int(dist) if dist else '–'} |")
    lines[0] = lines[0].replace("{ef}", str(low))
    return "\n".join(lines) + "\n"


def diagnostics_effect(run: dict[str, Any], target: float = 0.95) -> str:
    """The price of lid_asc against lid_desc at equal recall: the ratio of the ef each needs per seed, and
    the self-miss at the lowest ef, per backend, with whether every seed agrees."""
    rows, parts = run["rows"], []
    for backend in _hnsw_backends(run):
        def of(ordering: str, backend: str = backend) -> list[Row]:
            mine = [r for r in rows if r["backend"] == backend and r["ordering"] == ordering]
            low = min(r["ef"] for r in mine)
            return sorted((r for r in mine if r["ef"] == low), key=lambda r: r["seed"])

        asc, desc = of("lid_asc"), of("lid_desc")
        ratios = [a_c["ef"] / d_c["ef"] for a_c, d_c in ((_cost(a, target), _cost(d, target))
                                                        for a, d in zip(asc, desc, strict=True))
                  if a_c and d_c and a_c["ef"] and d_c["ef"]]
        agree = "every seed" if ratios and (all(x > 1 for x in ratios) or all(x < 1 for x in ratios)) else "mixed"
        miss = [100 * (a["self_miss"] - d["self_miss"]) for a, d in zip(asc, desc, strict=True)]
        miss_agree = "every seed" if all(m > 0 for m in miss) or all(m < 0 for m in miss) else "mixed"
        parts.append(f"{backend}: lid_asc needs {mean(ratios):.2f}x the ef of lid_desc for {target:g} "
                     f"({min(ratios):.2f}–{max(ratios):.2f}x, {agree}); self-miss, lid_asc minus lid_desc: "
                     f"{mean(miss):+.1f} points ({min(miss):+.1f} to {max(miss):+.1f}, {miss_agree})")
    return "; ".join(parts) + ".\n"


# --- dimensionality reduction (README study 2) -------------------------------------------------------------------


def _space_of(run: dict[str, Any], reduction: str) -> dict[str, Any]:
    """The space measures of the (first) space indexed under `reduction`."""
    return next(v for k, v in run["space"].items() if k.split("/")[-1] == reduction)


def _reductions(run: dict[str, Any]) -> list[tuple[str, int]]:
    """(reduction label, dims) in the order the rows first show them."""
    seen: dict[str, int] = {}
    for r in run["rows"]:
        seen.setdefault(r["reduction"], r["dims"])
    return list(seen.items())


REDUCTION_NAMES = {"none": "none", "fft-low": "fft, low frequencies", "fft-energy": "fft, most energy",
                   "pca": "pca", "random_projection": "random projection", "truncate": "truncate (Matryoshka)"}


def _method(label: str) -> str:
    return label if label == "none" else label.rsplit("-", 1)[0]


def reduction_table(run: dict[str, Any]) -> str:
    """Per reduction and dims: recall of exact search in the reduced space and of HNSW against the reduced
    space's own kNN and against the original's, with the reduced space's LID and IsoScore."""
    rows = run["rows"]
    hnsw = next(e for e in run["spec"]["backends"] if e.get("ef_search"))
    low, high = min(hnsw["ef_search"]), max(hnsw["ef_search"])
    lines = ["| reduction | dims | bytes/vector | (a) exact kNN in the reduced space | (b) HNSW ef="
             f"{high} vs the reduced space's own kNN | (c) HNSW ef={high} vs original | HNSW ef={low} vs original "
             "| median LID (base) | IsoScore |", "|---|---|---|---|---|---|---|---|---|"]
    for label, dims in _reductions(run):
        def of(backend: str, ef: int | None, label: str = label) -> list[Row]:
            return sorted((r for r in rows if r["reduction"] == label and r["backend"] == backend and r["ef"] == ef
                           and r.get("ordering") == "random"), key=lambda r: r["seed"])

        exact, at_high, at_low = of("exact", None), of(hnsw["name"], high), of(hnsw["name"], low)
        space = _space_of(run, label)
        lines.append(f"| {REDUCTION_NAMES.get(_method(label), _method(label))} | {dims} | {dims * 4} "
                     f"| {spread([r['recall'] for r in exact])} | {spread([r['recall_within'] for r in at_high])} "
                     f"| {spread([r['recall'] for r in at_high])} | {spread([r['recall'] for r in at_low])} "
                     f"| {space['lid_base']['median']:.1f} | {space['isoscore']:.2f} |")
    return "\n".join(lines) + "\n"


def reduction_effect(run: dict[str, Any]) -> str:
    """One sentence: at the largest reduced dimension, how much of the true neighbourhood exact search keeps
    under each method, and what happens to the LID."""
    rows = run["rows"]
    top = max(d for label, d in _reductions(run) if label != "none")
    kept = {_method(label): mean(r["recall"] for r in rows if r["reduction"] == label and r["backend"] == "exact")
            for label, d in _reductions(run) if d == top and label != "none"}
    order = sorted(kept, key=kept.__getitem__)
    lid = {m: _space_of(run, f"{m}-{top}")["lid_base"]["median"] for m in kept}
    return (f"At {top} dimensions exact search in the reduced space finds, of the true top-{run['spec']['k']}: "
            + "; ".join(f"{REDUCTION_NAMES.get(m, m)} {kept[m]:.3f}" for m in order)
            + f". The median LID of the base is {_space_of(run, 'none')['lid_base']['median']:.1f} unreduced and "
            + "; ".join(f"{lid[m]:.1f} ({REDUCTION_NAMES.get(m, m)})" for m in order) + f" at {top} dimensions.\n")


# --- dense vs sparse as the index grows (README study 3) -------------------------------------------------------


def _ndcg(rows: list[Row], **where: Any) -> list[float]:
    chosen = [r for r in rows if all(r.get(k) == v for k, v in where.items())]
    return [r["ndcg@10"] for r in sorted(chosen, key=lambda r: (r.get("seed") is None, r.get("seed") or 0))]


def dense_sparse_table(run: dict[str, Any]) -> str:
    """nDCG@10 per index size: dense exact at each dimension and HNSW on the unreduced vectors (its recall@10
    against exact kNN in brackets), BM25, and hybrid fusion of each dense space with BM25 (means over seeds,
    range where the seeds differ)."""
    rows, spec = run["rows"], run["spec"]
    hnsw = next(e for e in spec["backends"] if e.get("ef_search"))
    name, ef = hnsw["name"], hnsw["ef_search"][0]
    spaces = _reductions({"rows": [r for r in rows if r["representation"] == "dense"]})
    (full, full_dims) = spaces[0]
    head = ["index size", f"dense {full_dims}-d exact", f"dense {full_dims}-d {name} ef={ef} (recall)"]
    head += [f"dense {d}-d ({label}) exact" for label, d in spaces[1:]]
    head += ["BM25"] + [f"hybrid {d}-d exact" for _, d in spaces]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for size in sorted({r["index_size"] for r in rows}):
        graph = [r for r in rows if r["index_size"] == size and r["reduction"] == full and r["backend"] == name
                 and r["representation"] == "dense"]
        cells = [f"{size:,}", spread(_ndcg(rows, index_size=size, reduction=full, backend="exact",
                                           representation="dense")),
                 f"{spread([r['ndcg@10'] for r in graph])} ({mean(r['recall'] for r in graph):.2f})"]
        cells += [spread(_ndcg(rows, index_size=size, reduction=label, backend="exact", representation="dense"))
                  for label, _ in spaces[1:]]
        cells.append(spread(_ndcg(rows, index_size=size, representation="sparse")))
        cells += [spread(_ndcg(rows, index_size=size, reduction=label, backend="exact", representation="hybrid"))
                  for label, _ in spaces]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def dense_sparse_effect(run: dict[str, Any]) -> str:
    """One sentence: the unreduced dense lead over BM25 at the smallest and largest index, and the smallest
    index at which BM25 reaches each reduced dense space (exact search)."""
    rows = run["rows"]
    sizes = sorted({r["index_size"] for r in rows})

    def gap(size: int, label: str) -> float:
        dense = mean(_ndcg(rows, index_size=size, reduction=label, backend="exact", representation="dense"))
        return dense - mean(_ndcg(rows, index_size=size, representation="sparse"))

    def hybrid_leads(size: int, label: str) -> bool:
        hybrid = mean(_ndcg(rows, index_size=size, reduction=label, backend="exact", representation="hybrid"))
        dense = mean(_ndcg(rows, index_size=size, reduction=label, backend="exact", representation="dense"))
        return hybrid > max(dense, mean(_ndcg(rows, index_size=size, representation="sparse")))

    labels = [label for label, _ in _reductions({"rows": [r for r in rows if r["representation"] == "dense"]})]
    crossing, fusion = [], []
    for label in labels[1:]:
        over = next((s for s in sizes if gap(s, label) <= 0), None)
        crossing.append(f"{label} at {over:,} documents" if over else f"{label} at no size")
    for label in labels:
        behind = [s for s in sizes if not hybrid_leads(s, label)]
        fusion.append(f"{label} at every size" if not behind else
                      f"{label} not at {', '.join(f'{s:,}' for s in behind)}")
    return (f"Dense (unreduced, exact) minus BM25, nDCG@10: {100 * gap(sizes[0], labels[0]):+.1f} points at "
            f"{sizes[0]:,} documents, {100 * gap(sizes[-1], labels[0]):+.1f} at {sizes[-1]:,}. BM25 reaches the "
            f"reduced dense spaces (exact search): " + ", ".join(crossing) + ". Hybrid fusion beats both its "
            "dense space and BM25: " + "; ".join(fusion) + ".\n")


# --- model rankings under approximate search (README study 4) ----------------------------------------------------


def _rank(scores: dict[str, float]) -> dict[str, int]:
    return {m: i + 1 for i, m in enumerate(sorted(scores, key=lambda m: -scores[m]))}


def _settings(run: dict[str, Any]) -> list[tuple[str, int]]:
    return [(e["name"], ef) for e in run["spec"]["backends"] for ef in e.get("ef_search") or []]


def model_ranking_table(run: dict[str, Any], ordering: str = "random") -> str:
    """nDCG@10 per model, exact and through each HNSW setting (random order): mean over seeds, the rank of
    the mean, and recall against exact kNN."""
    rows, models = run["rows"], run["spec"]["dataset"]["models"]
    settings = _settings(run)

    def ndcg(model: str, backend: str, ef: int | None) -> list[float]:
        return _ndcg(rows, model=model, backend=backend, ef=ef, ordering=ordering, representation="dense")

    exact = {m: mean(ndcg(m, "exact", None)) for m in models}
    ranks = {s: _rank({m: mean(ndcg(m, *s)) for m in models}) for s in settings}
    exact_rank = _rank(exact)
    head = ["model", "exact"] + [f"{b} ef={ef}" for b, ef in settings]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for m in sorted(models, key=exact_rank.__getitem__):
        cells = [m, f"{spread(ndcg(m, 'exact', None))} ({exact_rank[m]})"]
        for s in settings:
            recall = [r["recall"] for r in rows if r["model"] == m and r["backend"] == s[0] and r["ef"] == s[1]
                      and r["ordering"] == ordering and r["representation"] == "dense"]
            moved = "**" if ranks[s][m] != exact_rank[m] else ""
            cells.append(f"{spread(ndcg(m, *s))} ({moved}{ranks[s][m]}{moved}), recall {mean(recall):.2f}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def model_ranking_effect(run: dict[str, Any]) -> str:
    """One sentence: each model's rank under exact search and the ranks it takes through HNSW, counted over
    every (HNSW setting, ordering, seed), ranks computed within one seed."""
    rows, spec = run["rows"], run["spec"]
    models, settings = spec["dataset"]["models"], _settings(run)

    def ndcg(model: str, backend: str, ef: int | None, ordering: str, seed: int) -> float:
        return next(r["ndcg@10"] for r in rows if r["model"] == model and r["backend"] == backend and r["ef"] == ef
                    and r["ordering"] == ordering and r["representation"] == "dense" and r["seed"] == seed)

    exact_ranks: dict[str, set[int]] = {m: set() for m in models}
    through: dict[str, dict[int, int]] = {m: {} for m in models}
    total = 0
    for ordering in spec["orderings"]:
        for seed in spec["seeds"]:
            for m, rank in _rank({m: ndcg(m, "exact", None, ordering, seed) for m in models}).items():
                exact_ranks[m].add(rank)
            for backend, ef in settings:
                total += 1
                for m, rank in _rank({m: ndcg(m, backend, ef, ordering, seed) for m in models}).items():
                    through[m][rank] = through[m].get(rank, 0) + 1
    parts = []
    for m in sorted(models, key=lambda m: min(exact_ranks[m])):
        ranks = ", ".join(f"{rank} in {n}" for rank, n in sorted(through[m].items(), key=lambda kv: -kv[1]))
        parts.append(f"{m} {'/'.join(map(str, sorted(exact_ranks[m])))} exact, through HNSW {ranks}")
    return (f"Rank under exact search, and the ranks each model takes through HNSW over all {total} (setting, "
            f"ordering {' and '.join(spec['orderings'])}, seed) combinations: " + "; ".join(parts) + ".\n")


TABLES: dict[str, Callable[[dict[str, Any]], str]] = {
    "dense-sparse-table": dense_sparse_table,
    "dense-sparse-effect": dense_sparse_effect,
    "diagnostics-table": diagnostics_table,
    "diagnostics-effect": diagnostics_effect,
    "model-ranking-table": model_ranking_table,
    "model-ranking-effect": model_ranking_effect,
    "ordering-table": ordering_table,
    "ordering-effect": ordering_effect,
    "ordering-breakdown": ordering_breakdown,
    "reduction-table": reduction_table,
    "reduction-effect": reduction_effect,
    "systems-defaults": systems_defaults,
    "systems-defaults-range": systems_defaults_range,
    "systems-gap": systems_gap,
    "systems-ordering": systems_ordering,
    **figures_filtered.TABLES,
    **figures_churn.TABLES,
}


def render(text: str) -> str:
    """README text with every marked block regenerated from its run."""
    def block(m: re.Match[str]) -> str:
        return m.group(1) + TABLES[m.group("table")](load(m.group("run"))) + m.group(5)

    return BLOCK.sub(block, text)


def main(argv: list[str]) -> int:
    if len(argv) >= 1 and argv[0] == "summarize" and len(argv) == 3:
        print(summarize(Path(argv[1]), argv[2]))
        return 0
    if argv == ["write"]:
        README.write_text(render(README.read_text()))
        return 0
    if argv == ["check"]:
        current = README.read_text()
        if render(current) != current:
            print("README.md's figures differ from docs/runs: run `python scripts/readme_figures.py write`")
            return 1
        return 0
    print(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
