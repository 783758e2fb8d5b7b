"""Where a run's cells execute: one interface, three places.

- `inprocess`: in the driver, one cell at a time, each searching with every core (`--workers 1`).
- `local`: a pool of spawned processes on this machine, one cell each; the space's arrays are written
  once per run and memory-mapped by every process, never pickled per cell.
- `ray`: one Ray task per cell on a local Ray or a cluster (`ray.init(address=...)`); the space's
  arrays are put once in Ray's object store, and each task returns its cell's files to the driver, which
  alone writes the cache and the report, so the cluster needs no shared filesystem.

The driver (indexer.engine.runner) computes each space, hands its cells to the executor, and gets each
finished cell back through `done`. Cells read only their inputs, so the rows do not depend on the
executor or on the number of workers (timings aside). Each cell's threads are set explicitly (OpenMP,
BLAS, faiss, the index's search threads) to the cores divided by the cells running at once.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from indexer.engine.executors.config import (
    EXECUTORS,
    Cancelled,
    ExecutorConfig,
    ExecutorName,
    cores,
    executor_config,
)

if TYPE_CHECKING:
    from indexer.engine.executors.base import Executor

__all__ = ["EXECUTORS", "Cancelled", "ExecutorConfig", "ExecutorName", "cores", "executor_config", "open_executor"]



def open_executor(config: ExecutorConfig | None, cache_dir: os.PathLike[str] | str) -> Executor:
    """The executor `config` names; None is one cell at a time in this process (what library callers get)."""
    from pathlib import Path

    from indexer.engine.executors.inprocess import InProcessExecutor

    if config is None:
        return InProcessExecutor(threads=cores())
    if config.workers is not None and config.workers < 1:
        from indexer.common.errors import UserError

        raise UserError(f"workers must be at least 1, got {config.workers}")
    if config.name == "ray":
        from indexer.engine.executors.ray_tasks import RayExecutor

        return RayExecutor(config.workers, config.ray_address)
    workers = config.workers or cores()
    if workers == 1:
        return InProcessExecutor(threads=cores())
    from indexer.engine.executors.pool import PoolExecutor

    return PoolExecutor(workers, Path(cache_dir))


__all__ = ["EXECUTORS", "Cancelled", "ExecutorConfig", "ExecutorName", "cores", "open_executor"]
