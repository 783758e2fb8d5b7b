"""Precision: how an index stores each vector, under one name across libraries, and what that costs in bytes.

A backend that stores vectors in another form than float32 takes the build parameter `precision`, its model's
field a Literal of the names it ships (each backend's file cites what its library does for each). A backend
without the parameter stores float32: its rows say "f32". One name means one kind of storage everywhere:

- `f32`: float32, 4 bytes a dimension;
- `f16`: IEEE half precision, 2 bytes; `bf16`: bfloat16 (float32's top 16 bits), 2 bytes;
- `i8`: 8-bit scalar quantization, 1 byte a dimension (the scale is the library's: faiss SQ8 per dimension,
  trained; usearch per vector, its unit norm, not stored);
- `binary`: one bit a dimension (its sign), ceil(dims / 8) bytes;
- `e4m3`: an 8-bit float (4 exponent bits, 3 mantissa bits), 1 byte; `float8`: voyager's 8-bit fixed point
  (an int8 in units of 1/127), 1 byte.

Bytes per vector count the vector as stored, not the graph's links nor an index-wide table (faiss SQ8's
per-dimension minimum and range: 8 bytes a dimension for the whole index).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, Literal, get_args

Precision = Literal["f32", "f16", "bf16", "i8", "binary", "e4m3", "float8"]
PRECISION_FIELD = "precision"
FULL: Precision = "f32"  # what a backend without the parameter stores


def bytes_per_vector(precision: str, dims: int) -> int:
    """The bytes one vector of `dims` dimensions takes as stored in `precision` (the module's table)."""
    if precision == "f32":
        return 4 * dims
    if precision in ("f16", "bf16"):
        return 2 * dims
    if precision in ("i8", "e4m3", "float8"):
        return dims
    if precision == "binary":
        return math.ceil(dims / 8)
    raise ValueError(f"unknown precision {precision!r}; the precisions: {', '.join(get_args(Precision))}")


def precision_of(params: Mapping[str, Any]) -> str:
    """The precision a backend's build parameters store vectors in: theirs, or f32 without the parameter."""
    return str(params.get(PRECISION_FIELD, FULL))


def quantized(params: Mapping[str, Any]) -> bool:
    """Whether the index stores something other than float32 of its space: its exact search over what it
    stores is then a search of its own (base.StoresVectors), not the space's exact kNN."""
    return precision_of(params) != FULL
