"""Vectors on random linear subspaces: the subspace's size sets the intrinsic dimensionality.

As in Elliott & Clark 2024: each subspace has an orthonormal basis in the ambient space; points are
Gaussian coordinates in that basis, optionally with ambient Gaussian noise. The subspace index is
the category label. Queries come from the same subspaces, drawn separately (held out).

A set whose base takes more than `STREAM_THRESHOLD_BYTES` as float32 (256 MiB: about 520,000
vectors at 128-d) is streamed: the base is written chunk by chunk to a `.npy` file under
`cache_dir/synthetic/` and handed out memory-mapped read-only, so generating a million vectors
holds about one chunk in memory, not the set several times over. Both paths draw the same random
numbers in the same order, so they give the same vectors (to float32 rounding of the BLAS product).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from indexer.common.errors import UserError
from indexer.common.fileio import atomic_save_npy
from indexer.common.hashing import content_key
from indexer.datasets.base import Dataset, save_rows
from indexer.model.datasets import SyntheticDataset

log = logging.getLogger(__name__)

# A base larger than this (float32 bytes) is streamed to a memory-mapped file in cache_dir.
STREAM_THRESHOLD_BYTES = 256 << 20
# Float64 working rows per streamed chunk (64 MiB: 65,536 rows at 128-d); peak memory is a few of these.
STREAM_CHUNK_BYTES = 64 << 20
# Part of the streamed files' key: bump it when the generator's output changes, so old files go unused.
_FORMAT = 1


def subspace_basis(rng: np.random.Generator, ambient_dim: int, intrinsic_dim: int) -> np.ndarray:
    """An (intrinsic_dim, ambient_dim) matrix with orthonormal rows (QR of a Gaussian matrix)."""
    q, _ = np.linalg.qr(rng.standard_normal((ambient_dim, intrinsic_dim)))
    return q.T


def _sample(rng: np.random.Generator, basis: np.ndarray, n: int, noise: float) -> np.ndarray:
    x: np.ndarray = rng.standard_normal((n, basis.shape[0])) @ basis
    if noise > 0:
        x += noise * rng.standard_normal(x.shape)
    return x


def _normalize_rows(x: np.ndarray) -> None:
    """Scale float32 rows to unit length in place (a zero row stays zero)."""
    x /= np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def base_bytes(spec: SyntheticDataset) -> int:
    """Size of the set's base as float32: what decides between the in-memory and streamed paths."""
    return len(spec.intrinsic_dims) * spec.points_per_subspace * spec.ambient_dim * 4


def load(spec: SyntheticDataset, *, model: str | None = None, cache_dir: Path | None = None) -> Dataset:
    """The set `spec` describes; a base over `STREAM_THRESHOLD_BYTES` is a read-only memory map.

    The streamed path needs `cache_dir` (a UserError without one: a file of that size is not left
    in a temp directory nobody sweeps); a second load of the same spec reuses its files.
    """
    if base_bytes(spec) > STREAM_THRESHOLD_BYTES:
        if cache_dir is None:
            raise UserError(
                f"the synthetic base takes {base_bytes(spec) / 2**20:.0f} MiB, more than "
                f"{STREAM_THRESHOLD_BYTES / 2**20:.0f} MiB: it is streamed to a file and needs a cache_dir"
            )
        base, queries = _streamed(spec, Path(cache_dir) / "synthetic")
    else:
        base, queries = _in_memory(spec)
    n_sets = len(spec.intrinsic_dims)
    return Dataset(
        name="synthetic",
        base=base,
        queries=queries,
        labels=np.repeat(np.arange(n_sets, dtype=np.int64), spec.points_per_subspace),
        query_labels=np.repeat(np.arange(n_sets, dtype=np.int64), spec.queries_per_subspace),
        label_names=[f"subspace-{i}-dim{d}" for i, d in enumerate(spec.intrinsic_dims)],
    )


def _in_memory(spec: SyntheticDataset) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(spec.seed)
    base, queries = [], []
    for dim in spec.intrinsic_dims:
        basis = subspace_basis(rng, spec.ambient_dim, dim)
        base.append(_sample(rng, basis, spec.points_per_subspace, spec.noise))
        queries.append(_sample(rng, basis, spec.queries_per_subspace, spec.noise))
    xb = np.concatenate(base).astype(np.float32)
    xq = np.concatenate(queries).astype(np.float32)
    if spec.normalize:
        _normalize_rows(xb)
        _normalize_rows(xq)
    return xb, xq


# ------------------------------------------------------------------------------------- streaming


def _chunk_sizes(n: int, rows: int) -> Iterator[int]:
    for start in range(0, n, rows):
        yield min(rows, n - start)


def _fork(rng: np.random.Generator) -> np.random.Generator:
    """An independent generator that continues from `rng`'s current state."""
    twin = np.random.Generator(type(rng.bit_generator)())
    twin.bit_generator.state = rng.bit_generator.state
    return twin


def _base_chunks(rng: np.random.Generator, basis: np.ndarray, n: int, noise: float,
                 rows: int) -> Iterator[np.ndarray]:
    """`_sample(rng, basis, n, noise)` as float64 chunks of `rows` rows, leaving `rng` where it would.

    `_sample` draws all n coordinate rows, then all the noise. Here a fork replays the coordinates
    while `rng`, advanced past them, draws the noise, so the two streams can be zipped chunk by
    chunk (sequential standard_normal draws give the same numbers as one draw).
    """
    dim, ambient = basis.shape
    coords = rng
    if noise > 0:
        coords = _fork(rng)
        for m in _chunk_sizes(n, rows):
            rng.standard_normal((m, dim))  # skipped here, replayed by `coords`
    for m in _chunk_sizes(n, rows):
        x: np.ndarray = coords.standard_normal((m, dim)) @ basis
        if noise > 0:
            e = rng.standard_normal((m, ambient))
            e *= noise
            x += e
            del e
        yield x


def _streamed(spec: SyntheticDataset, folder: Path) -> tuple[np.ndarray, np.ndarray]:
    """(base memory-mapped read-only, queries) from folder, generated there first if absent.

    The base file is written first and the queries file last, so a present queries file means
    the pair is complete (both are written atomically).
    """
    key = content_key({"format": _FORMAT, "spec": spec.model_dump(mode="json")})
    base_path, queries_path = folder / f"{key}.npy", folder / f"{key}.queries.npy"
    n = len(spec.intrinsic_dims) * spec.points_per_subspace
    q = len(spec.intrinsic_dims) * spec.queries_per_subspace
    found = _reuse(base_path, queries_path, (n, spec.ambient_dim), (q, spec.ambient_dim))
    if found is not None:
        log.debug("synthetic set reused from %s", base_path)
        return found
    log.info("generating %d x %d synthetic vectors into %s", n, spec.ambient_dim, base_path)
    rng = np.random.default_rng(spec.seed)
    rows = max(1, STREAM_CHUNK_BYTES // (8 * spec.ambient_dim))
    queries: list[np.ndarray] = []

    def chunks() -> Iterator[np.ndarray]:
        for dim in spec.intrinsic_dims:
            basis = subspace_basis(rng, spec.ambient_dim, dim)
            for x in _base_chunks(rng, basis, spec.points_per_subspace, spec.noise, rows):
                chunk = x.astype(np.float32)
                del x
                if spec.normalize:
                    _normalize_rows(chunk)
                yield chunk
            queries.append(_sample(rng, basis, spec.queries_per_subspace, spec.noise))

    base = save_rows(base_path, (n, spec.ambient_dim), chunks())
    xq = np.concatenate(queries).astype(np.float32)
    if spec.normalize:
        _normalize_rows(xq)
    atomic_save_npy(queries_path, xq)
    return base, xq


def _reuse(base_path: Path, queries_path: Path, base_shape: tuple[int, int],
           queries_shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray] | None:
    """The stored pair when both files are there with the expected shapes, else None."""
    if not queries_path.exists():
        return None
    try:
        base = np.load(base_path, mmap_mode="r")
        queries = np.load(queries_path)
    except (OSError, ValueError, EOFError) as err:
        log.warning("synthetic cache %s is unreadable (%s); generating it again", base_path, err)
        return None
    if (base.shape, queries.shape) != (base_shape, queries_shape) or not (
        base.dtype == queries.dtype == np.float32
    ):
        log.warning("synthetic cache %s does not match its spec; generating it again", base_path)
        return None
    return base, queries
