"""The one shape every dataset loader returns."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import numpy as np

from indexer.common.errors import DataError
from indexer.common.fileio import atomic_write

# Elements checked for NaN/inf at once (16 MiB of booleans), so a memory-mapped base is never copied whole.
_FINITE_BLOCK_ELEMENTS = 1 << 24


def nonfinite_rows(arr: np.ndarray) -> int:
    """How many rows of a 2-d array hold NaN or inf, checked in row blocks."""
    rows = max(1, _FINITE_BLOCK_ELEMENTS // max(1, arr.shape[1]))
    bad = 0
    for start in range(0, arr.shape[0], rows):
        block = arr[start : start + rows]
        if not np.isfinite(block).all():
            bad += int((~np.isfinite(block)).any(axis=1).sum())
    return bad


def save_rows(path: Path, shape: tuple[int, int], chunks: Iterable[np.ndarray]) -> np.ndarray:
    """Write float32 row blocks as one `.npy` atomically; the result memory-mapped read-only.

    Written sequentially, not through a writable memory map, so only one block is ever in memory
    (dirty pages of a mapped file would count against the process until written back).
    """
    n, d = shape

    def write(f: BinaryIO) -> None:
        header = {"descr": np.lib.format.dtype_to_descr(np.dtype(np.float32)), "fortran_order": False,
                  "shape": (n, d)}
        np.lib.format.write_array_header_1_0(f, header)
        rows = 0
        for chunk in chunks:
            block = np.ascontiguousarray(chunk, dtype=np.float32)
            if block.ndim != 2 or block.shape[1] != d:
                raise ValueError(f"a block of shape {block.shape} in a file of {d} columns")
            rows += len(block)
            f.write(block.data.cast("B"))
        if rows != n:
            raise ValueError(f"{rows} rows written for a file of {n}")

    atomic_write(path, write)
    mapped: np.ndarray = np.load(path, mmap_mode="r")
    return mapped


@dataclass(kw_only=True)
class Dataset:
    """Base and query vectors plus whatever the source knows about them.

    Ids are row numbers of `base` (the dataset's own numbering). `groundtruth` is a provided exact
    neighbour table (ann-benchmarks `neighbors`), `qrels` relevance judgements keyed by query and
    document position as strings (`{"q3": {"d17": 1}}` with ids from `query_ids`/`doc_ids`).
    """

    name: str
    base: np.ndarray  # (n, d) float32
    queries: np.ndarray  # (q, d) float32
    labels: np.ndarray | None = None  # (n,) int64 category per base point
    query_labels: np.ndarray | None = None  # (q,) int64
    label_names: list[str] | None = None  # label int -> readable name
    texts: list[str] | None = None  # (n,) document text, for text corpora
    query_texts: list[str] | None = None  # (q,)
    titles: list[str] | None = None  # (n,) short display string per document
    doc_ids: list[str] | None = None  # (n,) external ids (BEIR), default str(row)
    query_ids: list[str] | None = None  # (q,)
    qrels: dict[str, dict[str, int]] | None = None
    groundtruth: np.ndarray | None = None  # (q, >=k) int64 provided exact neighbours
    model: str | None = None  # embedding model for text datasets
    # a user's integer attributes (column filters), by name: only those a spec names are read
    attributes: dict[str, np.ndarray] = field(default_factory=dict)  # each (n,) int64
    query_attributes: dict[str, np.ndarray] = field(default_factory=dict)  # each (q,) int64
    extra: dict[str, object] = field(default_factory=dict)

    @property
    def dim(self) -> int:
        return int(self.base.shape[1])

    def validate(self) -> Dataset:
        """Reject data no experiment can use; messages say what is wrong."""
        for what, arr in (("base", self.base), ("queries", self.queries)):
            if arr.ndim != 2:
                raise DataError(f"{self.name}: {what} must be a 2-d array, got shape {arr.shape}")
            if arr.shape[0] == 0 or arr.shape[1] == 0:
                raise DataError(f"{self.name}: {what} is empty (shape {arr.shape})")
            bad = nonfinite_rows(arr)
            if bad:
                raise DataError(f"{self.name}: {what} holds NaN or inf in {bad} rows")
        if self.base.shape[1] != self.queries.shape[1]:
            raise DataError(
                f"{self.name}: base has dimension {self.base.shape[1]} "
                f"but queries have dimension {self.queries.shape[1]}"
            )
        if self.labels is not None and len(self.labels) != len(self.base):
            raise DataError(f"{self.name}: {len(self.labels)} labels for {len(self.base)} base vectors")
        for side, columns, rows in (("base vectors", self.attributes, len(self.base)),
                                    ("queries", self.query_attributes, len(self.queries))):
            for attr, values in columns.items():
                if values.ndim != 1 or len(values) != rows:
                    raise DataError(f"{self.name}: attribute {attr!r} has shape {values.shape} for {rows} {side}")
        # a float32 C-contiguous base (a read-only memory map included) is kept as it is, not copied
        self.base = np.ascontiguousarray(self.base, dtype=np.float32)
        self.queries = np.ascontiguousarray(self.queries, dtype=np.float32)
        return self
