"""Cells one at a time in the driver's own process, each using every core to search."""

from __future__ import annotations

from collections.abc import Callable

from indexer.engine.executors.base import Cancelled, Executor, Task, TaskResult, run_cell
from indexer.engine.phases import Phases
from indexer.engine.space import Space


class InProcessExecutor(Executor):
    name = "inprocess"
    workers = 1

    def __init__(self, threads: int) -> None:
        self.threads = threads

    def run_cells(self, space: Space, tasks: list[Task], *, admit: Callable[[Task], bool],
                  should_stop: Callable[[], bool], done: Callable[[int, TaskResult], None],
                  phase: Phases) -> None:
        for i, task in enumerate(tasks):
            if should_stop():
                raise Cancelled()
            if admit(task):
                done(i, run_cell(task, space, self.threads, phase))
