"""Cost at equal recall and graph diagnostics through the engine, checked against the saved index opened with
the raw library and measured independently (numpy brute force, scipy's breadth-first search)."""

from __future__ import annotations

from pathlib import Path

import hnswlib
import numpy as np
import pytest
import scipy.sparse as sp
from scipy.sparse.csgraph import breadth_first_order

from indexer.engine.runner import run
from indexer.engine.spec import parse_spec
from indexer.model.results import DenseRow


@pytest.fixture(scope="module")
def result(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[DenseRow], Path]:
    cache = tmp_path_factory.mktemp("cache")
    spec = parse_spec({
        "name": "diag", "k": 10, "orderings": ["random", "lid_asc"],
        "dataset": {"kind": "synthetic", "intrinsic_dims": [2, 16], "points_per_subspace": 600,
                    "queries_per_subspace": 30, "ambient_dim": 32, "seed": 3},
        "backends": [{"name": "hnswlib", "M": 4, "ef_construction": 16, "ef_search": [10, 40]},
                     {"name": "faiss_hnsw", "M": 4, "ef_construction": 16, "ef_search": [10]}, {"name": "exact"}],
        "recall_targets": [0.9, 0.95], "diagnostics": {"self_miss_sample": 1200},
    })
    rows = [r for r in run(spec, cache_dir=cache).rows if isinstance(r, DenseRow)]
    return rows, cache


def _truth(cache: Path, row: DenseRow) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The cell's vectors, queries and exact top-10 by numpy brute force (the synthetic set is unit-norm: ip)."""
    vdir = next((cache / "vectors").iterdir())
    base, queries = np.load(vdir / "base.npy"), np.load(vdir / "queries.npy")
    truth = np.argsort(-(queries.astype(np.float64) @ base.astype(np.float64).T), axis=1, kind="stable")[:, :10]
    return base, queries, truth


def test_the_ef_found_for_each_target_reaches_it_on_the_saved_index(result: tuple[list[DenseRow], Path]) -> None:
    rows, cache = result
    row = next(r for r in rows if r.backend == "hnswlib")
    base, queries, truth = _truth(cache, row)
    index = hnswlib.Index(space="ip", dim=base.shape[1])
    index.load_index(str(cache / "cells" / row.cell / "index.bin"))
    def recall(ef: int, picked: slice) -> float:
        index.set_ef(ef)
        found, _ = index.knn_query(queries[picked], k=10)
        return float(np.mean([len(set(a) & set(b)) / 10 for a, b in zip(found, truth[picked], strict=True)]))

    validation, held_out = slice(0, None, 2), slice(1, None, 2)
    for cost in row.cost_at_recall:
        assert cost.ef is not None and cost.qps and cost.qps > 0
        assert recall(cost.ef, validation) >= cost.target - 1e-9, cost  # found on the even queries
        if cost.ef > 10:  # one less does not reach it: the smallest
            assert recall(cost.ef - 1, validation) < cost.target
        assert cost.held_out_recall == pytest.approx(recall(cost.ef, held_out), abs=1e-4)  # confirmed on the odd
        assert cost.held_out_ci95[0] <= cost.held_out_recall <= cost.held_out_ci95[1]
        assert cost.confirmed is (recall(cost.ef, held_out) >= cost.target)
        both = cost.ef_both_halves  # the smallest ef at which neither half falls short
        assert both is not None and min(recall(both, validation), recall(both, held_out)) >= cost.target - 1e-9
        if both > 10:
            assert min(recall(both - 1, validation), recall(both - 1, held_out)) < cost.target
        assert cost.qps_range is not None and cost.qps_range[0] <= cost.qps <= cost.qps_range[1]
    faiss_row = next(r for r in rows if r.backend == "faiss_hnsw")
    assert all(c.distance_computations and c.distance_computations > 0 for c in faiss_row.cost_at_recall)
    assert all(r.cost_at_recall == [] for r in rows if r.backend == "exact")


def test_self_miss_matches_searching_every_point_for_itself(result: tuple[list[DenseRow], Path]) -> None:
    rows, cache = result
    row = next(r for r in rows if r.backend == "hnswlib" and r.ef == 10)
    base, _, _ = _truth(cache, row)
    index = hnswlib.Index(space="ip", dim=base.shape[1])
    index.load_index(str(cache / "cells" / row.cell / "index.bin"))
    index.set_ef(10)
    found, _ = index.knn_query(base, k=1)
    # a miss: rank 1 is another point that scores worse than the point itself (a near-duplicate is a tie)
    x = base.astype(np.float64)
    own, got = (x * x).sum(1), (x * x[found[:, 0].astype(np.int64)]).sum(1)
    missed = (found[:, 0] != np.arange(len(base))) & (got < own - 1e-6 * own)
    assert row.self_miss_sampled == len(base)
    assert row.self_miss == pytest.approx(float(missed.mean()), abs=1e-4)
    cats = {g.group: g for g in row.diagnostics_by_category}
    assert sum(g.size for g in cats.values()) == len(base)
    assert row.graph is not None and row.graph.data_hubness is not None


def test_unreachable_points_are_those_a_breadth_first_search_does_not_visit(
        result: tuple[list[DenseRow], Path]) -> None:
    """Layer 0 read with faiss's public arrays from a faiss row's saved index; BFS by scipy from the entry."""
    import faiss

    rows, cache = result
    row = next(r for r in rows if r.backend == "faiss_hnsw")
    index = faiss.read_index(str(cache / "cells" / row.cell / "index.bin"))
    hnsw = index.hnsw
    nbrs = faiss.vector_to_array(hnsw.neighbors)
    offsets = faiss.vector_to_array(hnsw.offsets).astype(np.int64)
    width = int(faiss.vector_to_array(hnsw.cum_nneighbor_per_level)[1])
    n = index.ntotal
    src, dst = [], []
    for i in range(n):
        for j in nbrs[offsets[i]: offsets[i] + width]:
            if j < 0:
                break
            src.append(i)
            dst.append(int(j))
    adj = sp.csr_matrix((np.ones(len(src)), (src, dst)), shape=(n, n))
    seen = breadth_first_order(adj, int(hnsw.entry_point), directed=True, return_predecessors=False)
    assert row.graph is not None
    assert row.graph.unreachable == n - len(seen)
    assert row.graph.zero_in_degree == int((np.bincount(np.asarray(dst), minlength=n) == 0).sum())
