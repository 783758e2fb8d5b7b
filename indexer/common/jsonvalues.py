"""The one JSON cleaner: numpy scalars and arrays unwrapped, NaN/inf as null, paths and models as text.

Used by the report (where an unknown value is written as its text) and by the store (where it is an
error: PostgreSQL would reject it, and a silent str() would hide a bug in what the engine produced).
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from typing import Any

import numpy as np


def plain(value: Any, *, strict: bool = False) -> Any:
    """A JSON-ready copy of `value`; `strict` raises TypeError on a value with no JSON form."""
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, int | np.integer):
        return int(value)
    if isinstance(value, float | np.floating):
        f = float(value)
        return f if math.isfinite(f) else None
    if isinstance(value, Mapping):
        return {str(k): plain(v, strict=strict) for k, v in value.items()}
    if isinstance(value, np.ndarray):
        return plain(value.tolist(), strict=strict)
    if isinstance(value, list | tuple | set | frozenset):
        return [plain(v, strict=strict) for v in value]
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if hasattr(value, "model_dump"):
        return plain(value.model_dump(mode="json"), strict=strict)
    if strict:
        raise TypeError(f"cannot store a {type(value).__name__} as JSON")
    return str(value)
