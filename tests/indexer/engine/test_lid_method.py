"""LID at scale through the engine: `lid.method` picks exact or HNSW-graph LID (auto by size), the space
summary says which and, when approximate, its measured error; the LID orderings work on either."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from indexer.engine.runner import lid_method, run
from indexer.engine.spec import parse_spec
from indexer.report import render_markdown

SPEC = {
    "name": "lid-method", "k": 10, "orderings": ["lid_asc"],
    "dataset": {"kind": "synthetic", "intrinsic_dims": [2, 16], "points_per_subspace": 600,
                "queries_per_subspace": 20, "ambient_dim": 32, "seed": 3},
    "backends": [{"name": "hnswlib", "M": 8, "ef_construction": 32, "ef_search": [20]}],
    "recall_targets": [],
}


def test_auto_is_exact_up_to_the_threshold_and_approximate_above() -> None:
    spec = parse_spec(SPEC)
    assert lid_method(spec, 200_000, every_point=True) == "exact"
    assert lid_method(spec, 200_001, every_point=True) == "approximate"
    assert lid_method(spec, 10**9, every_point=False) == "sampled"
    assert lid_method(parse_spec({**SPEC, "lid": {"method": "exact"}}), 10**9, every_point=True) == "exact"
    assert "method" not in parse_spec(SPEC).model_dump(mode="json")["lid"]  # auto keeps old spec keys


def test_approximate_lid_runs_orders_and_reports_its_error(tmp_path: Path) -> None:
    exact = run(parse_spec(SPEC), cache_dir=tmp_path / "exact")
    spec = parse_spec({**SPEC, "lid": {"method": "approximate"}})
    approx = run(spec, cache_dir=tmp_path / "approx")
    (summary,) = approx.extras.space.values()
    assert summary.lid_method == "approximate"
    assert summary.lid_median_relative_error is not None and summary.lid_median_relative_error < 0.05
    assert summary.lid_rank_correlation is not None and summary.lid_rank_correlation > 0.95
    (exact_summary,) = exact.extras.space.values()
    assert "lid_method" not in exact_summary.to_json()  # exact, as every report before wrote it
    md = render_markdown(spec, approx.rows, approx.extras)
    assert "from an HNSW kNN graph" in md and "Spearman rank correlation" in md
    # the lid_asc orderings built from the two estimates start in the same (low-LID) subspace
    assert np.isclose(approx.rows[0].recall, exact.rows[0].recall, atol=0.1)
