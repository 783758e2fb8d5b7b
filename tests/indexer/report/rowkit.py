"""Rows shaped exactly as the engine writes them (indexer.model.results), for report tests that need
many rows of chosen values without running the engine."""

from __future__ import annotations

from typing import Any

HNSW_PARAMS = {"M": 8, "ef_construction": 40}
IR_NONE = {"ndcg@10": None, "mrr@10": None, "recall@100": None}


def dense_row(**fields: Any) -> dict[str, Any]:
    """A DenseRow's JSON: an hnswlib cell at ef 10 unless `fields` say otherwise (pass M/ef_construction
    for hnswlib-like backends; an exact row takes none)."""
    backend = fields.get("backend", "hnswlib")
    row: dict[str, Any] = {
        "dataset": "synthetic", "model": None, "metric": "cosine", "index_size": 1200, "reduction": "none",
        "dims": 32, "representation": "dense", "ordering": "random", "backend": backend,
        **(HNSW_PARAMS if backend in ("hnswlib", "faiss_hnsw") else {}),
        "k": 10, "seed": 0, "library_seed": 7, "library_version": "0.8.0", "order_controlled": True,
        "build_seconds": 0.5, "index_bytes": 40_000, "bytes_per_vector": 128, "cell": "c0", "ef": 10,
        "recall": 0.8, "recall_std": 0.1, "recall_ci95": [0.79, 0.81], "recall_within": None, "qps": 1234.5,
        "qps_passes": 3, "recall_by_category": {}, "recall_by_lid_bin": [], "cost_at_recall": [], "neighbors": None,
    }  # fmt: skip
    row.update(fields)
    return row


def sparse_row(**fields: Any) -> dict[str, Any]:
    """A SparseRow's JSON: BM25 over one index size (no ordering, no ef, no seed)."""
    row: dict[str, Any] = {
        "dataset": "x", "model": None, "metric": "bm25", "index_size": 1000, "reduction": "none", "dims": None,
        "representation": "sparse", "ordering": None, "backend": "bm25", "ef": None, "k": 10, "seed": None,
        "build_seconds": 0.2, "qps": 50.0, "index_bytes": 3, "recall": None, "neighbors": None,
        "ndcg@10": 0.5, "mrr@10": 0.4, "recall@100": 0.9,
    }  # fmt: skip
    row.update(fields)
    return row
