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
  (an int8 in units of 1/127), 1 byte;
- `pq`: product quantization, the vector cut into `pq_m` sub-vectors, each stored as the index of its nearest
  of 2^nbits trained centroids: pq_m * nbits / 8 bytes (a backend's `pq_m` build parameter; nbits 8 here).

Bytes per vector count the vector as stored, not the graph's links nor an index-wide table (faiss SQ8's
per-dimension minimum and range: 8 bytes a dimension for the whole index).

Rescoring: a system that re-ranks its quantized index's candidates by the original vectors takes the build
parameter `rescore: {oversample: 2.0}`: the index search asks for ceil(k * oversample) candidates, re-scored
exactly and cut to k. It is keyed with the build (one cell per setting) though it decides only the search: the
engine keys answers by build, and a rescored cell also searches its index with rescoring off at each ef
(base.Rescores), which is what the loss split's `recovered_by_rescore` is measured against. Rows carry it as
`rescore: <oversample>` (a build parameter is one scalar).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Annotated, Any, Literal, get_args

from pydantic import BeforeValidator, Field, PlainSerializer

from indexer.model.strict import Strict

Precision = Literal["f32", "f16", "bf16", "i8", "binary", "e4m3", "float8", "pq"]
PRECISION_FIELD = "precision"
PQ_M_FIELD = "pq_m"  # a pq index's sub-vectors per vector
PQ_NBITS = 8  # bits per sub-vector code: faiss's default (IndexHNSWPQ's pq_nbits), the only one offered here
FULL: Precision = "f32"  # what a backend without the parameter stores
RESCORE_FIELD = "rescore"
MAX_OVERSAMPLE = 64.0


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
    if precision == "pq":
        raise ValueError("pq's bytes per vector depend on its pq_m: stored_bytes(params, dims)")
    raise ValueError(f"unknown precision {precision!r}; the precisions: {', '.join(get_args(Precision))}")


def stored_bytes(params: Mapping[str, Any], dims: int) -> int:
    """The bytes one vector takes as an index built with `params` (a backend's, as dumped) stores it: its
    precision's, with a pq index's pq_m codes of PQ_NBITS bits."""
    stores = precision_of(params)
    if stores == "pq":
        return math.ceil(int(params[PQ_M_FIELD]) * PQ_NBITS / 8)
    return bytes_per_vector(stores, dims)


# a backend that names its storage by another build parameter than `precision`: (parameter, value) -> precision.
# lancedb's index_type IVF_HNSW_SQ keeps 8-bit scalar codes beside the graph and ranks by them
# (indexer.backends.lancedb_index), IVF_HNSW_FLAT float32 vectors.
STORAGE_PARAMS: dict[tuple[str, str], Precision] = {("index_type", "IVF_HNSW_SQ"): "i8"}


def precision_of(params: Mapping[str, Any]) -> str:
    """The precision a backend's build parameters store vectors in: theirs, or the one their storage parameter
    names (STORAGE_PARAMS), or f32."""
    if PRECISION_FIELD in params:
        return str(params[PRECISION_FIELD])
    for (name, value), stores in STORAGE_PARAMS.items():
        if params.get(name) == value:
            return stores
    return FULL


def quantized(params: Mapping[str, Any]) -> bool:
    """Whether the index stores something other than float32 of its space: its exact search over what it
    stores is then a search of its own (base.StoresVectors), not the space's exact kNN."""
    return precision_of(params) != FULL


class Rescore(Strict):
    """Re-ranking by the original vectors: ceil(k * oversample) candidates from the quantized index."""

    oversample: float = Field(ge=1.0, le=MAX_OVERSAMPLE)


def _rescore_read(value: Any) -> Any:
    """The dumped form, the oversample alone (a row's or a cell's `rescore: 2.0`), read as the model."""
    return {"oversample": value} if isinstance(value, int | float) and not isinstance(value, bool) else value


def _rescore_dumped(value: Rescore | None) -> float | None:
    return None if value is None else value.oversample


# a backend's `rescore` field: `rescore: {oversample: 2.0}` in a spec, dumped as the oversample (module doc);
# left out of keys and rows while None
RescoreParam = Annotated[Rescore | None, BeforeValidator(_rescore_read),
                         PlainSerializer(_rescore_dumped, return_type=float | None)]


def rescore_field(description: str) -> Any:
    """The `rescore` field of a backend that has rescoring, None (off) by default and then out of its keys."""
    return Field(default=None, exclude_if=lambda v: v is None, description=description)


def oversample_of(params: Mapping[str, Any]) -> float | None:
    """The oversample of a rescored cell's build parameters (as dumped), None where nothing is re-ranked."""
    value = params.get(RESCORE_FIELD)
    return None if value is None else float(value)


def candidates(k: int, oversample: float) -> int:
    """How many candidates a rescored search takes from the index for k answers."""
    return max(k, math.ceil(k * oversample))
