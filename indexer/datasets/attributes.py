"""A user's integer attributes, stored with the vectors file, for column filters (a tenant, a category id).

Where attribute `tenant` lives:
- HDF5: a 1-d integer dataset `tenant`, one value per `train` row, and for the queries `tenant_test`, one per
  `test` row (in an HDF5 queries file without `test`, its `tenant`);
- .npy / .fvecs: `<stem>.tenant.npy` beside the vectors file (`base.npy` -> `base.tenant.npy`), and beside the
  queries file for the queries.
Queries held out of the base (no queries file) take the held-out rows' values; the base keeps the rest
(`indexer.datasets.files` applies its split to the columns as to the vectors).

Only the attributes a spec names are read. Each must be a 1-d integer array of the right length: a float or
bool column is refused (a filter compares values exactly), as is anything else, by a DataError naming the
file, the attribute and the problem.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np

from indexer.common.errors import DataError
from indexer.model.strict import clip

QUERY_SUFFIX = "_test"  # an HDF5 file's query-side column: `<attribute>_test`, aligned with `test`


def beside(vectors: Path, attribute: str) -> Path:
    """The .npy file of `attribute` for the vectors in `vectors`: `<stem>.<attribute>.npy` in its directory."""
    return vectors.with_name(f"{vectors.stem}.{attribute}.npy")


def npy_column(path: Path, attribute: str, rows: int, *, queries: bool) -> np.ndarray:
    """The (rows,) int64 values of `attribute` for the .npy or .fvecs vectors in `path` (queries: a queries file)."""
    source = beside(path, attribute)
    if not source.is_file():
        raise DataError(f"attribute {attribute!r}: {source.name} not found beside {path.name} (a column filter "
                        f"reads `<stem>.<attribute>.npy` next to the {'queries' if queries else 'vectors'} file)")
    try:
        arr: np.ndarray = np.load(source, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError, EOFError) as err:
        raise DataError(f"attribute {attribute!r}: {source.name} is not a readable .npy file: {err}") from None
    return checked(arr, attribute, rows, source.name)


def hdf5_column(path: Path, attribute: str, rows: int, *, queries: bool) -> np.ndarray:
    """The (rows,) int64 values of `attribute` in an HDF5 file: `<attribute>` for its `train` rows, and with
    `queries` `<attribute>_test` for its `test` rows (`<attribute>` in a queries file without `test`)."""
    import h5py

    try:
        with h5py.File(path, "r") as f:
            name = attribute + QUERY_SUFFIX if queries and "test" in f else attribute
            node = f.get(name) if name in f else None
            if not isinstance(node, h5py.Dataset):
                found = ", ".join(clip(k, 60) for k in itertools.islice(f.keys(), 10)) or "none"
                what = "no dataset" if node is None else "a group or link, not a dataset, under"
                raise DataError(f"attribute {attribute!r}: {path.name} has {what} {name!r} (found: {found})")
            if node.ndim != 1:
                raise DataError(f"attribute {attribute!r}: {path.name}:{name} has shape {node.shape}; expected "
                                f"({rows},), one value per {'query' if queries else 'base vector'}")
            arr = np.asarray(node[()])
    except OSError as err:
        raise DataError(f"attribute {attribute!r}: {path.name} is not a readable HDF5 file: {err}") from None
    return checked(arr, attribute, rows, f"{path.name}:{name}")


def checked(arr: np.ndarray, attribute: str, rows: int, where: str) -> np.ndarray:
    """`arr` as int64 if it is a 1-d integer array of `rows` values; else a DataError saying what it is."""
    if arr.dtype == np.bool_:
        raise DataError(f"attribute {attribute!r}: {where} holds booleans; a column filter compares integers "
                        "(store them as 0 and 1 in an integer array)")
    if arr.dtype.kind not in "iu":
        raise DataError(f"attribute {attribute!r}: {where} holds {arr.dtype} values; a column filter compares "
                        "integers exactly (store category codes as an integer array)")
    if arr.ndim != 1 or len(arr) != rows:
        raise DataError(f"attribute {attribute!r}: {where} has shape {arr.shape}; expected ({rows},), one value "
                        "per row of the vectors it goes with")
    if arr.dtype == np.uint64 and len(arr) and int(arr.max()) > np.iinfo(np.int64).max:
        raise DataError(f"attribute {attribute!r}: {where} holds values above {np.iinfo(np.int64).max} "
                        "(compared as int64)")
    return np.array(arr, dtype=np.int64)
