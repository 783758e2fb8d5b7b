"""Progress and timing of a run's steps, one mechanism for the driver and for the cells it runs."""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterator

log = logging.getLogger("indexer.engine.runner")

Progress = Callable[[float, str], None]


class Phases:
    """Each phase of a run (load, ground truth, LID, build, sweep, report) becomes the progress
    message when it starts and one log line with its duration when it ends."""

    def __init__(self, progress: Progress | None = None) -> None:
        self.progress = progress or (lambda f, m: None)
        self.fraction = 0.0  # of the whole run, when the next phase starts
        self.context = ""  # which space (model, index size, reduction) the phases belong to

    @contextlib.contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        message = f"{self.context}: {name}" if self.context else name
        self.progress(self.fraction, message)
        t0 = time.perf_counter()
        yield
        log.info("%s: %.2f s", message, time.perf_counter() - t0)
