"""Dimensionality reductions, fitted on the base set and applied alike to base and queries.

Each reduction is a small object with `transform`, `describe` and `dims`, so the runner can
measure recall against exact search in the reduced space and record exactly what was kept.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, Protocol

import numpy as np
import scipy.fft

from indexer.common.errors import DataError, UserError
from indexer.model.options import ReductionSpec

log = logging.getLogger(__name__)


class Reducer(Protocol):
    """A fitted map from the native space (n, d) to the reduced space (n, dims)."""

    dims: int

    def transform(self, x: np.ndarray) -> np.ndarray: ...

    def describe(self) -> dict[str, Any]: ...


def _as_matrix(x: np.ndarray, input_dims: int | None = None) -> np.ndarray:
    """Reject what would silently broadcast or reshape: the wrong rank or width."""
    arr = np.asarray(x)
    if arr.ndim != 2:
        raise DataError(f"expected a 2-D array of vectors, got shape {arr.shape}")
    if input_dims is not None and arr.shape[1] != input_dims:
        raise DataError(f"vectors have {arr.shape[1]} dimensions, the reduction was fitted on {input_dims}")
    return arr


class IdentityReducer:
    """Keeps the native vectors, so `none` goes through the same path as the others."""

    def __init__(self, input_dims: int) -> None:
        self.input_dims = input_dims
        self.dims = input_dims

    def transform(self, x: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(_as_matrix(x, self.input_dims), dtype=np.float32)

    def describe(self) -> dict[str, Any]:
        return {"name": "none", "dims": self.dims, "input_dims": self.input_dims, "linear": True}


class FftReducer:
    """Magnitudes of chosen rFFT bins of each vector (Bulgakov & Segal's FFT reduction).

    The magnitude spectrum of a real vector is symmetric (|X_j| = |X_{d-j}|), so only the
    d//2 + 1 bins of `rfft` are distinct; `fft(x)[:m]` and `rfft(x)[:m]` agree for m within that.
    """

    def __init__(self, input_dims: int, bins: np.ndarray, rule: str, bin_energy: np.ndarray | None) -> None:
        self.input_dims = input_dims
        self.bins = np.asarray(bins, dtype=np.int64)
        self.rule = rule
        self.dims = int(self.bins.size)
        self._bin_energy = bin_energy

    def transform(self, x: np.ndarray) -> np.ndarray:
        arr = _as_matrix(x, self.input_dims).astype(np.float64, copy=False)
        spectrum = scipy.fft.rfft(arr, axis=1)
        return np.ascontiguousarray(np.abs(spectrum[:, self.bins]), dtype=np.float32)

    def describe(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "name": "fft",
            "dims": self.dims,
            "input_dims": self.input_dims,
            "rule": self.rule,
            "bins": self.bins.tolist(),
            "distinct_bins": self.input_dims // 2 + 1,
            "linear": False,
            "note": "magnitudes |rfft(x)_j| drop the phase: not a linear map, distances are not preserved",
        }
        if self._bin_energy is not None:
            total = float(self._bin_energy.sum())
            kept = float(self._bin_energy[self.bins].sum())
            # mean |X_j|^2 over the base, counted once per rfft bin
            out["energy_fraction_kept"] = kept / total if total > 0 else 0.0
        return out


class LinearReducer:
    """x -> (x - mean) @ matrix: PCA and random projection share this."""

    def __init__(self, name: str, mean: np.ndarray, matrix: np.ndarray, extra: dict[str, Any]) -> None:
        self.name = name
        self.mean = np.asarray(mean, dtype=np.float32)
        self.matrix = np.ascontiguousarray(matrix, dtype=np.float32)
        self.input_dims = int(self.matrix.shape[0])
        self.dims = int(self.matrix.shape[1])
        self._extra = extra

    def transform(self, x: np.ndarray) -> np.ndarray:
        arr = _as_matrix(x, self.input_dims).astype(np.float32, copy=False)
        return np.ascontiguousarray((arr - self.mean) @ self.matrix, dtype=np.float32)

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "dims": self.dims,
            "input_dims": self.input_dims,
            "linear": True,
            **self._extra,
        }


class TruncateReducer:
    """The first `dims` coordinates: the Matryoshka case, meaningful only if the model was trained for it."""

    def __init__(self, input_dims: int, dims: int) -> None:
        self.input_dims = input_dims
        self.dims = dims

    def transform(self, x: np.ndarray) -> np.ndarray:
        arr = _as_matrix(x, self.input_dims)
        return np.ascontiguousarray(arr[:, : self.dims], dtype=np.float32)

    def describe(self) -> dict[str, Any]:
        return {
            "name": "truncate",
            "dims": self.dims,
            "input_dims": self.input_dims,
            "linear": True,
            "note": "no renormalisation here: a cosine metric renormalises downstream",
        }


def _fit_none(spec: ReductionSpec, base: np.ndarray, seed: int) -> Reducer:
    return IdentityReducer(base.shape[1])


def _fit_fft(spec: ReductionSpec, base: np.ndarray, seed: int) -> Reducer:
    d = base.shape[1]
    dims = int(spec.dims or 0)
    distinct = d // 2 + 1
    if dims > distinct:
        raise UserError(
            f"fft reduction to {dims} dims: a real {d}-d vector has only {distinct} distinct magnitude bins "
            f"(|X_j| = |X_{{d-j}}|), so dims must be <= {distinct}"
        )
    rule = spec.rule or "low"
    if rule == "low":
        return FftReducer(d, np.arange(dims), rule, None)
    if rule == "energy":
        energy = np.zeros(distinct, dtype=np.float64)
        # chunked so a large base never materialises its full complex spectrum
        for start in range(0, base.shape[0], 16_384):
            chunk = np.asarray(base[start : start + 16_384], dtype=np.float64)
            energy += (np.abs(scipy.fft.rfft(chunk, axis=1)) ** 2).sum(axis=0)
        energy /= max(base.shape[0], 1)
        # stable sort: equal energies keep the lower frequency, so the choice is reproducible
        order = np.argsort(-energy, kind="stable")[:dims]
        return FftReducer(d, np.sort(order), rule, energy)
    raise UserError(f"unknown fft rule {rule!r}; use 'low' or 'energy'")


def _fit_pca(spec: ReductionSpec, base: np.ndarray, seed: int) -> Reducer:
    n, d = base.shape
    dims = int(spec.dims or 0)
    if dims > min(n, d):
        raise UserError(f"pca to {dims} dims needs dims <= min(n, d) = min({n}, {d})")
    x = np.asarray(base, dtype=np.float64)
    mean = x.mean(axis=0)
    centered = x - mean
    # eigendecomposition of the d x d covariance: exact, deterministic, cheap when n >> d
    cov = centered.T @ centered / max(n - 1, 1)
    eigvals, eigvecs = np.linalg.eigh(cov)
    order = np.argsort(eigvals)[::-1]
    eigvals = np.clip(eigvals[order], 0.0, None)
    components = eigvecs[:, order[:dims]]
    # sign convention (as sklearn's svd_flip): the largest loading of each component is positive
    signs = np.sign(components[np.abs(components).argmax(axis=0), np.arange(dims)])
    signs[signs == 0] = 1.0
    components = components * signs
    total = float(eigvals.sum())
    explained = float(eigvals[:dims].sum()) / total if total > 0 else 0.0
    return LinearReducer("pca", mean, components, {"explained_variance_ratio": explained})


def _fit_random_projection(spec: ReductionSpec, base: np.ndarray, seed: int) -> Reducer:
    d = base.shape[1]
    dims = int(spec.dims or 0)
    rng = np.random.default_rng(seed)
    # N(0, 1/dims) entries keep squared norms unbiased (Johnson-Lindenstrauss)
    matrix = rng.standard_normal((d, dims)) / np.sqrt(dims)
    return LinearReducer("random_projection", np.zeros(d), matrix, {"seed": seed})


def _fit_truncate(spec: ReductionSpec, base: np.ndarray, seed: int) -> Reducer:
    d = base.shape[1]
    dims = int(spec.dims or 0)
    if dims > d:
        raise UserError(f"truncate to {dims} dims: the vectors have only {d}")
    return TruncateReducer(d, dims)


REDUCTIONS: dict[str, Callable[[ReductionSpec, np.ndarray, int], Reducer]] = {
    "none": _fit_none,
    "fft": _fit_fft,
    "pca": _fit_pca,
    "random_projection": _fit_random_projection,
    "truncate": _fit_truncate,
}


def fit_reduction(spec: ReductionSpec, base: np.ndarray, seed: int) -> Reducer:
    """Fit on the base set only, so queries are mapped without peeking at them."""
    base = _as_matrix(base)
    if base.shape[0] == 0:
        raise DataError("cannot fit a reduction on an empty base set")
    try:
        fit = REDUCTIONS[spec.name]
    except KeyError:
        raise UserError(f"unknown reduction {spec.name!r}; known: {sorted(REDUCTIONS)}") from None
    reducer = fit(spec, base, seed)
    log.debug("fitted reduction %s: %d -> %d dims", spec.label, base.shape[1], reducer.dims)
    return reducer
