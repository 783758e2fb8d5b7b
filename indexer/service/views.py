"""What the store hands out: a job and a built index as the API and the CLI see them, read from table rows."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict

from indexer.common.jsonvalues import plain
from indexer.engine.spec import ExperimentSpec, SpecError, parse_spec
from indexer.model.results import BuildParam, IndexRecord, ResultRow, parse_rows
from indexer.service.tables import JobStatus, utcnow


class JobView(BaseModel):
    """One experiment job as the API and CLI see it. `report_dir` is relative to data_dir."""

    model_config = ConfigDict(frozen=True)

    id: str
    name: str
    spec: ExperimentSpec | None  # validated when it was submitted, read back typed; None: see spec_problem
    # why this version cannot read a spec an older one accepted (its error, as `indexer run` gives it); the
    # worker fails such a job at once, as a retry would fail alike
    spec_problem: str | None = None
    status: JobStatus
    progress: float
    message: str | None
    error: str | None
    attempts: int
    max_attempts: int
    worker_id: str | None
    lease_expires_at: datetime | None
    cancel_requested: bool
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    report_dir: str | None
    # The published result rows (stored as indexer.model.results.rows_to_json, read back typed): what the API
    # serves. None in `Store.list` pages (kept small); set by `get` once succeeded.
    rows: list[ResultRow] | None
    lease_expired: bool = False  # running, but nobody renewed the lease in time: computed at read


class IndexSummary(BaseModel):
    """What a built index (a grid cell) is, as the API lists it."""

    model_config = ConfigDict(frozen=True)

    id: str
    experiment_id: str
    dataset: str
    ordering: str
    backend: str
    params: dict[str, BuildParam]
    reduction: str
    dims: int
    metric: str
    model: str | None
    n: int
    dim: int
    size_bytes: int


class IndexView(IndexSummary):
    """One built index with where it lives: `path` is relative to data_dir; `meta` is the runner's full
    record (indexer.model.results.IndexRecord as JSON)."""

    path: str
    meta: IndexRecord
    created_at: datetime


def to_json(value: Any) -> Any:
    """Plain JSON for the database (indexer.common.jsonvalues.plain, strict): NaN/inf -> null, which
    PostgreSQL needs, and an error for anything with no JSON form."""
    return plain(value, strict=True)


def _lease_expired(status: str, lease_expires_at: datetime | None) -> bool:
    """A running job whose worker stopped renewing its lease (it may yet be reclaimed): not healthy."""
    return status == "running" and lease_expires_at is not None and lease_expires_at < utcnow()


def _read_spec(data: Any) -> tuple[ExperimentSpec | None, str | None]:
    """A stored spec, typed; or None and why this version refuses it."""
    try:
        return parse_spec(data), None
    except SpecError as err:
        return None, str(err)


def job_view(row: Any, with_rows: bool = True) -> JobView:
    m = row._mapping
    spec, problem = _read_spec(m["spec"])
    return JobView(
        id=m["id"], name=m["name"], spec=spec, spec_problem=problem, status=m["status"], progress=m["progress"],
        message=m["message"], error=m["error"], attempts=m["attempts"], max_attempts=m["max_attempts"],
        worker_id=m["worker_id"], lease_expires_at=m["lease_expires_at"],
        cancel_requested=bool(m["cancel_requested"]), created_at=m["created_at"], updated_at=m["updated_at"],
        started_at=m["started_at"], finished_at=m["finished_at"], report_dir=m["report_dir"],
        rows=parse_rows(m["rows"]) if with_rows and m["rows"] is not None else None,
        lease_expired=_lease_expired(m["status"], m["lease_expires_at"]),
    )


def index_view(row: Any) -> IndexView:
    return IndexView.model_validate(dict(row._mapping))


def index_record(record: IndexRecord | Mapping[str, Any]) -> IndexRecord:
    """An index record as the store takes it: typed, or its JSON (validated here)."""
    return record if isinstance(record, IndexRecord) else IndexRecord.model_validate(record)
