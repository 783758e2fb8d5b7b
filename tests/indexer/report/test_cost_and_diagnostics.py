"""The cost-at-equal-recall and diagnostics sections: the Pareto front against its definition, and both
sections render, in Markdown and in HTML, from engine-shaped rows."""

from __future__ import annotations

import itertools

import numpy as np

from indexer.engine.spec import parse_spec
from indexer.report import render_html, render_markdown
from indexer.report.sections.cost import pareto
from tests.indexer.report.rowkit import dense_row


def test_the_pareto_front_is_the_points_nothing_beats_on_both_axes() -> None:
    rng = np.random.default_rng(0)
    for _ in range(50):
        pts = [(float(a), float(b)) for a, b in rng.integers(0, 8, size=(12, 2))]
        dominated = {p for p, q in itertools.permutations(set(pts), 2)
                     if q[0] >= p[0] and q[1] >= p[1] and q != p}
        assert set(pareto(pts)) == set(pts) - dominated


def _rows() -> list[dict]:
    rows = []
    for i, ordering in enumerate(("random", "lid_asc")):
        for ef in (10, 40):
            rows.append(dense_row(
                ordering=ordering, ef=ef, cell=f"c{i}", recall=0.7 + ef / 200 - 0.05 * i, qps=5000.0 / ef,
                cost_at_recall=[{"target": 0.9, "ef": 60 + 40 * i, "recall": 0.91, "qps": 90.0,
                                 "held_out_recall": 0.9, "held_out_ci95": [0.88, 0.92],
                                 "distance_computations": None},
                                {"target": 0.95, "ef": None if i else 150, "recall": None if i else 0.95,
                                 "held_out_recall": None if i else 0.949, "held_out_ci95": [None, None],
                                 "qps": None if i else 30.0, "distance_computations": None}],
                graph={"unreachable": 3 * i, "unreachable_from_all_upper": i, "zero_in_degree": 2 + i,
                       "in_degree": {"min": 0, "p1": 1, "median": 8, "p99": 30, "max": 61, "mean": 9.5},
                       "hubness": 1.5, "data_hubness": 4.0},
                self_miss=0.1 + 0.05 * i - ef / 1000, self_miss_sampled=1200,
                diagnostics_by_category=[{"group": "a", "size": 600, "self_miss": 0.2, "unreachable": 0.01,
                                          "zero_in_degree": 0.02}],
            ))
    return rows


def test_both_sections_render_with_their_numbers() -> None:
    spec = parse_spec({"name": "cost", "dataset": {"kind": "synthetic", "intrinsic_dims": [2]},
                       "orderings": ["random", "lid_asc"],
                       "backends": [{"name": "hnswlib", "M": 8, "ef_construction": 40, "ef_search": [10, 40]}]})
    md = render_markdown(spec, _rows(), None)
    assert "## Cost at equal recall" in md and "Cost to reach recall 0.95" in md
    assert "| random | 150 · 30 |" in md and "| lid_asc | not reached |" in md
    assert "## Why recall is lost: graph diagnostics" in md
    assert "| hnswlib | lid_asc | 3 | 3 | 1 / 8 / 30 / 61 | 1.50 | 4.00 | 0.140 | 0.110 | 0.700 | not reached |" in md
    page = render_html(spec, _rows(), None)
    assert "Pareto front" in page and "could not be drawn" not in page
    assert "Share of base points whose own vector does not find them first" in page  # the self-miss figure
