"""Progress and timing of a run's steps, one mechanism for the driver and for the cells it runs."""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterator

from indexer.engine.eta import Eta

log = logging.getLogger("indexer.engine.runner")

Progress = Callable[[float, str], None]


class Phases:
    """Each phase of a run (load, ground truth, LID, build, sweep, report) becomes the progress
    message when it starts and one log line with its duration when it ends. With an `eta` every message
    ends with the expected time left: `all points, no reduction: ground truth (about 3 min left)`."""

    def __init__(self, progress: Progress | None = None, eta: Eta | None = None) -> None:
        self.progress = progress or (lambda f, m: None)
        self.eta = eta
        self.fraction = 0.0  # of the whole run, when the next phase starts
        self.context = ""  # which space (model, index size, reduction) the phases belong to, in words

    def report(self, what: str) -> None:
        """`what` as the progress message, in its space's context and with the time left."""
        message = f"{self.context}: {what}" if self.context else what
        left = self.eta.words() if self.eta is not None else ""
        self.progress(self.fraction, f"{message} ({left})" if left else message)

    @contextlib.contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        message = f"{self.context}: {name}" if self.context else name
        self.report(name)
        t0 = time.perf_counter()
        yield
        log.info("%s: %.2f s", message, time.perf_counter() - t0)
