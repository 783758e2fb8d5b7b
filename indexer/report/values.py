"""Values to numbers: a measure may be None or NaN (not taken), and numpy scalars count as numbers."""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import numpy as np


def num(value: Any) -> float | None:
    if value is None or isinstance(value, bool | np.bool_):
        return None
    if isinstance(value, int | float | np.integer | np.floating):
        f = float(value)
        return f if math.isfinite(f) else None
    return None


def mean(values: Iterable[Any]) -> float | None:
    nums = [x for x in (num(v) for v in values) if x is not None]
    return sum(nums) / len(nums) if nums else None


def std(values: Iterable[Any]) -> float | None:
    nums = [x for x in (num(v) for v in values) if x is not None]
    if len(nums) < 2:
        return None
    return float(np.std(nums, ddof=1))


def sortable(value: Any) -> tuple[Any, ...]:
    """Numbers before strings before None, so mixed columns sort without TypeError."""
    n = num(value)
    if n is not None:
        return (0, n, "")
    if value is None:
        return (2, 0.0, "")
    return (1, 0.0, str(value))
