"""The README's study figures are what scripts/readme_figures.py makes of the committed run summaries, and
that script's arithmetic agrees with a recomputation written here from the summaries' rows."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from statistics import mean

import pytest

ROOT = Path(__file__).resolve().parent.parent
spec = importlib.util.spec_from_file_location("readme_figures", ROOT / "scripts" / "readme_figures.py")
assert spec is not None and spec.loader is not None
figures = importlib.util.module_from_spec(spec)
spec.loader.exec_module(figures)


def test_the_readme_figures_equal_what_the_script_makes_of_the_runs() -> None:
    text = (ROOT / "README.md").read_text()
    blocks = list(figures.BLOCK.finditer(text))
    assert blocks, "README.md has no generated figures"
    assert figures.render(text) == text, "run `python scripts/readme_figures.py write` after a new run"


def test_every_generated_study_ran_at_least_three_seeds() -> None:
    runs = {m.group("run") for m in figures.BLOCK.finditer((ROOT / "README.md").read_text())}
    for run in runs:
        summary = json.loads((ROOT / "docs" / "runs" / f"{run}.json").read_text())
        assert len(summary["spec"]["seeds"]) >= 3, run
        dense = [r for r in summary["rows"] if r.get("representation", "dense") == "dense"]  # BM25 has no seed
        measured = dense or summary.get("churn", [])  # a runbook's study has checkpoint rows instead
        assert {r["seed"] for r in measured} == set(summary["spec"]["seeds"]), run


@pytest.mark.parametrize("run", ["systems-glove"])
def test_the_defaults_table_is_the_mean_over_seeds_of_each_systems_rows(run: str) -> None:
    summary = json.loads((ROOT / "docs" / "runs" / f"{run}.json").read_text())
    table = figures.systems_defaults(summary)
    first: dict[str, dict] = {}
    for entry in summary["spec"]["backends"]:  # a system's first entry is its own defaults
        first.setdefault(entry["name"], entry)
    first.pop("exact", None)
    for name, entry in first.items():
        by_seed = {r["seed"]: r["recall"] for r in summary["rows"] if r["backend"] == name
                   and r["ordering"] == "random" and r["ef"] in entry["ef_search"] and r["M"] == entry["M"]
                   and r["ef_construction"] == entry["ef_construction"]}  # a system listed twice: one cell
        assert sorted(by_seed) == summary["spec"]["seeds"]
        recalls = list(by_seed.values())
        line = next(x for x in table.splitlines() if x.startswith(f"| {name} |"))
        assert line.split(" | ")[2].startswith(f"{mean(recalls):.3f}")


def test_a_difference_is_called_one_only_when_every_seed_agrees() -> None:
    assert figures.points([0.01, 0.02, 0.005]).endswith("every seed")
    assert figures.points([0.01, -0.02, 0.005]).endswith("mixed")
    assert figures.points([0.0, 0.0, 0.0]).endswith("mixed")
    assert figures.points([0.0002, 0.0001, 0.0003]).endswith("mixed")  # below the printed precision
    assert figures.points([0.01, 0.01, 0.01], replicated=False).endswith("one build")


def test_the_reduction_table_is_the_mean_over_seeds_of_each_reductions_rows() -> None:
    summary = json.loads((ROOT / "docs" / "runs" / "reduction.json").read_text())
    table = figures.reduction_table(summary).splitlines()
    labels = list(dict.fromkeys(r["reduction"] for r in summary["rows"]))
    assert len(table) == 2 + len(labels)
    for label, line in zip(labels, table[2:], strict=True):
        rows = [r for r in summary["rows"] if r["reduction"] == label]
        exact = [r["recall"] for r in rows if r["backend"] == "exact"]
        at40 = [r["recall_within"] for r in rows if r["backend"] == "hnswlib" and r["ef"] == 40]
        assert len(at40) == 3
        cells = [c.strip() for c in line.strip("|").split("|")]
        assert cells[1] == str(rows[0]["dims"])
        assert cells[3].startswith(f"{mean(exact):.3f}") and cells[4].startswith(f"{mean(at40):.3f}")


def test_the_model_ranks_are_the_order_of_the_mean_ndcg() -> None:
    summary = json.loads((ROOT / "docs" / "runs" / "model-ranking.json").read_text())
    table = figures.model_ranking_table(summary).splitlines()[2:]
    models = summary["spec"]["dataset"]["models"]
    exact = {m: mean(r["ndcg@10"] for r in summary["rows"] if r["model"] == m and r["backend"] == "exact"
                     and r["ordering"] == "random") for m in models}
    by_rank = sorted(models, key=lambda m: exact[m], reverse=True)
    assert [line.split("|")[1].strip() for line in table] == by_rank  # listed best first
    for rank, (m, line) in enumerate(zip(by_rank, table, strict=True), start=1):
        assert line.split("|")[2].strip().endswith(f"({rank})")
        assert line.split("|")[2].strip().startswith(f"{exact[m]:.3f}")


def _churn_row(backend: str, params: dict, seed: int, step: int, recall: float, fresh: float, qps: float,
               fresh_qps: float, ef: int, efs: tuple[int | None, int | None]) -> dict:
    return {"backend": backend, "build_params": params, "deletes": "tombstone", "seed": seed, "step": step,
            "ef": ef, "recall": recall, "baseline_recall": fresh, "qps": qps, "baseline_qps": fresh_qps,
            "deleted_returned": 0, "unreachable": step * 10 + seed,
            "ef_at_target": [{"target": 0.95, "ef": efs[0], "baseline_ef": efs[1], "qps": qps,
                              "baseline_qps": None if efs[1] is None else fresh_qps}]}


def test_the_churn_table_matches_each_entry_to_its_rows_and_recomputes_over_seeds() -> None:
    """Three entries of one system (defaults, M 16, defaults with replace_deleted) told apart by their build
    parameters; the table's figures recomputed here from the rows: the first checkpoint's mean, the worst, the
    last, its gap to the fresh index per seed, the median ef, the QPS share and the stranded points."""
    spec_ = {"backends": [{"name": "hnswlib"}, {"name": "hnswlib", "M": 16, "ef_construction": 128,
                                                 "ef_search": [64]},
                          {"name": "hnswlib", "replace_deleted": True}], "seeds": [0, 1]}
    defaults = {"M": 16, "ef_construction": 200}
    rows = []
    for seed in (0, 1):
        for params, base in ((defaults, 0.90), ({"M": 16, "ef_construction": 128}, 0.80),
                             ({**defaults, "replace_deleted": True}, 0.70)):
            rows.append(_churn_row("hnswlib", params, seed, 1, base + 0.01 * seed, 0.99, 100.0, 100.0, 10,
                                   (30, 20)))
            rows.append(_churn_row("hnswlib", params, seed, 3, base - 0.1 + 0.02 * seed, 0.98, 50.0, 100.0, 10,
                                   (40 + seed * 10, 20)))
            rows.append(_churn_row("hnswlib", params, seed, 3, 0.5, 0.5, 1.0, 1.0, 5, (None, None)))  # smaller ef
    run = {"spec": spec_, "churn": rows}
    labels = [label for label, _ in figures.figures_churn.entries(spec_)]
    assert labels == ["hnswlib defaults", "hnswlib M 16", "hnswlib +replace_deleted"]
    lines = figures.figures_churn.table(run).splitlines()[2:]
    cells = [[c.strip() for c in line.strip("|").split("|")] for line in lines]
    first = cells[0]
    assert first[0] == "hnswlib defaults (ef 10)" and first[1] == "tombstone"
    assert first[2] == f"{mean([0.90, 0.91]):.3f} (0.900–0.910)"
    assert first[3] == f"{mean([0.80, 0.82]):.3f} (0.800–0.820)"  # the worst is the last here
    assert first[5] == "0.980"
    gaps = [100 * (0.80 - 0.98), 100 * (0.82 - 0.98)]
    assert first[6] == f"{mean(gaps):+.1f} ({min(gaps):+.1f} to {max(gaps):+.1f}) every seed"
    assert first[7] == "45 / 20"  # median of 40 and 50
    assert first[8] == "0.50x" and first[9] == f"{mean([30, 31]):,.0f}"
    assert cells[1][2].startswith(f"{mean([0.80, 0.81]):.3f}") and cells[2][2].startswith(f"{mean([0.70, 0.71]):.3f}")


def test_the_filtered_table_is_the_mean_over_seeds_of_each_entrys_rows() -> None:
    """Study 7, part two: each system's defaults line, every (filter, selectivity) column recomputed here from the
    summary's filtered rows at the entry's ef (mean over orderings within a seed, then over seeds)."""
    summary = json.loads((ROOT / "docs" / "runs" / "filtered-wordnet.json").read_text())
    lines = figures.figures_filtered.table(summary).splitlines()
    columns = [(f["name"], s) for f in summary["spec"]["filters"] for s in (f.get("selectivities") or [None])]
    checked = 0
    for entry in summary["spec"]["backends"][:4]:  # hnswlib, faiss_hnsw, usearch, voyager at their defaults
        line = next(x for x in lines if x.startswith(f"| {entry['name']} defaults ("))
        cells = [c.strip() for c in line.strip("|").split("|")][1:]
        for (name, sel), cell in zip(columns, cells, strict=True):
            rows = [r for r in summary["filtered"] if r["backend"] == entry["name"] and r["filter"] == name
                    and r["selectivity"] == sel and r["ef"] == max(entry["ef_search"])
                    and r.get("M", entry["M"]) == entry["M"]]
            per_seed = [mean(r["recall"] for r in rows if r["seed"] == seed) for seed in summary["spec"]["seeds"]]
            assert cell.startswith(f"{mean(per_seed):.3f}"), (entry["name"], name, sel, cell)
            checked += 1
    assert checked == 4 * len(columns)
