"""A published report directory read back (what `indexer run --out DIR` writes), as the exporters read it."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import ValidationError

from indexer.common.errors import UserError
from indexer.model.results import DenseRow, parse_rows


@dataclass(frozen=True)
class Published:
    """A report's dense rows (the ANN searches) and the directory their files are relative to."""

    directory: Path
    dense: list[DenseRow]
    skipped: int  # sparse and hybrid rows: no ANN search of their own to export

    def array(self, row: DenseRow, field: str) -> np.ndarray:
        """The array a row's file field names (`neighbors`, `recall_file`, `query_measures`), read whole;
        UserError when the row names none or the file is gone."""
        relative = getattr(row, field)
        if relative is None:
            raise UserError(f"{self.directory}: row {describe(row)} has no `{field}` file "
                            "(a report from before it was published: rerun the spec with --fresh)")
        path = self.directory / relative
        if not path.is_file():
            raise UserError(f"{self.directory}: {relative}, named by row {describe(row)}, is missing")
        arr: np.ndarray = np.load(path, allow_pickle=False)
        return arr


def describe(row: DenseRow) -> str:
    """A row as a user finds it in the report: its setting in a few words."""
    params = " ".join(f"{k}={v}" for k, v in row.build_params.items())
    parts = (row.model, f"n={row.index_size}", row.reduction, row.ordering, row.backend, params,
             f"ef={row.ef}" if row.ef is not None else "exact", f"seed={row.seed}")
    return " ".join(p for p in parts if p)


def read_report_json(directory: Path) -> dict[str, Any]:
    """report.json of a report directory as JSON, with `rows` a list; UserError when it is not one. The one
    reader of a published report: the exporters parse its rows as this version writes them, a comparison
    reads them leniently (indexer.report.compare), so reports of other versions still compare."""
    document = directory / "report.json"
    if not directory.is_dir():
        raise UserError(f"{directory} is not a report directory: no such directory")
    if not document.is_file():
        raise UserError(f"{directory} is not a report directory: it has no report.json (see `indexer run --out`)")
    try:
        data = json.loads(document.read_bytes())
        if not isinstance(data, dict) or not isinstance(data["rows"], list):
            raise TypeError("its rows are not a list")
    except (ValueError, TypeError, KeyError) as err:  # JSONDecodeError is a ValueError
        raise UserError(f"{document} is not a report: {_reason(err)}") from None
    return data


def read_published(directory: Path) -> Published:
    """The report in `directory`; UserError when it is not a report directory with at least one dense row."""
    data = read_report_json(directory)
    try:
        rows = parse_rows(data["rows"])
    except (ValueError, TypeError, ValidationError) as err:
        raise UserError(f"{directory / 'report.json'} is not a report: {_reason(err)}") from None
    dense = [r for r in rows if isinstance(r, DenseRow)]
    if not dense:
        raise UserError(f"{directory} has no dense rows: only approximate searches of vectors are exported")
    return Published(directory=directory, dense=dense, skipped=len(rows) - len(dense))


def _reason(err: Exception) -> str:
    if isinstance(err, ValidationError):
        first = err.errors()[0]
        return f"rows.{'.'.join(str(p) for p in first['loc'])}: {first['msg']}"
    if isinstance(err, KeyError):
        return f"no {err} field"
    return str(err)
