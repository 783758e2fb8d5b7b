"""One Ray task per cell, on a Ray started for the run or on a cluster (`INDEXER_RAY_ADDRESS`).

The space's arrays go into Ray's object store once per space, and every task on a node reads the same
read-only copy. A task writes its cell into a scratch directory of its own machine and returns the files'
bytes: the driver alone writes the cache and the report, so the cluster needs no shared filesystem. Each
task asks for as many CPUs as the cell uses threads, so Ray never runs more cells than there are cores.
A cancelled run cancels its running tasks with force (their worker processes are killed).

A Ray started here keeps its session (logs, sockets, spilled objects) in a scratch directory named after
the driver (indexer.common.fileio.scratch_dir), removed by close(). Its GCS, raylet and head processes die
with the driver (Ray's own parent-death signal), but its dashboard and runtime-env agents, which the raylet
of Ray 2.60 cannot run without, would outlive a kill -9 of the driver by a minute (each first tries to tell
the dead GCS, with a 60 s timeout): a watcher process stops them and removes the directory as soon as the
driver is gone, and the next run's sweep does if the watcher was killed too.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
from collections.abc import Hashable
from pathlib import Path
from typing import Any

from indexer.common.errors import UserError
from indexer.common.fileio import remove_scratch, scratch_dir, staged_dir, sweep_scratch, watch_scratch
from indexer.engine.churn import ChurnOut, ChurnTask, run_churn_task
from indexer.engine.executors.base import CellTask, ConcurrentExecutor, Task, TaskResult, cell_threads
from indexer.engine.measure import ANSWERS_FILE
from indexer.engine.phases import Phases
from indexer.engine.space import Space, space_arrays, space_facts, space_from
from indexer.model.results import DenseRow, IndexRecord

log = logging.getLogger(__name__)
CellFiles = tuple[list[DenseRow], IndexRecord, dict[str, bytes]]
SOCKET_PATH_MAX = 107  # sun_path holds 108 bytes with the NUL
# below Ray's temp dir: its session (named for the date and the driver's pid) and the longest socket's path
SESSION_SOCKET = "/session_2000-01-01_00-00-00_000000_{pid}/sockets/plasma_store"


def ray_cell(task: CellTask, facts: Space, arrays: dict[str, Any], threads: int) -> CellFiles:
    """In a Ray worker: run one cell in a scratch directory and return its rows, record and files."""
    from indexer.engine.cell import evaluate_cell

    sweep_scratch()  # on a cluster's node, what tasks killed by a cancel left
    space = space_from(facts, arrays)
    tmp = scratch_dir("indexer-cell-")
    try:
        with cell_threads(threads):
            rows, record = evaluate_cell(task.spec, task.cell, space, task.cell_dir, tmp, threads=threads,
                                         phase=Phases())
        files = {str(p.relative_to(tmp)): p.read_bytes() for p in sorted(tmp.rglob("*")) if p.is_file()}
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return rows, record, files


def ray_churn(task: ChurnTask, facts: Space, arrays: dict[str, Any], threads: int) -> ChurnOut:
    """In a Ray worker: run one runbook cell, the live sets' exact answers kept in a scratch directory (the
    node may not read the driver's cache); the driver writes the rows it returns."""
    sweep_scratch()
    space = space_from(facts, arrays)
    tmp = scratch_dir("indexer-churn-")
    try:
        with cell_threads(threads):
            return run_churn_task(task, space, threads, truth_cache=tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _ray() -> Any:
    try:
        import ray
    except ImportError:
        raise UserError("the ray executor needs Ray: pip install 'indexer[ray]'") from None
    return ray


class RayExecutor(ConcurrentExecutor):
    name = "ray"
    reads_cache = False  # a task may run on another node

    def __init__(self, workers: int | None, address: str | None) -> None:
        ray = _ray()
        self.started = not ray.is_initialized()
        self.session: Path | None = None  # the scratch directory of a Ray started here
        self.watcher: subprocess.Popen[bytes] | None = None
        if self.started:
            from indexer.engine.executors.config import cores

            options: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False,
                                       "logging_level": logging.WARNING}
            if address:
                ray.init(address=address, **options)
            else:  # a Ray of our own on this machine, as wide as asked, its session in our scratch directory
                try:
                    options.update(self._own_session())
                    ray.init(num_cpus=workers or cores(), **options)
                except BaseException:
                    self._remove_session()
                    raise
        cpus = max(1, int(ray.cluster_resources().get("CPU", 1)))
        self.workers = workers or cpus
        self.threads = max(1, cpus // self.workers)  # each task's num_cpus: the cluster holds `workers` cells
        self.remote = ray.remote(max_retries=0)(ray_cell)
        self.remote_churn = ray.remote(max_retries=0)(ray_churn)
        self.arrays: Any = None
        self.facts: Space | None = None

    def _prepare(self, space: Space) -> None:
        ray = _ray()
        self.arrays = ray.put(space_arrays(space))
        self.facts = space_facts(space)

    def _submit(self, task: Task) -> Hashable:
        remote = self.remote_churn if isinstance(task, ChurnTask) else self.remote
        ref: Hashable = remote.options(num_cpus=self.threads).remote(task, self.facts, self.arrays, self.threads)
        return ref

    def _wait(self, running: list[Hashable], timeout: float) -> list[Hashable]:
        finished, _ = _ray().wait(running, num_returns=1, timeout=timeout)
        return list(finished)

    def _result(self, handle: Hashable, task: Task) -> TaskResult:
        ray = _ray()
        try:
            got = ray.get(handle)
        except ray.exceptions.RayTaskError as err:
            cause = err.cause if isinstance(getattr(err, "cause", None), BaseException) else None
            if cause is not None:
                raise cause from None
            raise
        if isinstance(task, ChurnTask):
            out: ChurnOut = got
            return out
        assert isinstance(task, CellTask)
        rows, record, files = got
        with staged_dir(task.cell_dir, replace=task.replace) as tmp:
            for name, data in files.items():
                if name != ANSWERS_FILE:
                    (tmp / name).parent.mkdir(parents=True, exist_ok=True)
                    (tmp / name).write_bytes(data)
            (tmp / ANSWERS_FILE).write_bytes(files[ANSWERS_FILE])  # the built marker, written last
        return rows, record

    def _stop(self, running: list[Hashable]) -> None:
        ray = _ray()
        for ref in running:
            ray.cancel(ref, force=True)
        for ref in running:  # wait for the kills, so the CPUs are free when we return
            try:
                ray.get(ref, timeout=30)
            except Exception:  # noqa: BLE001  (cancelled tasks raise; that is the point)
                pass

    def _own_session(self) -> dict[str, Any]:
        """Ray's temp dir in a scratch directory of ours, watched; nothing when its sockets would not fit
        below TMPDIR (Ray then keeps its default, unswept)."""
        self.session = scratch_dir("ray-")
        if len(os.fsencode(self.session)) + len(SESSION_SOCKET.format(pid=os.getpid())) > SOCKET_PATH_MAX:
            log.warning("TMPDIR %s is too long for Ray's unix sockets below a scratch directory; Ray keeps its "
                        "session in its default temp dir, which no sweep removes", self.session.parent)
            self._remove_session()
            return {}
        self.watcher = watch_scratch(self.session)
        return {"_temp_dir": str(self.session)}

    def _remove_session(self) -> None:
        """Remove the session directory (stopping whatever Ray left in it), then let the watcher go."""
        if self.session is not None:
            remove_scratch(self.session)
            self.session = None
        if self.watcher is not None:
            assert self.watcher.stdin is not None
            self.watcher.stdin.close()
            try:
                self.watcher.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.watcher.kill()
            self.watcher = None

    def close(self) -> None:
        self.arrays = None
        if self.started:
            _ray().shutdown()
            self._remove_session()
