"""The hard-queries section: the hardest tenth's recall beside the rest's at each ef, and the ef each query needs
for recall 1.0 (means over seeds, a percentile among capped queries shown above the cap), in Markdown and HTML,
from engine-shaped rows; absent when no row took the measures."""

from __future__ import annotations

from indexer.engine.spec import parse_spec
from indexer.report import render_html, render_markdown
from tests.indexer.report.rowkit import dense_row

SPEC = parse_spec({"name": "hard", "dataset": {"kind": "synthetic", "intrinsic_dims": [2]},
                   "orderings": ["random", "lid_asc"],
                   "backends": [{"name": "hnswlib", "M": 8, "ef_construction": 40, "ef_search": [10, 40]},
                                {"name": "exact"}]})


def _rows() -> list[dict]:
    rows = []
    for seed, ordering, ef in ((s, o, e) for s in (0, 1) for o in ("random", "lid_asc") for e in (10, 40)):
        ladder = {"ef_full_p50": 10, "ef_full_p90": 40 + 40 * seed, "ef_full_p99": 320 if ordering == "random" else None,
                  "ef_full_capped": 0.0 if ordering == "random" else 0.02 + 0.02 * seed, "ef_full_cap": 1024}
        cost = [{"target": 0.95, "ef": 20 + 20 * seed if ordering == "random" else None, "recall": 0.96,
                 "held_out_recall": 0.95, "held_out_ci95": [0.9, 1.0], "qps": 100.0, "distance_computations": None}]
        rows.append(dense_row(ordering=ordering, seed=seed, ef=ef, cell=f"{ordering}{seed}", cost_at_recall=cost,
                              recall_hardest10=0.5 + ef / 100 + 0.1 * seed, recall_rest=0.9, **ladder))
    rows.append(dense_row(backend="exact", ef=None, recall=1.0, cell="x", recall_hardest10=1.0, recall_rest=1.0))
    return rows


def test_the_section_renders_its_numbers() -> None:
    md = render_markdown(SPEC, _rows(), None)
    assert "## Hard queries" in md
    # hardest 10% at ef 10: 0.6 and 0.7 over the seeds; the rest 0.9; the gap in points
    assert "| hnswlib | random | 10 | 0.650 | 0.900 | 25.0 |" in md
    assert "| hnswlib | lid_asc | 40 | 0.950 | 0.900 | -5.0 |" in md
    # per cell: p90 40 and 80 over the seeds; lid_asc's p99 falls among capped queries in every seed
    # beside the ef at which the mean recall reaches 0.95: 20 and 40 over the seeds
    assert "| hnswlib | random | 10 | 60 | 320 | 0.0 | 1,024 | 30 |" in md
    assert "| hnswlib | lid_asc | 10 | 60 | > 1,024 | 3.0 | 1,024 | not reached |" in md
    assert "| exact |" not in md.split("## Hard queries")[1].split("\n## ")[0]  # exact search: 1.0 everywhere
    assert "Hard queries" in render_html(SPEC, _rows(), None)


def test_no_section_without_the_measures() -> None:
    assert "## Hard queries" not in render_markdown(SPEC, [dense_row()], None)
