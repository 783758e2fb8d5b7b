"""Cells in a pool of local processes, the space's arrays memory-mapped from files written once per run.

The base is the driver's own prepared file (`prepare_to_file`), linked rather than copied: driver and
processes map one file, so its pages are in memory once whatever the worker count.

The processes are spawned (a fresh interpreter: no OpenMP or BLAS state, no locks inherited mid-use),
die with the driver (PR_SET_PDEATHSIG), and are killed on cancel: a running build does not finish first.
A process that dies (a crash, the OOM killer) fails the run with its exit, never hangs it.
"""

from __future__ import annotations

import concurrent.futures as cf
import ctypes
import logging
import multiprocessing as mp
import os
import shutil
import signal
from collections.abc import Hashable
from pathlib import Path

import numpy as np

from indexer.common.fileio import npy_file_of, staging_path, sweep_orphans
from indexer.engine.executors.base import ConcurrentExecutor, Task, TaskResult, run_cell
from indexer.engine.phases import Phases
from indexer.engine.space import Space, space_arrays, space_facts, space_from

log = logging.getLogger(__name__)
PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS",
                    "RAYON_NUM_THREADS", "TOKENIZERS_PARALLELISM")


def _init_process(threads: int, log_level: int) -> None:
    """Each pool process: its thread variables set before any library reads them, dying with the driver."""
    for name in THREAD_VARIABLES:
        os.environ[name] = "false" if name == "TOKENIZERS_PARALLELISM" else str(threads)
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):  # not Linux: the pool's own shutdown still stops us
        pass
    # the driver's level for our own loggers only: libraries (faiss's loader, ...) stay at warnings
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s [cell %(process)d] %(message)s")
    logging.getLogger("indexer").setLevel(log_level)


_opened: dict[str, Space] = {}  # the space this process last opened, by its directory


def _pool_cell(task: Task, facts: Space, space_dir: str, threads: int) -> TaskResult:
    """In a pool process: open the space's arrays (memory-mapped, once per space) and run one cell."""
    space = _opened.get(space_dir)
    if space is None:
        _opened.clear()
        arrays = {p.stem: np.load(p, mmap_mode="r") for p in Path(space_dir).glob("*.npy")}
        space = _opened[space_dir] = space_from(facts, arrays)
    return run_cell(task, space, threads, Phases())


class PoolExecutor(ConcurrentExecutor):
    name = "local"

    def __init__(self, workers: int, cache_dir: Path) -> None:
        from indexer.engine.executors.config import cores

        self.workers = workers
        self.threads = max(1, cores() // workers)
        self.cells = Path(cache_dir) / "cells"
        self.shared = staging_path(Path(cache_dir) / "shared")  # this run's arrays; swept if we are killed
        self.pool: cf.ProcessPoolExecutor | None = None
        self.space_dir: Path | None = None
        self.facts: Space | None = None

    def _prepare(self, space: Space) -> None:
        """Write the space's arrays once (one .npy each) for the processes to memory-map."""
        if self.space_dir is not None:
            shutil.rmtree(self.space_dir, ignore_errors=True)
        self.space_dir = self.shared / space.key
        self.space_dir.mkdir(parents=True)
        for name, arr in space_arrays(space).items():
            file = npy_file_of(arr)
            if file is not None:  # already a file the driver maps (the prepared base): map it, not a copy
                os.symlink(file.resolve(), self.space_dir / f"{name}.npy")
            else:
                np.save(self.space_dir / f"{name}.npy", np.ascontiguousarray(arr))
        self.facts = space_facts(space)
        if self.pool is None:
            self.pool = cf.ProcessPoolExecutor(
                self.workers, mp_context=mp.get_context("spawn"), initializer=_init_process,
                initargs=(self.threads, logging.getLogger("indexer").getEffectiveLevel()))

    def _submit(self, task: Task) -> Hashable:
        assert self.pool is not None and self.facts is not None
        return self.pool.submit(_pool_cell, task, self.facts, str(self.space_dir), self.threads)

    def _wait(self, running: list[Hashable], timeout: float) -> list[Hashable]:
        finished, _ = cf.wait(running, timeout=timeout, return_when=cf.FIRST_COMPLETED)  # type: ignore[arg-type]
        return list(finished)

    def _result(self, handle: Hashable, task: Task) -> TaskResult:
        assert isinstance(handle, cf.Future)
        try:
            result: TaskResult = handle.result()
        except cf.process.BrokenProcessPool:
            raise RuntimeError(f"a cell process died while running {task.cell_dir.name} (killed, out of "
                               "memory, or crashed); the run stops, the finished cells stay cached") from None
        return result

    def _stop(self, running: list[Hashable]) -> None:
        self._kill()
        sweep_orphans(self.cells)  # the killed cells' staging directories: their owners are gone now

    def _kill(self) -> None:
        """Kill the pool's processes (a build in C does not look at flags) and forget the pool."""
        if self.pool is None:
            return
        for proc in list(getattr(self.pool, "_processes", {}).values()):  # no public way before 3.14
            if proc.is_alive():
                proc.kill()
        self.pool.shutdown(wait=True, cancel_futures=True)
        self.pool = None

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=True)
            self.pool = None
        shutil.rmtree(self.shared, ignore_errors=True)
