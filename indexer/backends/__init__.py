"""Backend registry: spec backend name -> index class (an explicit dict, no discovery magic)."""

from __future__ import annotations

from typing import Any

from indexer.backends.base import VectorIndex
from indexer.backends.exact import ExactIndex
from indexer.backends.faiss_hnsw import FaissHnswIndex
from indexer.backends.hnswlib_index import HnswlibIndex
from indexer.seeds import library_seed

BACKENDS: dict[str, type] = {"hnswlib": HnswlibIndex, "faiss_hnsw": FaissHnswIndex, "exact": ExactIndex}


def build_params(backend_spec: Any) -> dict[str, Any]:
    """Build parameters of a backend spec (the ef sweep is a query parameter, kept apart)."""
    return backend_spec.model_dump(exclude={"name", "ef_search"})


def make_index(backend_spec: Any, dim: int, metric: str, seed: int, search_threads: int = 1) -> VectorIndex:
    """A new index for the spec's `seed`; the library gets a seed derived from it (indexer.seeds)."""
    cls = BACKENDS[backend_spec.name]
    index: VectorIndex = cls(dim, metric, seed=library_seed(seed, backend_spec.name),
                             search_threads=search_threads, **build_params(backend_spec))
    return index


def ef_values(backend_spec: Any) -> list[int | None]:
    return list(getattr(backend_spec, "ef_search", [None]))


__all__ = ["BACKENDS", "VectorIndex", "make_index", "build_params", "ef_values"]
