"""What names an executor and how wide it runs, kept apart from the executors so that choosing one imports none."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Literal

from indexer.common.errors import UserError


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


def executor_config(name: str, workers: int | None, ray_address: str | None) -> ExecutorConfig:
    """The executor a run uses, checked: a name of EXECUTORS and at least one worker (None: every core)."""
    if name not in EXECUTORS:
        raise UserError(f"unknown executor {name!r}; expected one of {', '.join(EXECUTORS)}")
    if workers is not None and workers < 1:
        raise UserError(f"workers must be at least 1, got {workers}")
    return ExecutorConfig(name=name, workers=workers, ray_address=ray_address)  # type: ignore[arg-type]
