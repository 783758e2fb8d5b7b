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
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:  # this module stays light: the settings import it, and the API imports the settings
    from indexer.engine.executors.base import Executor

class Cancelled(Exception):
    """Raised when `should_stop` says so: pending cells never start, running ones are stopped, and the
    cells already finished stay cached."""


ExecutorName = Literal["local", "ray"]
EXECUTORS: tuple[ExecutorName, ...] = ("local", "ray")


@dataclass(frozen=True)
class ExecutorConfig:
    """Which executor and how wide. `workers` None: every core of this machine (local), every CPU the
    Ray cluster has (ray)."""

    name: ExecutorName = "local"
    workers: int | None = None
    ray_address: str | None = None  # None: a Ray started for the run, on this machine


def cores() -> int:
    """The cores this process may run on (its CPU affinity, which a container's cpuset narrows)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


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
