"""Model rankings under approximate search and dense/sparse crossings, on hand-built rows."""

from __future__ import annotations

from indexer.engine.runner import model_ranking, size_crossings


def _row(model, backend, ef, ndcg, size=100, rep="dense"):
    return {"model": model, "backend": backend, "ef": ef, "ndcg@10": ndcg, "index_size": size,
            "reduction": "none", "dims": 8, "ordering": "random", "seed": 0, "M": 8, "ef_construction": 16,
            "representation": rep}


def test_rank_changes_against_exact_are_counted():
    rows = [_row("a", "exact", None, 0.9), _row("b", "exact", None, 0.8), _row("c", "exact", None, 0.7),
            _row("a", "hnswlib", 10, 0.5), _row("b", "hnswlib", 10, 0.75), _row("c", "hnswlib", 10, 0.6)]
    out = {r["backend"]: r for r in model_ranking(rows)}
    assert out["exact"]["max_change"] == 0
    ranking = {e["model"]: e for e in out["hnswlib"]["ranking"]}
    # under HNSW: b (0.75) > c (0.6) > a (0.5); exact: a > b > c
    assert [e["model"] for e in out["hnswlib"]["ranking"]] == ["b", "c", "a"]
    assert ranking["a"]["change"] == 1 - 3 and ranking["b"]["change"] == 2 - 1 and ranking["c"]["change"] == 3 - 2
    assert out["hnswlib"]["max_change"] == 2


def test_crossing_is_found_between_the_sizes_where_the_sign_flips():
    rows = [_row("m", "exact", None, v, size=n) for n, v in ((1000, 0.8), (10000, 0.6), (100000, 0.4))]
    rows += [_row(None, "bm25", None, v, size=n, rep="sparse") for n, v in ((1000, 0.7), (10000, 0.55), (100000, 0.5))]
    (curve,) = size_crossings(rows)
    assert curve["crosses_between"] == [10000, 100000]
    assert round(curve["dense_minus_sparse"][1000], 6) == 0.1


def test_no_crossing_when_dense_stays_ahead():
    rows = [_row("m", "exact", None, v, size=n) for n, v in ((10, 0.9), (20, 0.8))]
    rows += [_row(None, "bm25", None, v, size=n, rep="sparse") for n, v in ((10, 0.5), (20, 0.4))]
    assert size_crossings(rows)[0]["crosses_between"] is None
