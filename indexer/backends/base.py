"""One protocol for every index library: build parameters at construction, query parameters per call."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

import numpy as np

from indexer.common import timing

BUILD_CHUNK = 4_096  # rows of `vectors[order]` a build gathers at once: 2 MiB at 128 float32 dimensions, 12 at 768;
# between two, a build steps aside for a cell timing its searches (indexer.common.timing)


class VectorIndex(Protocol):
    """A built index over prepared vectors (cosine already normalised, so the metric is ip or l2).

    `build` inserts `vectors[order]` one after another in that order and labels each point with its
    row number, so search results come back in the dataset's own numbering whatever the order.
    Scores: inner product for ip (higher is better), squared L2 distance for l2 (lower is better).
    """

    name: str

    def build(self, vectors: np.ndarray, order: np.ndarray) -> None: ...

    def search(self, queries: np.ndarray, k: int, ef: int | None) -> tuple[np.ndarray, np.ndarray]: ...

    def nbytes(self) -> int: ...

    def save(self, path: Path) -> None: ...

    def load(self, path: Path, n: int) -> None: ...

    def close(self) -> None:
        """Release what the index holds outside this process's memory (a server, a scratch directory);
        the runner calls it once the cell is measured, also when the cell failed."""


def chunks(order: np.ndarray, size: int | None = None) -> Iterator[np.ndarray]:
    """`order` in consecutive slices of `size` rows (BUILD_CHUNK unless given), the last one shorter.

    A build gathers `vectors[rows]` one slice at a time instead of a permuted copy of the whole matrix.
    BUILD_CHUNK is read on each call, so a test can shrink it.
    """
    step = BUILD_CHUNK if size is None else size
    if step < 1:
        raise ValueError(f"chunk size must be positive, got {step}")
    for start in range(0, len(order), step):
        if start:
            timing.pause_point()  # a cell timing its searches elsewhere goes first (indexer.common.timing)
        yield order[start : start + step]
