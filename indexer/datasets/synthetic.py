"""Vectors on random linear subspaces: the subspace's size sets the intrinsic dimensionality.

As in Elliott & Clark 2024: each subspace has an orthonormal basis in the ambient space; points are
Gaussian coordinates in that basis, optionally with ambient Gaussian noise. The subspace index is
the category label. Queries come from the same subspaces, drawn separately (held out).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from indexer.datasets.base import Dataset
from indexer.engine.spec import SyntheticDataset


def subspace_basis(rng: np.random.Generator, ambient_dim: int, intrinsic_dim: int) -> np.ndarray:
    """An (intrinsic_dim, ambient_dim) matrix with orthonormal rows (QR of a Gaussian matrix)."""
    q, _ = np.linalg.qr(rng.standard_normal((ambient_dim, intrinsic_dim)))
    return q.T


def _sample(rng: np.random.Generator, basis: np.ndarray, n: int, noise: float) -> np.ndarray:
    x: np.ndarray = rng.standard_normal((n, basis.shape[0])) @ basis
    if noise > 0:
        x += noise * rng.standard_normal(x.shape)
    return x


def load(spec: SyntheticDataset, *, model: str | None = None, cache_dir: Path | None = None) -> Dataset:
    rng = np.random.default_rng(spec.seed)
    base, queries, labels, qlabels = [], [], [], []
    for label, dim in enumerate(spec.intrinsic_dims):
        basis = subspace_basis(rng, spec.ambient_dim, dim)
        base.append(_sample(rng, basis, spec.points_per_subspace, spec.noise))
        queries.append(_sample(rng, basis, spec.queries_per_subspace, spec.noise))
        labels.append(np.full(spec.points_per_subspace, label, dtype=np.int64))
        qlabels.append(np.full(spec.queries_per_subspace, label, dtype=np.int64))
    xb = np.concatenate(base).astype(np.float32)
    xq = np.concatenate(queries).astype(np.float32)
    if spec.normalize:
        xb /= np.maximum(np.linalg.norm(xb, axis=1, keepdims=True), 1e-12)
        xq /= np.maximum(np.linalg.norm(xq, axis=1, keepdims=True), 1e-12)
    return Dataset(
        name="synthetic",
        base=xb,
        queries=xq,
        labels=np.concatenate(labels),
        query_labels=np.concatenate(qlabels),
        label_names=[f"subspace-{i}-dim{d}" for i, d in enumerate(spec.intrinsic_dims)],
    )
