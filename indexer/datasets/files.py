"""User vectors from files: ann-benchmarks HDF5, NumPy .npy, TEXMEX .fvecs.

An HDF5 file brings its own queries (`test`) and possibly exact neighbours (`neighbors`); .npy and
.fvecs need a queries file or a seeded held-out split. Finite values and matching dimensions are
checked afterwards by `Dataset.validate`.
"""

from __future__ import annotations

import itertools
import logging
from pathlib import Path
from typing import Any

import numpy as np

from indexer.common.errors import DataError
from indexer.datasets.base import Dataset
from indexer.engine.spec import FileDataset, clip

log = logging.getLogger(__name__)

HDF5_SUFFIXES = (".hdf5", ".h5")
SUFFIXES = (*HDF5_SUFFIXES, ".npy", ".fvecs")


def _existing(path_str: str) -> Path:
    path = Path(path_str).expanduser()
    if not path.is_file():
        raise DataError(f"data file not found: {path}")
    if path.suffix.lower() not in SUFFIXES:
        raise DataError(
            f"unknown data file extension {path.suffix!r} ({path.name}); use {', '.join(SUFFIXES)}"
        )
    return path


def _matrix(arr: np.ndarray, what: str) -> np.ndarray:
    if arr.ndim != 2:
        raise DataError(f"{what} must be a 2-d array, got shape {arr.shape}")
    if not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)):
        raise DataError(f"{what} must hold numbers, got dtype {arr.dtype}")
    return np.array(arr, dtype=np.float32)  # a copy: never hand out a memory map of a user file


def read_npy(path: Path) -> np.ndarray:
    try:
        arr = np.load(path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError, EOFError) as err:
        raise DataError(f"{path.name} is not a readable .npy file: {err}") from None
    return _matrix(arr, path.name)


def read_fvecs(path: Path) -> np.ndarray:
    """TEXMEX layout: each row is an int32 dimension followed by that many float32 values."""
    size = path.stat().st_size
    if size == 0:
        raise DataError(f"{path.name} is empty")
    raw = np.fromfile(path, dtype="<i4")  # drops a trailing partial word: the byte size is checked instead
    dim = int(raw[0]) if raw.size else 0
    if dim <= 0 or size % (4 * (dim + 1)) != 0:
        raise DataError(
            f"{path.name} is not a valid .fvecs file: {size} bytes is not a whole number of rows of "
            f"4 * (1 + {dim}) bytes (the first row's dimension is {dim})"
        )
    rows = raw.reshape(-1, dim + 1)
    bad = np.flatnonzero(rows[:, 0] != dim)
    if bad.size:
        raise DataError(
            f"{path.name}: row {int(bad[0])} has dimension {int(rows[bad[0], 0])}, expected {dim}"
        )
    return np.ascontiguousarray(rows[:, 1:]).view("<f4").astype(np.float32, copy=False)


def _hdf5_array(f: Any, name: str, path: Path) -> np.ndarray | None:
    """The array stored under `name`, None when absent; a group or link of that name is an error."""
    import h5py

    if name not in f:
        return None
    node = f.get(name)
    if not isinstance(node, h5py.Dataset):
        kind = "group" if isinstance(node, h5py.Group) else "link or object"
        raise DataError(f"{path.name}: '{name}' is a {kind}, not a dataset (an array)")
    return np.asarray(node[()])


def read_hdf5(path: Path) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None, dict[str, Any]]:
    """(train, test or None, neighbors or None, attributes) from an ann-benchmarks file."""
    import h5py

    try:
        with h5py.File(path, "r") as f:
            train_arr = _hdf5_array(f, "train", path)
            if train_arr is None:
                found = ", ".join(clip(k, 60) for k in itertools.islice(f.keys(), 10)) or "none"
                raise DataError(f"{path.name} has no 'train' dataset (found: {found})")
            train = _matrix(train_arr, f"{path.name}:train")
            test_arr = _hdf5_array(f, "test", path)
            test = _matrix(test_arr, f"{path.name}:test") if test_arr is not None else None
            neighbors = _hdf5_array(f, "neighbors", path)
            attrs = {k: (v.decode() if isinstance(v, bytes) else v) for k, v in f.attrs.items()}
    except OSError as err:
        raise DataError(f"{path.name} is not a readable HDF5 file: {err}") from None
    return train, test, neighbors, attrs


def read_vectors(path: Path) -> np.ndarray:
    """Vectors of any supported format; for HDF5 the `test` set (a queries file) else `train`."""
    suffix = path.suffix.lower()
    if suffix == ".npy":
        return read_npy(path)
    if suffix == ".fvecs":
        return read_fvecs(path)
    train, test, _, _ = read_hdf5(path)
    return test if test is not None else train


def check_groundtruth(neighbors: np.ndarray, n_queries: int, n_base: int, name: str) -> np.ndarray:
    """Provided neighbours must be one row of valid base ids per query."""
    if neighbors.ndim != 2 or neighbors.shape[0] != n_queries or neighbors.shape[1] < 1:
        raise DataError(
            f"{name}: 'neighbors' has shape {neighbors.shape}, expected ({n_queries}, k>=1) for {n_queries} queries"
        )
    if not np.issubdtype(neighbors.dtype, np.integer):
        raise DataError(f"{name}: 'neighbors' must hold integer ids, got dtype {neighbors.dtype}")
    if neighbors.size and (neighbors.min() < 0 or neighbors.max() >= n_base):
        raise DataError(
            f"{name}: 'neighbors' holds ids outside 0..{n_base - 1} "
            f"(min {int(neighbors.min())}, max {int(neighbors.max())})"
        )
    return neighbors.astype(np.int64)


def split_rows(n: int, query_count: int, seed: int, name: str) -> tuple[np.ndarray, np.ndarray]:
    """Seeded held-out split; both parts keep the file's row order."""
    if query_count >= n:
        raise DataError(
            f"{name}: query_count={query_count} would leave no base vectors out of {n}; "
            "lower query_count or give a queries file"
        )
    perm = np.random.default_rng(seed).permutation(n)
    return np.sort(perm[query_count:]), np.sort(perm[:query_count])


def load(spec: FileDataset, *, model: str | None = None, cache_dir: Path | None = None) -> Dataset:
    path = _existing(spec.path)
    name = f"file-{path.name}"
    groundtruth = None
    extra: dict[str, object] = {"path": str(path)}
    if path.suffix.lower() in HDF5_SUFFIXES:
        base, queries, neighbors, attrs = read_hdf5(path)
        if "distance" in attrs:
            extra["distance"] = str(attrs["distance"])
        if queries is not None and spec.queries is not None:
            raise DataError(
                f"{path.name} already holds its queries ('test'); remove `queries` from the dataset"
            )
        if queries is not None and neighbors is not None:
            groundtruth = check_groundtruth(neighbors, len(queries), len(base), path.name)
    else:
        base, queries = read_vectors(path), None
    if queries is None and spec.queries is not None:
        queries = read_vectors(_existing(spec.queries))
    if queries is None:
        base_rows, query_rows = split_rows(len(base), spec.query_count, spec.seed, path.name)
        base, queries = base[base_rows], base[query_rows]
        extra.update(base_rows=base_rows, query_rows=query_rows)
    return Dataset(
        name=name,
        base=base,
        queries=queries,
        groundtruth=groundtruth,
        extra=extra,
    )
