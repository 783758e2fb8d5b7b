"""Hard queries through the one run function: the rows carry the hardest tenth's recall beside the rest's and the
distribution of each query's ef for recall 1.0, checked against numpy on the cell's saved hnswlib index (each
query searched at every ef of the ladder here, recall counted by brute force) and the space's query measures."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from indexer.engine import runner
from indexer.engine.spec import parse_spec
from indexer.model.results import DenseRow
from indexer.science.ef_ladder import ladder

K = 10
SPEC = {
    "name": "hard-queries",
    # a 2-d and a 16-d subspace in 32-d: the 16-d one's queries have low relative contrast and lose recall
    "dataset": {"kind": "synthetic", "intrinsic_dims": [2, 16], "points_per_subspace": 600,
                "queries_per_subspace": 50, "ambient_dim": 32, "seed": 3},
    "metric": "cosine", "k": K, "orderings": ["random"], "seeds": [0], "lid": {"k": 10},
    "backends": [{"name": "hnswlib", "M": 4, "ef_construction": 16, "ef_search": [10, 40]}, {"name": "exact"}],
}


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> tuple[runner.RunResult, Path]:
    cache = tmp_path_factory.mktemp("cache")
    return runner.run(parse_spec(SPEC), cache_dir=cache), cache


def _unit(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32).astype(np.float64)


def _numpy_ef_full(cell_dir: Path, base: np.ndarray, queries: np.ndarray, efs: list[int]) -> np.ndarray:
    """Each query's first ef of `efs` at which the saved hnswlib index returns k points each at least as close as
    the k-th true one (cosine, numpy brute force); 0 where none does."""
    import hnswlib

    index = hnswlib.Index(space="ip", dim=base.shape[1])
    index.load_index(str(cell_dir / "index.bin"), max_elements=len(base))
    cosine = queries @ base.T
    kth = np.sort(cosine, axis=1)[:, -K]
    first = np.zeros(len(queries), dtype=np.int64)
    for ef in efs:
        index.set_ef(ef)
        labels, _ = index.knn_query(queries.astype(np.float32), k=K, num_threads=1)
        got = np.take_along_axis(cosine, labels.astype(np.int64), axis=1)
        distinct = np.array([len(set(row)) == K for row in labels])
        full = distinct & (got >= (kth - 1e-5 * np.abs(kth))[:, None]).all(axis=1)
        first = np.where((first == 0) & full, ef, first)
    return first


def test_rows_carry_the_ef_for_recall_one_as_numpy_finds_it(run: tuple[runner.RunResult, Path]) -> None:
    result, cache = run
    from indexer.datasets import load_dataset

    ds = load_dataset(result.spec.dataset, cache_dir=cache)
    base, queries = _unit(ds.base), _unit(ds.queries)
    graph = [r for r in result.rows if isinstance(r, DenseRow) and r.backend == "hnswlib"]
    assert len(graph) == 2
    efs = ladder(K, 1024)  # min(1024, 1,200 points, hnswlib's largest ef)
    first = _numpy_ef_full(cache / "cells" / graph[0].cell, base, queries, efs)
    ranked = np.where(first == 0, np.inf, first)
    for r in graph:
        assert r.ef_full_cap == 1024
        assert r.ef_full_capped == pytest.approx(np.mean(first == 0))
        for q, got in ((50, r.ef_full_p50), (90, r.ef_full_p90), (99, r.ef_full_p99)):
            expected = float(np.percentile(ranked, q, method="inverted_cdf"))
            assert got == (int(expected) if math.isfinite(expected) else None), q
    # a sparse graph (M 4) on this data: a wide distribution, and a few queries (over 1%) whose neighbours no ef up
    # to the cap reaches, so the 99th percentile falls among the capped ones
    row = graph[0]
    assert row.ef_full_p50 is not None and row.ef_full_p90 is not None and row.ef_full_p90 > row.ef_full_p50 >= K
    assert row.ef_full_capped is not None and row.ef_full_capped > 0.01 and row.ef_full_p99 is None


def test_the_hardest_tenth_by_relative_contrast_loses_more_recall(run: tuple[runner.RunResult, Path]) -> None:
    result, _ = run
    dense = [r for r in result.rows if isinstance(r, DenseRow)]
    for r in dense:
        assert r.recall_hardest10 is not None and r.recall_rest is not None
        assert r.query_measures is not None and r.recall_file is not None
        # recomputed from the published per-query files: the 10 lowest relative contrasts of 100 queries
        contrast = np.load(r.query_measures)["relative_contrast"]
        recall = np.load(r.recall_file).astype(np.float64)
        hard = np.argsort(contrast)[:10]
        rest = np.setdiff1d(np.arange(len(recall)), hard)
        assert r.recall_hardest10 == pytest.approx(recall[hard].mean(), abs=1e-6)
        assert r.recall_rest == pytest.approx(recall[rest].mean(), abs=1e-6)
        assert r.recall_hardest10 <= r.recall_rest + 1e-12
    lowest = min((r for r in dense if r.ef is not None), key=lambda r: r.ef)  # type: ignore[arg-type, return-value]
    assert lowest.recall_hardest10 < lowest.recall_rest - 0.05  # strictly, at the least forgiving ef


def test_exact_rows_take_no_ef_measures(run: tuple[runner.RunResult, Path]) -> None:
    result, _ = run
    exact = [r for r in result.rows if isinstance(r, DenseRow) and r.backend == "exact"]
    assert len(exact) == 1
    row = exact[0]
    assert row.ef_full_p50 is None and row.ef_full_capped is None and row.ef_full_cap is None
    assert row.recall_hardest10 == row.recall_rest == 1.0
    written = json.loads(json.dumps(row.to_json()))
    assert "ef_full_p50" not in written and "recall_hardest10" in written


def test_query_measures_file_carries_every_measure(run: tuple[runner.RunResult, Path]) -> None:
    result, _ = run
    row = next(r for r in result.rows if isinstance(r, DenseRow))
    assert row.query_measures is not None
    measures = np.load(row.query_measures)
    assert measures.dtype.names == ("lid", "relative_contrast", "expansion", "centre_distance")
    assert np.isfinite(measures["expansion"]).all() and (measures["expansion"] >= 1).all()
    assert (measures["centre_distance"] >= 0).all()


def test_the_ef_measures_come_back_from_the_saved_ladder(run: tuple[runner.RunResult, Path],
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """A new measure format measures every cell again from its saved answers and probes: the ladder's ids give the
    same figures with no index built and no ladder searched."""
    import indexer.engine.spec
    from indexer.engine import cell

    result, cache = run

    def refuse(*_a: object, **_k: object) -> None:
        raise AssertionError("searched again")

    monkeypatch.setattr(indexer.engine.spec, "MEASURE_FORMAT", indexer.engine.spec.MEASURE_FORMAT + 1)
    monkeypatch.setattr(cell, "make_index", refuse)
    monkeypatch.setattr(cell, "probe_ef_ladder", refuse)
    again = runner.run(parse_spec(SPEC), cache_dir=cache)
    fields = ("ef_full_p50", "ef_full_p90", "ef_full_p99", "ef_full_capped", "ef_full_cap", "recall_hardest10",
              "recall_rest")
    assert [[getattr(r, f) for f in fields] for r in again.rows] == [[getattr(r, f) for f in fields]
                                                                     for r in result.rows]
    assert [r.recall_file for r in again.rows] != [r.recall_file for r in result.rows]  # measured anew
