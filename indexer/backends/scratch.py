"""What several backends share: answers padded to k, and indexes that live in a system's own directory.

Nothing here imports an index library."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import ClassVar

import numpy as np


def no_answers(queries: int, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(queries, k) ids of -1 and scores of NaN: the padding a short answer keeps where it has no neighbour."""
    return np.full((queries, k), -1, dtype=np.int64), np.full((queries, k), np.nan, dtype=np.float32)


class KeptBySystem:
    """An index kept by its system (a directory of files, a server), not in one file: measured while the run
    has it, never opened by the service (its backend declares servable=False)."""

    KEPT_AS: ClassVar[str]  # what the system keeps, for the error

    def save(self, path: Path) -> None:
        raise NotImplementedError(f"{self.KEPT_AS}, not one file")

    def load(self, path: Path, n: int) -> None:
        raise NotImplementedError(f"{self.KEPT_AS}, not one file")


def release(close: Callable[[], None] | None, directory: str | None) -> None:
    """Close the system's handle, then remove its scratch directory, even when closing fails."""
    try:
        if close is not None:
            close()
    finally:
        if directory is not None:
            shutil.rmtree(directory, ignore_errors=True)
