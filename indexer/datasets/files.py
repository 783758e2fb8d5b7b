"""User vectors from files: ann-benchmarks HDF5, NumPy .npy, TEXMEX .fvecs.

An HDF5 file brings its own queries (`test`) and possibly exact neighbours (`neighbors`); .npy and
.fvecs need a queries file or a seeded held-out split. Finite values and matching dimensions are
checked afterwards by `Dataset.validate`.

No file is held in memory twice. A float32, C-ordered .npy comes back as a read-only memory map
of the file itself; an .fvecs file as a read-only strided view of one (its rows interleave a
dimension word). A base that must be converted or gathered (an HDF5 `train`, an .fvecs base, a
held-out split) and takes more than `CACHE_THRESHOLD_BYTES` as float32 is written chunk by chunk
to `cache_dir/files/`, keyed by the file's path, size and modification time, and memory-mapped.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from indexer.common.errors import DataError
from indexer.common.hashing import content_key
from indexer.datasets import attributes as columns
from indexer.datasets.base import Dataset, save_rows
from indexer.model.datasets import FileDataset
from indexer.model.strict import clip

log = logging.getLogger(__name__)

HDF5_SUFFIXES = (".hdf5", ".h5")
SUFFIXES = (*HDF5_SUFFIXES, ".npy", ".fvecs")
# A converted or gathered base larger than this (float32 bytes) goes to cache_dir/files/, memory-mapped.
CACHE_THRESHOLD_BYTES = 256 << 20
# Bytes of a file read at once while checking or converting it (64 MiB).
CHUNK_BYTES = 64 << 20


def _existing(path_str: str) -> Path:
    path = Path(path_str).expanduser()
    if not path.is_file():
        raise DataError(f"data file not found: {path}")
    if path.suffix.lower() not in SUFFIXES:
        raise DataError(
            f"unknown data file extension {path.suffix!r} ({path.name}); use {', '.join(SUFFIXES)}"
        )
    return path


def _check_matrix(shape: tuple[int, ...], dtype: np.dtype[Any], what: str) -> None:
    if len(shape) != 2:
        raise DataError(f"{what} must be a 2-d array, got shape {shape}")
    if not (np.issubdtype(dtype, np.floating) or np.issubdtype(dtype, np.integer)):
        raise DataError(f"{what} must hold numbers, got dtype {dtype}")


def _matrix(arr: np.ndarray, what: str) -> np.ndarray:
    """A freshly read 2-d array of numbers as float32 (converted in place of a second copy)."""
    _check_matrix(arr.shape, arr.dtype, what)
    return np.asarray(arr, dtype=np.float32)


def _rows_per_chunk(width: int, itemsize: int = 8) -> int:
    return max(1, CHUNK_BYTES // max(1, width * itemsize))


def _file_key(path: Path, part: str, **more: object) -> str:
    """Names a cached conversion of `part` of the file; a rewritten file gets a new name."""
    st = path.stat()
    return content_key({"path": str(path.resolve()), "size": st.st_size, "mtime_ns": st.st_mtime_ns,
                        "part": part, **more})


def _cached_rows(cache_dir: Path, key: str, shape: tuple[int, int],
                 chunks: Iterator[np.ndarray]) -> np.ndarray:
    """cache_dir/files/<key>.npy memory-mapped read-only, written from `chunks` if not there yet."""
    path = Path(cache_dir) / "files" / f"{key}.npy"
    if path.exists():
        try:
            found: np.ndarray = np.load(path, mmap_mode="r")
            if found.shape == shape and found.dtype == np.float32:
                log.debug("file conversion reused from %s", path)
                return found
        except (OSError, ValueError, EOFError) as err:
            log.warning("cached conversion %s is unreadable (%s); converting again", path, err)
    log.info("converting %d x %d vectors into %s", *shape, path)
    return save_rows(path, shape, chunks)


def _large(shape: tuple[int, ...], cache_dir: Path | None) -> bool:
    return cache_dir is not None and int(np.prod(shape)) * 4 > CACHE_THRESHOLD_BYTES


def read_npy(path: Path) -> np.ndarray:
    """The file's matrix: itself memory-mapped read-only when already float32 and C-ordered,
    else a float32 copy."""
    try:
        arr: np.ndarray = np.load(path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError, EOFError) as err:
        raise DataError(f"{path.name} is not a readable .npy file: {err}") from None
    _check_matrix(arr.shape, arr.dtype, path.name)
    if arr.dtype == np.float32 and arr.flags.c_contiguous:
        return arr  # opened "r": no caller can write through it into the user's file
    return np.array(arr, dtype=np.float32, order="C")


def read_fvecs(path: Path) -> np.ndarray:
    """TEXMEX layout: each row is an int32 dimension followed by that many float32 values.

    Returns a read-only strided view of the memory-mapped file (no copy): C-contiguous it is not,
    so whoever needs contiguous rows copies it (`Dataset.validate`) or converts it in chunks.
    """
    size = path.stat().st_size
    if size == 0:
        raise DataError(f"{path.name} is empty")
    # a file shorter than one word has no dimension: the byte size check below rejects it
    dim = int(np.fromfile(path, dtype="<i4", count=1)[0]) if size >= 4 else 0
    if dim <= 0 or size % (4 * (dim + 1)) != 0:
        raise DataError(
            f"{path.name} is not a valid .fvecs file: {size} bytes is not a whole number of rows of "
            f"4 * (1 + {dim}) bytes (the first row's dimension is {dim})"
        )
    rows = np.memmap(path, dtype="<i4", mode="r", shape=(size // (4 * (dim + 1)), dim + 1))
    step = _rows_per_chunk(dim + 1, 4)
    for start in range(0, len(rows), step):
        bad = np.flatnonzero(rows[start : start + step, 0] != dim)
        if bad.size:
            row = start + int(bad[0])
            raise DataError(f"{path.name}: row {row} has dimension {int(rows[row, 0])}, expected {dim}")
    return rows[:, 1:].view("<f4")


def _hdf5_node(f: Any, name: str, path: Path) -> Any | None:
    """The h5py dataset stored under `name`, None when absent; a group or link of that name is an error."""
    import h5py

    if name not in f:
        return None
    node = f.get(name)
    if not isinstance(node, h5py.Dataset):
        kind = "group" if isinstance(node, h5py.Group) else "link or object"
        raise DataError(f"{path.name}: '{name}' is a {kind}, not a dataset (an array)")
    return node


def _hdf5_array(f: Any, name: str, path: Path) -> np.ndarray | None:
    """The array stored under `name`, read whole; None when absent."""
    node = _hdf5_node(f, name, path)
    return None if node is None else np.asarray(node[()])


def _hdf5_chunks(node: Any) -> Iterator[np.ndarray]:
    """The rows of a 2-d h5py dataset as float32 blocks (h5py reads only the slice asked for)."""
    n, d = node.shape
    step = _rows_per_chunk(d, max(4, node.dtype.itemsize))
    for start in range(0, n, step):
        yield np.asarray(node[start : start + step], dtype=np.float32)


def _hdf5_train(f: Any, path: Path, cache_dir: Path | None) -> np.ndarray:
    node = _hdf5_node(f, "train", path)
    if node is None:
        found = ", ".join(clip(k, 60) for k in itertools.islice(f.keys(), 10)) or "none"
        raise DataError(f"{path.name} has no 'train' dataset (found: {found})")
    what = f"{path.name}:train"
    _check_matrix(node.shape, node.dtype, what)
    if cache_dir is None or not _large(node.shape, cache_dir):  # small: read whole, as any array
        return _matrix(np.asarray(node[()]), what)
    return _cached_rows(cache_dir, _file_key(path, "train"), node.shape, _hdf5_chunks(node))


def read_hdf5(path: Path, cache_dir: Path | None = None
              ) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None, dict[str, Any]]:
    """(train, test or None, neighbors or None, attributes) from an ann-benchmarks file.

    With `cache_dir`, a `train` over CACHE_THRESHOLD_BYTES is converted in row chunks to a cached
    .npy and comes back memory-mapped, so a file larger than memory never lands in it whole.
    """
    import h5py

    try:
        with h5py.File(path, "r") as f:
            train = _hdf5_train(f, path, cache_dir)
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


def _blocks(arr: np.ndarray, rows: np.ndarray | None = None) -> Iterator[np.ndarray]:
    """arr (or arr[rows]) as float32 blocks of rows, so a memory-mapped source is never read whole."""
    n = len(arr) if rows is None else len(rows)
    step = _rows_per_chunk(arr.shape[1], 4)
    for start in range(0, n, step):
        block = arr[start : start + step] if rows is None else arr[rows[start : start + step]]
        yield np.asarray(block, dtype=np.float32)


def _contiguous_base(base: np.ndarray, path: Path, cache_dir: Path | None) -> np.ndarray:
    """A large strided base (.fvecs) made C-contiguous in the cache, so `validate` need not copy it."""
    if base.flags.c_contiguous or not _large(base.shape, cache_dir):
        return base
    assert cache_dir is not None
    return _cached_rows(cache_dir, _file_key(path, "base"), base.shape, _blocks(base))


def _column(path: Path, attribute: str, rows: int, *, queries: bool) -> np.ndarray:
    read = columns.hdf5_column if path.suffix.lower() in HDF5_SUFFIXES else columns.npy_column
    return read(path, attribute, rows, queries=queries)


def load(spec: FileDataset, *, model: str | None = None, cache_dir: Path | None = None,
         attributes: Sequence[str] = (), query_attributes: Sequence[str] = ()) -> Dataset:
    """The file's vectors, with the integer `attributes` named (base side) and `query_attributes` (query side:
    from the queries' own file, or the held-out rows of a split) read from beside them (indexer.datasets.attributes)."""
    path = _existing(spec.path)
    name = f"file-{path.name}"
    groundtruth = None
    extra: dict[str, object] = {"path": str(path)}
    queries_path = path  # where the query-side columns are (the HDF5 file's `test`, or a queries file)
    if path.suffix.lower() in HDF5_SUFFIXES:
        base, queries, neighbors, attrs = read_hdf5(path, cache_dir)
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
        queries_path = _existing(spec.queries)
        queries = read_vectors(queries_path)
    # queries held out of the base take their values from the base's own column
    names = dict.fromkeys([*attributes, *query_attributes] if queries is None else attributes)
    base_columns = {a: _column(path, a, len(base), queries=False) for a in names}
    if queries is None:  # held out
        base_rows, query_rows = split_rows(len(base), spec.query_count, spec.seed, path.name)
        queries = np.asarray(base[query_rows], dtype=np.float32)
        shape = (len(base_rows), base.shape[1])
        if cache_dir is not None and _large(shape, cache_dir):
            key = _file_key(path, "split", seed=spec.seed, query_count=spec.query_count)
            base = _cached_rows(cache_dir, key, shape, _blocks(base, base_rows))
        else:
            base = np.asarray(base[base_rows], dtype=np.float32)
        extra.update(base_rows=base_rows, query_rows=query_rows)
        # the split applies to the attributes as to the vectors: held-out rows' values are the queries'
        query_columns = {a: base_columns[a][query_rows] for a in query_attributes}
        base_columns = {a: base_columns[a][base_rows] for a in attributes}
    else:
        base = _contiguous_base(base, path, cache_dir)
        query_columns = {a: _column(queries_path, a, len(queries), queries=True) for a in query_attributes}
    return Dataset(
        name=name,
        base=base,
        queries=queries,
        groundtruth=groundtruth,
        attributes=base_columns,
        query_attributes=query_columns,
        extra=extra,
    )
