"""Where a run's figures came from: the interpreter, the numerical libraries, the CPU and how the cells ran.

Recall does not depend on any of it (the tests compare rows across executors); timings do, and a reader
comparing two runs' QPS needs to know whether the machine, the libraries or the concurrency differed.
"""

from __future__ import annotations

import importlib.metadata
import platform
from pathlib import Path

from indexer.engine.executors.base import Executor
from indexer.model.results import Provenance

LIBRARIES = ("numpy", "scipy", "faiss-cpu", "hnswlib")


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo (Linux), else what platform says."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def _version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "absent"


def provenance(executor: Executor) -> Provenance:
    """This run's machine, libraries and executor."""
    return Provenance(
        python=platform.python_version(), libraries={d: _version(d) for d in LIBRARIES}, cpu=cpu_model(),
        executor=executor.name, cells_at_once=executor.workers, threads_per_cell=executor.threads,
    )
