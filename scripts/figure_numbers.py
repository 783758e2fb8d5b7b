"""How the README's study figures print numbers over seeds: one place, so every study says it the same way."""

from __future__ import annotations

from collections.abc import Sequence
from statistics import mean


def spread(values: Sequence[float], digits: int = 3) -> str:
    """Mean over seeds, and the range when the seeds differ at the printed precision."""
    m = mean(values)
    lo, hi = min(values), max(values)
    text = f"{m:.{digits}f}"
    if f"{lo:.{digits}f}" != f"{hi:.{digits}f}":
        text += f" ({lo:.{digits}f}–{hi:.{digits}f})"
    return text


def points(diffs: Sequence[float], replicated: bool = True) -> str:
    """A difference in points over seeds: its mean, range, and whether every seed agrees on its sign; a
    system whose builds do not vary with the seed made one measurement, whatever the number of seeds."""
    pts = [100 * d for d in diffs]
    text = f"{mean(pts):+.1f} ({min(pts):+.1f} to {max(pts):+.1f})"
    if not replicated:
        return f"{mean(pts):+.1f} one build"
    if all(p >= 0.05 for p in pts) or all(p <= -0.05 for p in pts):  # a sign that shows at the printed 0.1
        return text + " every seed"
    return text + " mixed"


def every_seed(diffs: Sequence[float]) -> bool:
    """Whether a difference has the same sign in every seed, at the printed 0.1 point."""
    pts = [100 * d for d in diffs]
    return all(p >= 0.05 for p in pts) or all(p <= -0.05 for p in pts)
