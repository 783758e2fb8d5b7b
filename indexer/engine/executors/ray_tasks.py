"""One Ray task per cell, on a Ray started for the run or on a cluster (`INDEXER_RAY_ADDRESS`).

The space's arrays go into Ray's object store once per space, and every task on a node reads the same
read-only copy. A task writes its cell into a scratch directory of its own machine and returns the files'
bytes: the driver alone writes the cache and the report, so the cluster needs no shared filesystem. Each
task asks for as many CPUs as the cell uses threads, so Ray never runs more cells than there are cores.
A cancelled run cancels its running tasks with force (their worker processes are killed).
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Hashable
from pathlib import Path
from typing import Any

from indexer.common.errors import UserError
from indexer.common.fileio import staged_dir
from indexer.engine.cell import Space, space_arrays, space_facts, space_from
from indexer.engine.executors.base import CellResult, CellTask, ConcurrentExecutor, cell_threads
from indexer.engine.phases import Phases
from indexer.engine.results import DenseRow, IndexRecord

log = logging.getLogger(__name__)
CellFiles = tuple[list[DenseRow], IndexRecord, dict[str, bytes]]


def ray_cell(task: CellTask, facts: Space, arrays: dict[str, Any], threads: int) -> CellFiles:
    """In a Ray worker: run one cell in a scratch directory and return its rows, record and files."""
    from indexer.engine.cell import evaluate_cell

    space = space_from(facts, arrays)
    with cell_threads(threads), tempfile.TemporaryDirectory(prefix="indexer-cell-") as scratch:
        tmp = Path(scratch)
        rows, record = evaluate_cell(task.spec, task.cell, space, task.cell_dir, tmp, threads=threads,
                                     phase=Phases())
        files = {p.name: p.read_bytes() for p in sorted(tmp.iterdir())}
    return rows, record, files


def _ray() -> Any:
    try:
        import ray
    except ImportError:
        raise UserError("the ray executor needs Ray: pip install 'indexer[ray]'") from None
    return ray


class RayExecutor(ConcurrentExecutor):
    name = "ray"

    def __init__(self, workers: int | None, address: str | None) -> None:
        ray = _ray()
        self.started = not ray.is_initialized()
        if self.started:
            from indexer.engine.executors import cores

            options: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False,
                                       "logging_level": logging.WARNING}
            if address:
                ray.init(address=address, **options)
            else:  # a Ray of our own on this machine, as wide as asked
                ray.init(num_cpus=workers or cores(), **options)
        cpus = max(1, int(ray.cluster_resources().get("CPU", 1)))
        self.workers = workers or cpus
        self.threads = max(1, cpus // self.workers)  # each task's num_cpus: the cluster holds `workers` cells
        self.remote = ray.remote(max_retries=0)(ray_cell)
        self.arrays: Any = None
        self.facts: Space | None = None

    def _prepare(self, space: Space) -> None:
        ray = _ray()
        self.arrays = ray.put(space_arrays(space))
        self.facts = space_facts(space)

    def _submit(self, task: CellTask) -> Hashable:
        ref: Hashable = self.remote.options(num_cpus=self.threads).remote(task, self.facts, self.arrays, self.threads)
        return ref

    def _wait(self, running: list[Hashable], timeout: float) -> list[Hashable]:
        finished, _ = _ray().wait(running, num_returns=1, timeout=timeout)
        return list(finished)

    def _result(self, handle: Hashable, task: CellTask) -> CellResult:
        ray = _ray()
        try:
            rows, record, files = ray.get(handle)
        except ray.exceptions.RayTaskError as err:
            cause = err.cause if isinstance(getattr(err, "cause", None), BaseException) else None
            if cause is not None:
                raise cause from None
            raise
        with staged_dir(task.cell_dir, replace=task.replace) as tmp:
            for name, data in files.items():
                if name not in ("rows.json", "meta.json"):
                    (tmp / name).write_bytes(data)
            (tmp / "meta.json").write_bytes(files["meta.json"])
            (tmp / "rows.json").write_bytes(files["rows.json"])  # the finished marker, written last
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

    def close(self) -> None:
        self.arrays = None
        if self.started:
            _ray().shutdown()
