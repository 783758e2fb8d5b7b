"""A run's progress in words: which space it works on, and the expected time left.

The time left starts from the work model's estimate (indexer.engine.work: the same one admission checks) and is
corrected as work finishes: what remains by the estimate, times how long the finished work really took per
estimated second. A cell found in the cache costs nothing, so its estimate leaves the plan instead.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

from indexer.model.options import ReductionSpec

REDUCTIONS = {"fft": "FFT", "pca": "PCA", "random_projection": "random projection", "truncate": "truncation"}
FFT_RULES = {"low": "lowest frequencies", "energy": "most energetic frequencies"}


def space_words(model: str | None, size: int | str, reduction: ReductionSpec) -> str:
    """A space as a progress line names it: `all points, no reduction`, `5,000 points, PCA to 8 dims`."""
    points = "all points" if size == "all" else f"{int(size):,} points"
    if reduction.name == "none":
        reduced = "no reduction"
    else:
        rule = f" ({FFT_RULES[reduction.rule]})" if reduction.name == "fft" and reduction.rule else ""
        reduced = f"{REDUCTIONS[reduction.name]}{rule} to {reduction.dims} dims"
    return ", ".join(p for p in (f"model {model}" if model else "", points, reduced) if p)


def time_left_words(seconds: float) -> str:
    """`about 40 s left`, `about 3 min left`, `about 1.5 h left`; rounded up, so it never promises too little."""
    if seconds < 60:
        return f"about {max(5, 5 * math.ceil(seconds / 5))} s left"
    if seconds < 5400:
        return f"about {math.ceil(seconds / 60)} min left"
    return f"about {seconds / 3600:.1f} h left"


class Eta:
    """The expected time left of a run: its planned work (estimated core-seconds) less what finished, scaled by
    the seconds the finished work took per estimated second; before anything finished, the plan over the cores
    the run uses."""

    def __init__(self, *, parallel: int = 1, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._start = clock()
        self._parallel = max(parallel, 1)
        self.planned: float | None = None  # None: not known yet (a user's file is sized when it is read)
        self.finished = 0.0

    def plan(self, seconds: float) -> None:
        """The whole run's estimated work; what already finished stays counted."""
        self.planned = max(seconds, self.finished)

    def done(self, seconds: float) -> None:
        """Work of this estimate finished."""
        self.finished += max(seconds, 0.0)

    def skipped(self, seconds: float) -> None:
        """Work of this estimate was found done (a cached cell): it leaves the plan, and the rate."""
        if self.planned is not None:
            self.planned = max(self.planned - max(seconds, 0.0), self.finished)

    def left(self) -> float | None:
        """Seconds expected until the run ends (None: no plan yet)."""
        if self.planned is None:
            return None
        remaining = self.planned - self.finished
        if remaining <= 1e-9 * self.planned:  # all of it, give or take the rounding of the parts' sum
            return 0.0
        if self.finished <= 0.0:
            return remaining / self._parallel
        return remaining * (self._clock() - self._start) / self.finished

    def words(self) -> str:
        """The time left in words, or "" when there is no plan or nothing is left by it."""
        left = self.left()
        return "" if left is None or left <= 0.0 else time_left_words(left)
