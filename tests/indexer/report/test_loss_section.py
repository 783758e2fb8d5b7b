"""The loss section: each cell's lost recall by cause (means over seeds) in a table, and a waterfall in the HTML;
absent when only the graph can lose (float32, unreduced, nothing re-ranked)."""

from __future__ import annotations

from indexer.engine.spec import parse_spec
from indexer.report import render_html, render_markdown
from tests.indexer.report.rowkit import dense_row

SPEC = parse_spec({"name": "loss", "dataset": {"kind": "synthetic", "intrinsic_dims": [2]},
                   "backends": [{"name": "faiss_hnsw", "M": 8, "ef_search": [10, 40], "precision": "i8"},
                                {"name": "hnswlib", "M": 8, "ef_construction": 40, "ef_search": [10, 40]}]})


def _rows() -> list[dict]:
    rows = []
    for seed, ef in ((s, e) for s in (0, 1) for e in (10, 40)):
        stored = 0.96 + 0.02 * seed  # 0.97 over the seeds
        recall = 0.80 + ef / 400  # 0.825 at ef 10, 0.9 at ef 40
        rows.append(dense_row(backend="faiss_hnsw", seed=seed, ef=ef, cell=f"q{seed}",
                              precision="i8", bytes_per_vector=32, recall=recall, recall_stored=stored,
                              loss_representation=1 - stored, loss_graph=stored - recall))
        rows.append(dense_row(seed=seed, ef=ef, cell=f"h{seed}", recall=0.95, recall_stored=1.0,
                              loss_representation=0.0, loss_graph=0.05))
    return rows


def test_the_section_renders_its_numbers() -> None:
    md = render_markdown(SPEC, _rows(), None)
    assert "## Where the lost recall goes" in md
    section = md.split("## Where the lost recall goes")[1].split("\n## ")[0]
    # i8 at ef 10: recall 0.825; representation 3.0 points (1 - 0.97); graph 0.97 - 0.825 = 14.5 points
    assert "| i8 | 32 | random | 10 | 0.825 | 3.0 | 14.5 | – |" in section, section
    assert "| f32 | 128 | random | 40 | 0.950 | 0.0 | 5.0 | – |" in section, section
    html = render_html(SPEC, _rows(), None)
    assert "Where the lost recall goes" in html and "<svg" in html.split("Where the lost recall goes")[1]


def test_no_section_when_only_the_graph_can_lose() -> None:
    rows = [r for r in _rows() if r["backend"] == "hnswlib"]
    assert "Where the lost recall goes" not in render_markdown(SPEC, rows, None)
