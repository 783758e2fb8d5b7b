"""A run's per-query results as one Parquet table: a line per (dense row, query) with the row's setting, the
query's recall@k and how hard the query is in the row's space (QUERY_MEASURE_FIELDS: LID, relative contrast
and expansion at k, distance to the nearest k-means centre of the base).

Written one row group per report row, so memory holds one row's queries at a time whatever the run's size.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import fastparquet
import numpy as np
import pandas as pd

from indexer.common.errors import UserError
from indexer.model.results import QUERY_MEASURE_FIELDS, BuildParam, DenseRow
from indexer.report.published import Published, describe

FILE = "queries.parquet"
# The row's setting, in this order; the backends' build parameters follow `backend`.
SETTING_BEFORE = ("dataset", "model", "index_size", "reduction", "dims", "ordering", "backend")
SETTING_AFTER = ("ef", "k", "seed", "cell")
TEXT = {"dataset", "model", "reduction", "ordering", "backend", "cell"}


def write_parquet(report: Published, into: Path, *, cache_dir: Path) -> list[str]:
    """Write `into`/queries.parquet; return notes for the user (rows without query measures).

    `cache_dir` is not read: everything comes from the report."""
    params = _param_types(report.dense)
    path = into / FILE
    unmeasured = 0
    for i, row in enumerate(report.dense):
        recall = report.array(row, "recall_file").astype(np.float32, copy=False)
        if recall.ndim != 1:
            raise UserError(f"row {describe(row)}: its recall file is not one value per query")
        measures = report.array(row, "query_measures") if row.query_measures is not None else None
        unmeasured += measures is None
        if measures is not None and measures.shape != recall.shape:
            raise UserError(f"row {describe(row)}: {len(measures)} query measures for {len(recall)} queries")
        frame = _frame(row, recall, measures, params)
        fastparquet.write(str(path), frame, append=i > 0, object_encoding="utf8", write_index=False,
                          compression="ZSTD")
    if unmeasured:
        return [f"{unmeasured} rows carry no query measures (a report from before they were published): "
                f"their {', '.join(QUERY_MEASURE_FIELDS)} are empty"]
    return []


def _frame(row: DenseRow, recall: np.ndarray, measures: np.ndarray | None,
           params: dict[str, str]) -> pd.DataFrame:
    n = len(recall)
    columns: dict[str, Any] = {}
    for name in SETTING_BEFORE:
        columns[name] = _repeat(getattr(row, name), n, "object" if name in TEXT else "int64")
    for name, dtype in params.items():
        value = row.build_params.get(name)
        columns[name] = _repeat(str(value) if dtype == "object" and value is not None else value, n, dtype)
    for name in SETTING_AFTER:
        columns[name] = _repeat(getattr(row, name), n, "object" if name in TEXT else "Int64")
    columns["query"] = np.arange(n, dtype=np.int64)
    columns["recall"] = recall
    held = () if measures is None or measures.dtype.names is None else measures.dtype.names
    for name in QUERY_MEASURE_FIELDS:  # a file from before a measure existed leaves its column empty
        columns[name] = measures[name].astype(np.float64) if measures is not None and name in held else np.full(n, np.nan)
    return pd.DataFrame(columns)


def _repeat(value: Any, n: int, dtype: str) -> pd.Series:
    return pd.Series([value] * n, dtype=dtype)


def _param_types(rows: list[DenseRow]) -> dict[str, str]:
    """Each build parameter any row has, with one column type for all row groups: whole numbers Int64 (a
    backend without it: null), other numbers float64, flags boolean, anything else text."""
    values: dict[str, list[BuildParam]] = {}
    for row in rows:
        for name, value in row.build_params.items():
            values.setdefault(name, []).append(value)
    types = {}
    for name, seen in values.items():
        if all(isinstance(v, bool) for v in seen):
            types[name] = "boolean"
        elif all(isinstance(v, int) and not isinstance(v, bool) for v in seen):
            types[name] = "Int64"
        elif all(isinstance(v, int | float) and not isinstance(v, bool) for v in seen):
            types[name] = "float64"
        else:
            types[name] = "object"
    return types
