"""The advisor: its pick is the cheapest confirmed configuration, and it reaches its target on the held-out
queries when checked with the raw library against numpy brute force."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import hnswlib
import numpy as np
import pytest

from indexer.engine.advisor import advise
from indexer.engine.runner import run
from indexer.engine.spec import built_backends, cells, parse_spec
from indexer.model.results import DenseRow, parse_rows
from tests.indexer.report.rowkit import dense_row

SPEC = {
    "name": "advise", "k": 10, "orderings": ["random", "lid_asc"],
    "dataset": {"kind": "synthetic", "intrinsic_dims": [2, 16], "points_per_subspace": 600,
                "queries_per_subspace": 40, "ambient_dim": 32, "seed": 3},
    "backends": [{"name": "hnswlib", "ef_search": [10]}, {"name": "exact"}],
    "advise": {"target_recall": 0.95, "M": [4, 16], "ef_construction": [16, 64]},
}


def _row(cell: str, qps: float, build: float, size: int, held_out: float,
         qps_range: list[float] | None = None) -> DenseRow:
    cost = {"target": 0.9, "ef": 50, "recall": 0.91, "held_out_recall": held_out, "held_out_ci95": [0.8, 1.0],
            "qps": qps, "qps_range": qps_range, "distance_computations": None}
    row = parse_rows([dense_row(cell=cell, build_seconds=build, index_bytes=size, cost_at_recall=[cost])])[0]
    assert isinstance(row, DenseRow)
    return row


def test_the_cheapest_confirmed_configuration_is_picked_for_each_cost() -> None:
    rows = [_row("a", 100.0, 1.0, 10, 0.92), _row("b", 300.0, 3.0, 30, 0.95), _row("c", 900.0, 0.5, 5, 0.85)]
    advice = advise(rows, 0.9)
    assert (advice.tried, advice.reached) == (3, 3)
    assert advice.fastest_queries and advice.fastest_queries.qps == 300.0  # c is faster but not confirmed
    assert advice.fastest_build and advice.fastest_build.build_seconds == 1.0
    assert advice.smallest and advice.smallest.index_bytes == 10
    only_unconfirmed = advise([_row("c", 900.0, 0.5, 5, 0.85)], 0.9)
    assert only_unconfirmed.fastest_queries and not only_unconfirmed.fastest_queries.confirmed
    assert advise([], 0.9).fastest_queries is None


def test_configurations_whose_timed_passes_overlap_are_not_ranked() -> None:
    rows = [_row("a", 300.0, 1.0, 10, 0.95, [280.0, 320.0]), _row("b", 290.0, 1.0, 10, 0.95, [250.0, 295.0]),
            _row("c", 200.0, 1.0, 10, 0.95, [190.0, 210.0])]
    advice = advise(rows, 0.9)
    assert advice.fastest_queries and advice.fastest_queries.qps == 300.0
    assert [c.qps for c in advice.fastest_queries_ties] == [290.0]  # b's passes reach a's; c's do not
    assert advise(rows[:1] + rows[2:], 0.9).fastest_queries_ties == []


def test_the_grid_builds_every_m_and_ef_construction_of_each_hnsw_backend() -> None:
    spec = parse_spec(SPEC)
    assert [(b.M, b.ef_construction) for b in built_backends(spec, spec.backends[0])] == [
        (4, 16), (4, 64), (16, 16), (16, 64)]
    assert len(cells(spec)) == 2 * (4 + 1)  # orderings x (grid + exact)


def test_the_pick_reaches_its_target_on_the_held_out_queries(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    result = run(parse_spec(SPEC), cache_dir=cache)
    advice = result.extras.advice
    assert advice is not None and advice.tried == 8 and advice.fastest_queries is not None
    pick = advice.fastest_queries
    assert pick.confirmed
    row = next(r for r in result.rows if isinstance(r, DenseRow) and r.backend == "hnswlib"
               and r.ordering == pick.ordering and dict(r.build_params) == pick.build_params)
    vdir = next((cache / "vectors").iterdir())
    base, queries = np.load(vdir / "base.npy"), np.load(vdir / "queries.npy")
    held_out = queries[1::2]
    truth = np.argsort(-(held_out.astype(np.float64) @ base.astype(np.float64).T), axis=1, kind="stable")[:, :10]
    index = hnswlib.Index(space="ip", dim=base.shape[1])
    index.load_index(str(cache / "cells" / row.cell / "index.bin"))
    index.set_ef(pick.ef)
    found, _ = index.knn_query(held_out, k=10)
    recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(found, truth, strict=True)])
    assert recall >= 0.95
    assert recall == pytest.approx(pick.held_out_recall, abs=1e-4)


def test_the_cli_prints_the_three_picks_and_refuses_a_bad_grid(tmp_path: Path) -> None:
    spec = tmp_path / "spec.yaml"
    spec.write_text(str({k: v for k, v in SPEC.items() if k != "advise"}).replace("'", '"'))
    cmd = [sys.executable, "-m", "indexer.cli", "advise", str(spec), "--out", str(tmp_path / "out"), "-q",
           "--cache-dir", str(tmp_path / "cache"), "--m", "4,8", "--ef-construction", "16"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("tried 4 configurations")
    assert [line.split(":")[0] for line in lines[1:4]] == ["fastest queries", "fastest build", "smallest index"]
    bad = subprocess.run([*cmd[:-4], "--m", "four"], capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "--m takes whole numbers" in bad.stderr


def test_a_spent_budget_builds_nothing_new_but_uses_every_cached_configuration(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    tight = {**SPEC, "advise": {**SPEC["advise"], "budget_minutes": 1e-9}}
    first = run(parse_spec(tight), cache_dir=cache)
    assert first.extras.advice is not None
    assert (first.extras.advice.tried, first.extras.advice.not_built) == (0, 10)  # 2 orderings x (4 + exact)
    assert any("budget" in note for note in first.extras.notes)
    run(parse_spec(SPEC), cache_dir=cache)  # builds everything
    again = run(parse_spec(tight), cache_dir=cache).extras.advice
    assert again is not None and (again.tried, again.not_built) == (8, 0)  # cached cells cost nothing


def test_the_advisor_grid_counts_toward_every_bound_on_a_spec() -> None:
    """What a client controls with `advise` (grid lists of up to 8 values each) is counted before any work:
    the spec's own cell cap and the service's admission limit see the expanded grid."""
    from indexer.common.errors import UserError
    from indexer.engine.admission import Limits, admit
    from indexer.engine.spec import MAX_CELLS, SpecError, grid_size

    spec = parse_spec(SPEC)
    assert grid_size(spec) == len(cells(spec)) == 10
    with pytest.raises(UserError, match="max_cells: the grid has 10 indexes to build, over the limit of 9"):
        admit(spec, Limits(max_cells=9))
    wide = {**SPEC, "orderings": ["random", "lid_asc", "lid_desc", "category", "cluster", "given"],
            "backends": [{"name": "hnswlib", "ef_construction": 10 + i} for i in range(32)],
            "advise": {"M": [4, 8, 12, 16, 24, 32, 48, 64], "ef_construction": [16, 32, 64, 128, 256, 512, 1024, 2048]}}
    with pytest.raises(SpecError, match=f"the grid has 12288 cells .* at most {MAX_CELLS}"):
        parse_spec(wide)
