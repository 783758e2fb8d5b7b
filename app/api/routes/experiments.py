"""Experiments: submit a spec as a job, follow it, cancel it, fetch its report.

The API only queues work; the worker runs it through the engine's one run path. The job id is the
spec's content key, so an identical spec maps to the same job and is never run twice.
"""

from __future__ import annotations

import logging
import stat
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Response, status
from fastapi.responses import FileResponse, JSONResponse

from app.api.deps import SettingsDep, StoreDep
from app.api.errors import error_responses
from app.schemas import (
    MAX_NAME_FILTER_CHARS,
    MAX_OFFSET,
    MAX_PAGE,
    ComparisonOut,
    ExperimentCreated,
    ExperimentOut,
    ExperimentPage,
    JobStatus,
    ReportFormat,
    plausible_id,
)
from app.spec_check import api_refusals
from indexer.engine.admission import admit
from indexer.engine.spec import ExperimentSpec, clip
from indexer.model.results import rows_to_json
from indexer.report.compare import PublishedRun, compare_runs, published_run
from indexer.service.tables import FINISHED
from indexer.settings import Settings

log = logging.getLogger(__name__)

router = APIRouter(prefix="/experiments", tags=["experiments"], responses=error_responses(401, 503))

# A comparison's work: matched cells x queries x bootstrap resamples, about 1.2e8 draws a second on one core
# here, so at most about 3.5 s (every example study is below it; `indexer compare` has no limit).
MAX_COMPARE_DRAWS = 400_000_000

MEDIA_TYPES: dict[str, str] = {
    "json": "application/json",
    "csv": "text/csv; charset=utf-8",
    "md": "text/markdown; charset=utf-8",
    "html": "text/html; charset=utf-8",
}


def report_dir(settings: Settings, job: Any) -> Path | None:
    """The job's report directory, from the store (never from the request), confined to data_dir."""
    base = settings.data_dir.resolve()
    stored = getattr(job, "report_dir", None)
    candidate = (base / stored if stored else base / "reports" / job.id).resolve()
    if not candidate.is_relative_to(base):
        log.warning("report dir %s of job %s lies outside the data dir; not served", candidate, job.id)
        return None
    return candidate


def report_formats(settings: Settings, job: Any) -> list[ReportFormat]:
    if job.status != "succeeded":
        return []
    folder = report_dir(settings, job)
    if folder is None:
        return []
    return [fmt for fmt in ("json", "csv", "md", "html") if (folder / f"report.{fmt}").is_file()]


def to_out(settings: Settings, job: Any) -> ExperimentOut:
    return ExperimentOut(
        id=job.id, name=job.name, status=job.status,
        progress=min(1.0, max(0.0, float(job.progress or 0.0))),
        message=job.message, error=job.error, attempts=job.attempts, lease_expired=job.lease_expired,
        created_at=job.created_at, updated_at=job.updated_at,
        spec=job.spec, rows=job.rows, report_formats=report_formats(settings, job),
    )


def _get_or_404(store: Any, experiment_id: str) -> Any:
    job = store.get(experiment_id) if plausible_id(experiment_id) else None
    if job is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no experiment with id {experiment_id!r}")
    return job


@router.post(
    "",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=ExperimentCreated,
    responses={
        200: {"model": ExperimentCreated, "description": "An identical spec is already queued, running or "
              "succeeded: its job, with its current status, is returned and nothing new is queued"},
        **error_responses(413, 422),
    },
)
def submit_experiment(
    spec: ExperimentSpec, store: StoreDep, settings: SettingsDep, response: Response
) -> ExperimentCreated:
    """Queue a spec. The job id is the spec's content key, so an identical spec is never run twice:
    202 when work was queued (a new spec, or one whose earlier job failed or was cancelled, which is
    requeued); 200 with the existing job and its status when it is queued, running or succeeded.

    `file` and `beir` datasets, a `runbook_file` given by path (its `text` is accepted), and models other
    than the packaged and derived ones, are refused (422): no file path from a request is ever opened. So is a spec whose estimated size exceeds the
    server's limits (cells, base vectors x dims, queries, clusters, texts to embed, the estimated total work in
    core-hours and the largest index's bytes; the 422 gives the estimate), or whose
    parameters cannot fit its data (a reduction to more dimensions than the input has, k over n).
    """
    refusals = api_refusals(spec)
    if refusals:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, refusals[0].message)
    admit(spec, settings.limits())  # AdmissionError: 422 naming the limit and the estimate
    job, created = store.submit(spec)
    log.info("experiment %s %s (%s)", job.id, "queued" if created else "already known", job.status)
    response.status_code = status.HTTP_202_ACCEPTED if created else status.HTTP_200_OK
    response.headers["Location"] = f"/experiments/{job.id}"
    return ExperimentCreated(id=job.id, status=job.status, created=created)


@router.get("", response_model=ExperimentPage, responses=error_responses(422))
def list_experiments(
    store: StoreDep,
    settings: SettingsDep,
    status_filter: Annotated[JobStatus | None, Query(alias="status")] = None,
    name: Annotated[str | None, Query(max_length=MAX_NAME_FILTER_CHARS,
                                      description="only names that contain this, ignoring case")] = None,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 50,
) -> ExperimentPage:
    """Newest first, optionally only one status and names containing a text."""
    jobs, total = store.list(status=status_filter, name=name, offset=offset, limit=limit)
    return ExperimentPage(items=[to_out(settings, j) for j in jobs], total=total, offset=offset, limit=limit)


@router.get("/{experiment_id}", response_model=ExperimentOut, responses=error_responses(404))
def get_experiment(experiment_id: str, store: StoreDep, settings: SettingsDep) -> ExperimentOut:
    """Status, progress in 0..1, the error when failed, the result rows when done."""
    return to_out(settings, _get_or_404(store, experiment_id))


@router.post("/{experiment_id}/cancel", response_model=ExperimentOut, responses=error_responses(404, 409))
def cancel_experiment(experiment_id: str, store: StoreDep, settings: SettingsDep) -> ExperimentOut:
    """A queued job never runs; a running one is stopped within seconds (its worker ends the child
    process); a finished one (succeeded, failed or cancelled) cannot be cancelled: 409."""
    job = _get_or_404(store, experiment_id)
    if job.status in FINISHED:
        raise HTTPException(status.HTTP_409_CONFLICT, f"experiment {job.id} is already {job.status}")
    job = store.cancel(experiment_id)
    if job is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no experiment with id {experiment_id!r}")
    return to_out(settings, job)


@router.get(
    "/{experiment_id}/report",
    response_class=Response,
    responses={
        200: {"description": "The report file",
              "content": {media.split(";")[0]: {} for media in MEDIA_TYPES.values()}},
        **error_responses(404, 422),
    },
)
def get_report(
    experiment_id: str,
    store: StoreDep,
    settings: SettingsDep,
    format: Annotated[ReportFormat, Query()] = "html",
) -> Response:
    """The report in one format; 404 until the experiment has succeeded and its report is written."""
    job = _get_or_404(store, experiment_id)
    if job.status != "succeeded":
        return JSONResponse(
            status_code=status.HTTP_404_NOT_FOUND,
            content={"detail": f"experiment {job.id} has no report: its status is {job.status}"},
        )
    folder = report_dir(settings, job)
    path = folder / f"report.{format}" if folder is not None else None
    if path is None or not path.is_file():
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"experiment {job.id} has no {format} report")
    headers = {"X-Content-Type-Options": "nosniff"}
    if format == "html":
        # the report has no scripts (inline CSS and SVG, in-page links only): a sandbox without
        # allow-scripts keeps it so, and its opaque origin keeps it apart from the API's
        headers["Content-Security-Policy"] = "sandbox"
    return FileResponse(path, media_type=MEDIA_TYPES[format], headers=headers)


@router.get(
    "/{experiment_id}/neighbors/{name}",
    response_class=Response,
    responses={200: {"description": "One neighbour array (NumPy .npy): row i holds query i's ids, -1 "
                     "where fewer than k were found", "content": {"application/octet-stream": {}}},
               **error_responses(404)},
)
def get_neighbors(experiment_id: str, name: str, store: StoreDep, settings: SettingsDep) -> Response:
    """A neighbour file a result row names (`neighbors/<name>`, relative to the report)."""
    job = _get_or_404(store, experiment_id)
    folder = report_dir(settings, job) if job.status == "succeeded" else None
    plain = name.endswith(".npy") and "/" not in name and "\\" not in name and not name.startswith(".")
    path = _neighbour_file(folder, name) if folder is not None and plain else None
    if path is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"experiment {job.id} has no neighbour file {clip(name)!r}")
    return FileResponse(path, media_type="application/octet-stream", filename=name,
                        headers={"X-Content-Type-Options": "nosniff"})


def _neighbour_file(folder: Path, name: str) -> Path | None:
    """`neighbors/<name>` in the report folder if it is a regular file, not a symbolic link (the engine
    writes none), that resolves inside the folder; None for anything else, including a name the file
    system refuses (over 255 bytes: ENAMETOOLONG) or a NUL character (ValueError)."""
    path = folder / "neighbors" / name
    try:
        if not stat.S_ISREG(path.lstat().st_mode):
            return None
        resolved = path.resolve(strict=True)
    except (OSError, ValueError):
        return None
    return resolved if resolved.is_relative_to(folder) else None


@router.get(
    "/{experiment_id}/compare/{other_id}",
    response_model=ComparisonOut,
    responses=error_responses(404, 409, 422),
)
def compare_experiments(
    experiment_id: str,
    other_id: str,
    store: StoreDep,
    settings: SettingsDep,
    min_recall_drop: Annotated[float, Query(ge=0.0, le=1.0, allow_inf_nan=False, description=(
        "count a cell as worse only when its mean recall drops by at least this much (and significantly)"))] = 0.0,
) -> ComparisonOut:
    """Experiment `other_id` (B) against `experiment_id` (A), as `indexer compare` does: dense cells matched on
    dataset, model, metric, k, index size, reduction, ordering, backend, build parameters, ef and seed; per
    cell the mean recall of each, the mean over queries of B - A with its 95% percentile bootstrap interval
    (2,000 resamples of the queries, seed 0) and QPS B / A.

    404 for an unknown id; 409 unless both have succeeded; 422 when they cannot be compared (different
    datasets or query counts, no matching cell). Bounded: each per-query array holds at most the server's
    max_queries values (read from the file's header first), and matched cells x queries x resamples at most
    400,000,000 draws (422 past it; about 3.5 s of one core)."""
    jobs = [_get_or_404(store, experiment_id), _get_or_404(store, other_id)]  # both known before any 409
    runs = [_published(settings, job) for job in jobs]
    comparison = compare_runs(runs[0], runs[1], min_recall_drop=min_recall_drop,
                              max_queries=settings.max_queries, max_draws=MAX_COMPARE_DRAWS)
    return ComparisonOut.model_validate(comparison.model_dump())


def _published(settings: Settings, job: Any) -> PublishedRun:
    """A succeeded job's published rows and report directory (409 otherwise)."""
    if job.status != "succeeded":
        raise HTTPException(status.HTTP_409_CONFLICT,
                            f"experiment {job.id} is {job.status}: only succeeded experiments can be compared")
    folder = report_dir(settings, job)
    if folder is None or job.rows is None or not folder.is_dir():
        raise HTTPException(status.HTTP_409_CONFLICT, f"experiment {job.id} has no report to compare")
    spec = job.spec.model_dump(mode="json") if job.spec is not None else None
    return published_run(job.id, folder, spec, rows_to_json(job.rows))
