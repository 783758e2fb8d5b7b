"""The executor interface, and the one loop that feeds any executor's workers."""

from __future__ import annotations

import contextlib
import logging
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Callable, Hashable, Iterator
from dataclasses import dataclass
from pathlib import Path

from indexer.common.fileio import staged_dir
from indexer.engine.cell import CellResult, evaluate_cell, reprobe_cell
from indexer.engine.churn import ChurnOut, ChurnTask, run_churn_task
from indexer.engine.executors.config import Cancelled
from indexer.engine.phases import Phases
from indexer.engine.space import Space
from indexer.engine.spec import Cell, ExperimentSpec

log = logging.getLogger(__name__)

POLL_SECONDS = 0.25  # how often a waiting driver looks at `should_stop`


@dataclass(frozen=True)
class CellTask:
    """One cell to run and where its finished directory goes (`replace`: over a finished one, --fresh;
    `reprobe`: the cell is built, its saved index is probed again and nothing is built)."""

    spec: ExperimentSpec
    cell: Cell
    cell_dir: Path
    replace: bool = False
    reprobe: bool = False


Task = CellTask | ChurnTask  # a grid cell, or a runbook's cell (indexer.engine.churn)
TaskResult = CellResult | ChurnOut


@contextlib.contextmanager
def cell_threads(threads: int) -> Iterator[None]:
    """Every thread pool a cell may touch held to `threads`: BLAS and OpenMP (threadpoolctl) and faiss's
    own OpenMP setting; the index's search threads are passed to it directly."""
    import faiss
    from threadpoolctl import threadpool_limits

    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(threads)
    try:
        with threadpool_limits(limits=threads):
            yield
    finally:
        faiss.omp_set_num_threads(before)


def run_cell(task: Task, space: Space, threads: int, phase: Phases) -> TaskResult:
    """Evaluate one cell into its directory, staged so that only a finished cell is ever visible (or probe
    its saved index again, writing each new file whole); a runbook's cell is run and its rows returned, for
    the driver to write."""
    if isinstance(task, ChurnTask):
        with cell_threads(threads):
            return run_churn_task(task, space, threads)
    if task.reprobe:
        with cell_threads(threads):
            return reprobe_cell(task.spec, task.cell, space, task.cell_dir, threads=threads, phase=phase)
    with cell_threads(threads), staged_dir(task.cell_dir, replace=task.replace) as tmp:
        return evaluate_cell(task.spec, task.cell, space, task.cell_dir, tmp, threads=threads, phase=phase)


class Executor(ABC):
    """Runs the cells of one space at a time; `close` releases its processes (or its Ray connection)."""

    name: str
    workers: int  # cells at once
    threads: int  # each cell's threads
    # whether its workers read the driver's cache directory (the driver's machine): then a built cell's saved
    # index is probed again in place (CellTask.reprobe); else (a Ray cluster) such a cell is built again
    reads_cache: bool = True

    @abstractmethod
    def run_cells(self, space: Space, tasks: list[Task], *, admit: Callable[[Task], bool],
                  should_stop: Callable[[], bool], done: Callable[[int, TaskResult], None],
                  phase: Phases) -> None:
        """Run `tasks` (each if `admit` says so when its turn comes), calling `done(i, result)` as each
        finishes; raise Cancelled once `should_stop` is true, a cell's error as soon as it fails."""

    def close(self) -> None:  # noqa: B027  (nothing to release, for most)
        """Release workers; the executor is not used again."""

    def __enter__(self) -> Executor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class ConcurrentExecutor(Executor):
    """An executor with handles to running cells: keeps `workers` cells running, hands the next one out
    as one finishes, and stops all of them on cancel or on a cell's failure."""

    @abstractmethod
    def _prepare(self, space: Space) -> None:
        """Share the space's arrays once, before its first cell."""

    @abstractmethod
    def _submit(self, task: Task) -> Hashable: ...

    @abstractmethod
    def _wait(self, running: list[Hashable], timeout: float) -> list[Hashable]:
        """The handles among `running` that have finished, waiting at most `timeout` for one."""

    @abstractmethod
    def _result(self, handle: Hashable, task: Task) -> TaskResult:
        """A finished cell's rows and record (raising the cell's own error if it failed)."""

    @abstractmethod
    def _stop(self, running: list[Hashable]) -> None:
        """Stop running cells now (their half-written directories never get their final names)."""

    def run_cells(self, space: Space, tasks: list[Task], *, admit: Callable[[Task], bool],
                  should_stop: Callable[[], bool], done: Callable[[int, TaskResult], None],
                  phase: Phases) -> None:
        if not tasks:
            return
        self._prepare(space)
        pending = deque(enumerate(tasks))
        running: dict[Hashable, int] = {}
        try:
            while pending or running:
                while pending and len(running) < self.workers and not should_stop():
                    i, task = pending.popleft()
                    if admit(task):
                        running[self._submit(task)] = i
                if should_stop():
                    raise Cancelled()
                for handle in self._wait(list(running), POLL_SECONDS):
                    i = running.pop(handle)
                    done(i, self._result(handle, tasks[i]))
        except BaseException:
            if running:
                log.info("stopping %d running cells", len(running))
                self._stop(list(running))
            raise
