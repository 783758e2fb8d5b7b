"""The analyses over typed rows: model rankings, dense/sparse crossings, distributions of space measures."""

from __future__ import annotations

import numpy as np
import pytest

from indexer.model.results import Crossing, DenseRow, ModelRanking, SparseRow
from indexer.science.analysis import distribution, model_ranking, size_crossings, space_summary


def _dense(model: str, backend: str, ef: int | None, ndcg: float, size: int = 100) -> DenseRow:
    params = {"M": 8, "ef_construction": 16} if backend == "hnswlib" else {}
    return DenseRow(
        dataset="d", model=model, metric="cosine", index_size=size, reduction="none", dims=8, ordering="random",
        backend=backend, build_params=params, k=10, seed=0, library_seed=1, library_version="0.8.0",
        order_controlled=True, build_seconds=0.1, index_bytes=1,
        bytes_per_vector=32, cell=f"{model}-{backend}-{size}", ef=ef, recall=1.0, recall_std=0.0,
        recall_ci95=[1.0, 1.0], recall_within=1.0, qps=1.0, qps_passes=3, recall_by_category={},
        recall_by_lid_bin=[], cost_at_recall=[], neighbors=None, **{"ndcg@10": ndcg, "mrr@10": ndcg, "recall@100": ndcg},
    )


def _sparse(ndcg: float, size: int) -> SparseRow:
    return SparseRow(dataset="d", index_size=size, k=10, build_seconds=0.1, qps=1.0, index_bytes=1, neighbors=None,
                     **{"ndcg@10": ndcg, "mrr@10": ndcg, "recall@100": ndcg})


def test_model_ranking_of_typed_rows() -> None:
    rows = [_dense("a", "exact", None, 0.9), _dense("b", "exact", None, 0.8),
            _dense("a", "hnswlib", 10, 0.5), _dense("b", "hnswlib", 10, 0.75)]
    out = {r.backend: r for r in model_ranking(rows)}
    assert all(isinstance(r, ModelRanking) for r in out.values())
    hnsw = out["hnswlib"]
    assert [e.model for e in hnsw.ranking] == ["b", "a"] and hnsw.max_change == 1
    assert hnsw.build_params == {"M": 8, "ef_construction": 16}
    assert out["exact"].build_params == {}
    first = hnsw.to_json()["ranking"][0]
    assert first == {"model": "b", "ndcg@10": 0.75, "rank": 1, "exact_rank": 2, "change": 1}
    assert list(hnsw.to_json())[:6] == ["index_size", "reduction", "ordering", "backend", "M", "ef_construction"]


def test_size_crossings_of_typed_rows() -> None:
    rows = [_dense("m", "exact", None, v, size=n) for n, v in ((10, 0.8), (20, 0.6), (40, 0.4))]
    rows += [_sparse(v, n) for n, v in ((10, 0.7), (20, 0.55), (40, 0.5))]
    (curve,) = size_crossings(rows)
    assert isinstance(curve, Crossing) and curve.crosses_between == [20, 40]
    assert curve.dense_minus_sparse[10] == pytest.approx(0.1)


def test_distribution_leaves_out_nan_and_inf() -> None:
    d = distribution(np.array([1.0, 2.0, 3.0, np.nan, np.inf]))
    assert d.n == 3 and d.median == 2.0 and d.histogram is not None and sum(d.histogram.counts) == 3
    assert distribution(np.array([np.nan])).to_json() == {"n": 0}


def test_space_summary_types_the_measures() -> None:
    lids = np.array([2.0, 4.0, 4.0])
    out = space_summary(lids, lids, {"isoscore": np.array(0.5), "relative_contrast": np.array([1.5, 2.5])},
                        dims=8, n=3, reduction={"name": "none", "dims": 8})
    assert out.isoscore == 0.5 and out.relative_contrast.mean == 2.0 and out.lid_base.n == 3
    assert out.lid_global == pytest.approx(1 / np.mean(1 / lids))
    assert list(out.to_json()) == ["lid_base", "lid_queries", "lid_global", "isoscore", "relative_contrast",
                                   "dims", "n", "reduction"]
