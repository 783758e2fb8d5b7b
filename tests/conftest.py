"""Shared fixtures: small specs that run in seconds, and an isolated data directory per test."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


@pytest.fixture
def tiny_spec_dict() -> dict:
    """Two subspaces of very different intrinsic dimension in 32-d: seconds to run, LID spread built in."""
    return {
        "name": "tiny",
        "dataset": {"kind": "synthetic", "intrinsic_dims": [2, 16], "points_per_subspace": 600,
                    "queries_per_subspace": 30, "ambient_dim": 32, "seed": 3},
        "metric": "cosine",
        "k": 10,
        "orderings": ["random", "lid_asc", "category"],
        "backends": [
            {"name": "hnswlib", "M": 8, "ef_construction": 40, "ef_search": [10, 60]},
            {"name": "faiss_hnsw", "M": 8, "ef_construction": 40, "ef_search": [10, 60]},
            {"name": "exact"},
        ],
        "seeds": [0],
        "lid": {"k": 10},
    }


@pytest.fixture
def cache_dir(tmp_path: Path) -> Path:
    return tmp_path / "cache"
