"""Result rows as published: floats rounded to what they mean, values made plain JSON, one CSV line each."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Mapping, Sequence
from typing import Any

from indexer.common.jsonvalues import plain
from indexer.model.results import ResultModel, rows_to_json

JsonRow = dict[str, Any]  # a row as published: plain JSON

IR_METRICS = ("ndcg@10", "mrr@10", "recall@100")
# CSV column order: what a reader scans first, then anything else sorted, then the bulky nested cells.
MAIN_COLUMNS = (
    "dataset", "model", "metric", "reduction", "dims", "representation", "index_size", "ordering",
    "backend", "preset", "M", "ef_construction", "ef", "k", "seed", "recall", "recall_std", "recall_ci95",
    "recall_within", *IR_METRICS, "build_seconds", "qps", "index_bytes", "bytes_per_vector",
)  # fmt: skip
TAIL_COLUMNS = ("recall_by_category", "recall_by_lid_bin", "cost_at_recall", "graph", "diagnostics_by_category",
                "diagnostics_by_lid_bin", "neighbors", "recall_file", "query_measures")

# Decimals each measure means: recall of k <= 1000 results needs 4, a time in seconds 4, a rate 1.
ROUNDING = {"qps": 1, "build_seconds": 4, "selectivity": 12, "kept": 12}  # a selectivity of 1e-5 kept
DEFAULT_DECIMALS = 4


def round_row(row: dict[str, Any]) -> dict[str, Any]:
    """A result row with its floats rounded to what they mean (recall to 4 decimals, qps to 1)."""
    return {key: _round(value, ROUNDING.get(key, DEFAULT_DECIMALS)) for key, value in row.items()}


def _round(value: Any, decimals: int) -> Any:
    if isinstance(value, float):
        return round(value, decimals)
    if isinstance(value, dict):
        return {k: _round(v, decimals) for k, v in value.items()}
    if isinstance(value, list):
        return [_round(v, decimals) for v in value]
    return value


def csv_cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, dict | list):
        return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def rows_to_csv(rows: Sequence[ResultModel | Mapping[str, Any]]) -> str:
    """One line per row; nested values (dicts, lists) JSON-encoded in their cell, None as empty."""
    plain_rows = [plain(r) for r in rows_to_json(rows)]
    seen: dict[str, None] = {}
    for r in plain_rows:
        seen.update(dict.fromkeys(r))
    main = [c for c in MAIN_COLUMNS if c in seen]
    tail = [c for c in TAIL_COLUMNS if c in seen]
    rest = sorted(c for c in seen if c not in main and c not in tail)
    columns = main + rest + tail
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(columns)
    for r in plain_rows:
        writer.writerow([csv_cell(r.get(c)) for c in columns])
    return buf.getvalue()
