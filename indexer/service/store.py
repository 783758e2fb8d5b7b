"""The durable job store: experiments (jobs and their results) and built indexes, in one SQL database.

SQLite (a file in data_dir, the default) and PostgreSQL (by URL) behave the same. A job is a row with a
lease: a worker claims it (attempts + 1, lease_expires_at = now + lease), heartbeats to extend the lease
while it works, and finishes, fails or cancels it. A worker that dies stops heartbeating, so its lease
expires and another worker reclaims the job, until `max_attempts` is spent and the job is failed.

Fencing: a worker that only seems dead (paused, stalled, cut off from the database) may wake up after its
job was reclaimed. So each claim hands out a token, the job's `attempts` after the claim, and every write
of an attempt (heartbeat and progress, finish, fail, mark_cancelled, release) names it: the UPDATE only
matches while the row is still that attempt's (same id, worker_id and token, status running). A stale
attempt's writes match nothing and return False/None; it must stop and publish nothing. `finish` is the
one way to publish: rows, report directory and index records in one fenced transaction. `release` gives
the attempt back uncounted, so a token can recur after it, but only once its holder has let go.

A user's cancel of a running job only sets `cancel_requested`; the worker reads it with `attempt_state`
(a cheap read, about every second) and stops its child. Reads report `lease_expired` for a running job
whose lease ran out: its worker is gone or stalled, and nothing has reclaimed the job yet.

Claims are atomic: PostgreSQL takes the row with SELECT ... FOR UPDATE SKIP LOCKED; SQLite serializes
writers with BEGIN IMMEDIATE (one writer at a time, WAL so readers never wait). Timestamps come from the
python clock in UTC (workers on several hosts need synchronized clocks); they are stored as UTC
(timestamptz on PostgreSQL, naive UTC text on SQLite) and always returned timezone-aware.
"""

from __future__ import annotations

import builtins
import contextlib
import logging
import math
import threading
from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, Literal

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from indexer.engine.spec import ExperimentSpec
from indexer.model.results import IndexRecord, ResultModel, rows_to_json
from indexer.service.database import alembic_config, make_engine
from indexer.service.tables import STATUSES, JobStatus, experiments, indexes, utcnow
from indexer.service.views import IndexView, JobView, index_record, index_view, job_view, to_json

log = logging.getLogger(__name__)

AttemptState = Literal["owned", "cancel_requested", "lost"]
_MIGRATING = threading.Lock()
_PG_MIGRATION_LOCK = 7_461_023_115  # pg_advisory_xact_lock key: one migrator at a time


def _index_values(experiment_id: str, record: IndexRecord, now: datetime) -> dict[str, Any]:
    """Table columns from a runner record; the whole record is kept in `meta`."""
    if record.path is None:
        raise ValueError(f"index record {record.id} has no path: the store needs where the cell lives")
    return {
        "id": record.id,
        "experiment_id": experiment_id,
        "dataset": record.dataset,
        "ordering": record.ordering,
        "backend": record.backend,
        "params": to_json(record.params),
        "reduction": record.reduction_label,
        "dims": record.dims,
        "metric": record.metric,
        "model": record.model,
        "n": record.n,
        "dim": record.query_dim,
        "size_bytes": record.size_bytes,
        "path": record.path,
        "meta": to_json(record.to_json()),
        "created_at": now,
    }


class Store:
    """Jobs and indexes in SQLite or PostgreSQL. Thread-safe; each process makes its own Store."""

    def __init__(self, url: str, *, max_attempts: int = 3) -> None:
        self.url = url
        self.max_attempts = max_attempts
        self.engine = make_engine(url)
        self.dialect = self.engine.dialect.name
        self._writer = self.engine.execution_options(sqlite_immediate=True)

    def close(self) -> None:
        self.engine.dispose()

    @contextlib.contextmanager
    def _write(self) -> Iterator[Connection]:
        with self._writer.begin() as conn:
            yield conn

    @contextlib.contextmanager
    def _read(self) -> Iterator[Connection]:
        with self.engine.begin() as conn:
            yield conn

    # -- schema -------------------------------------------------------------------------------------

    def migrate(self) -> None:
        """Bring the schema to the latest revision (`alembic upgrade head`); safe to run concurrently."""
        from alembic import command

        # alembic's `context` is process-global: two threads migrating at once (an app and a worker
        # embedded in one process, or a test) would share it; across processes the database locks
        with _MIGRATING, self._write() as conn:
            if self.dialect == "postgresql":
                conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_MIGRATION_LOCK})
            command.upgrade(alembic_config(connection=conn), "head")

    def ping(self) -> bool:
        """True when the database answers and the schema is migrated."""
        try:
            with self._read() as conn:
                conn.execute(sa.select(sa.func.count()).select_from(experiments).where(sa.false()))
            return True
        except sa.exc.SQLAlchemyError:
            return False

    # -- jobs ---------------------------------------------------------------------------------------

    def submit(self, spec: ExperimentSpec, *, max_attempts: int | None = None) -> tuple[JobView, bool]:
        """Queue the spec as a job whose id is `spec.key()`; idempotent.

        Returns (job, created). A new spec is inserted (created=True). A spec already queued, running or
        succeeded returns that job untouched (created=False): the same spec means the same work. A spec
        whose job failed or was cancelled is requeued in place (attempts reset, error cleared, old rows
        kept until it succeeds again) and also returns created=True, since new work was queued.
        """
        job_id = spec.key()
        now = utcnow()
        attempts = max_attempts or self.max_attempts
        for _ in range(2):  # a concurrent insert of the same id on PostgreSQL: read it back
            try:
                with self._write() as conn:
                    row = conn.execute(
                        sa.select(experiments).where(experiments.c.id == job_id).with_for_update()
                    ).first()
                    if row is None:
                        conn.execute(experiments.insert().values(
                            id=job_id, name=spec.name, spec=spec.model_dump(mode="json"), status="queued",
                            progress=0.0, attempts=0, max_attempts=attempts, cancel_requested=False,
                            created_at=now, updated_at=now, queued_at=now,
                        ))
                        created = True
                    elif row.status in ("failed", "cancelled"):
                        conn.execute(experiments.update().where(experiments.c.id == job_id).values(
                            status="queued", progress=0.0, message="requeued", error=None, attempts=0,
                            max_attempts=attempts, worker_id=None, lease_expires_at=None,
                            cancel_requested=False, updated_at=now, queued_at=now, started_at=None,
                            finished_at=None,
                        ))
                        created = True
                    else:
                        created = False
                    job = self._get(conn, job_id)
                    assert job is not None
                    return job, created
            except sa.exc.IntegrityError:
                continue
        raise RuntimeError(f"could not submit job {job_id}")

    def get(self, job_id: str) -> JobView | None:
        with self._read() as conn:
            return self._get(conn, job_id)

    def _get(self, conn: Connection, job_id: str) -> JobView | None:
        row = conn.execute(sa.select(experiments).where(experiments.c.id == job_id)).first()
        return job_view(row) if row is not None else None

    def list(
        self, status: JobStatus | None = None, offset: int = 0, limit: int = 50, name: str | None = None
    ) -> tuple[builtins.list[JobView], int]:
        """A page of jobs, newest first, and the total matching. Pages leave `rows` out (None).

        `name` keeps the jobs whose name contains it, ignoring case (its `%` and `_` match themselves)."""
        if status is not None and status not in STATUSES:
            raise ValueError(f"unknown status {status!r}; one of {', '.join(STATUSES)}")
        where = [experiments.c.status == status] if status else []
        if name:
            where.append(sa.func.lower(experiments.c.name).contains(name.lower(), autoescape=True))
        columns = [c for c in experiments.c if c.name != "rows"]
        with self._read() as conn:
            total = conn.execute(sa.select(sa.func.count()).select_from(experiments).where(*where)).scalar_one()
            rows = conn.execute(
                sa.select(*columns, sa.null().label("rows")).where(*where)
                .order_by(experiments.c.created_at.desc(), experiments.c.id)
                .offset(max(offset, 0)).limit(max(limit, 0))
            ).all()
        return [job_view(r, with_rows=False) for r in rows], int(total)

    def cancel(self, job_id: str) -> JobView | None:
        """Queued: cancelled at once, never runs. Running: cancel_requested; its worker notices within
        about a second and stops the child. Finished: unchanged. None when there is no such job."""
        now = utcnow()
        c = experiments.c
        with self._write() as conn:
            # Each UPDATE re-checks the status, so a concurrent claim cannot slip between them.
            done = conn.execute(experiments.update().where(c.id == job_id, c.status == "queued").values(
                status="cancelled", message="cancelled before it ran", updated_at=now, finished_at=now,
                cancel_requested=True,
            )).rowcount
            if not done:
                conn.execute(experiments.update().where(c.id == job_id, c.status == "running").values(
                    cancel_requested=True, message="cancel requested", updated_at=now,
                ))
            return self._get(conn, job_id)

    def claim(self, worker_id: str, lease_seconds: float) -> JobView | None:
        """Take the oldest queued job, or a running one whose lease expired (its worker is gone).

        The returned job's `attempts` is the attempt's fencing token: pass it to every later write.
        Attempts count claims. A lost job whose attempts are spent is failed ("gave up after N attempts:
        worker lost") and one whose cancel was requested is cancelled, instead of being returned.
        """
        c = experiments.c
        with self._write() as conn:
            while True:
                now = utcnow()
                row = conn.execute(
                    sa.select(c.id, c.status, c.attempts, c.max_attempts, c.cancel_requested, c.error,
                              c.worker_id)
                    .where(sa.or_(c.status == "queued",
                                  sa.and_(c.status == "running", c.lease_expires_at < now)))
                    .order_by(c.queued_at, c.id)
                    .limit(1)
                    .with_for_update(skip_locked=True)
                ).first()
                if row is None:
                    return None
                lost = row.status == "running"
                this = experiments.update().where(c.id == row.id)
                if lost and row.cancel_requested:
                    conn.execute(this.values(
                        status="cancelled", message="cancelled (its worker was lost)", worker_id=None,
                        lease_expires_at=None, updated_at=now, finished_at=now,
                    ))
                    continue
                if row.attempts + 1 > row.max_attempts:
                    reason = "worker lost" if lost else (row.error or "no attempts left")
                    conn.execute(this.values(
                        status="failed", error=f"gave up after {row.attempts} attempts: {reason}",
                        message=None, worker_id=None, lease_expires_at=None, updated_at=now, finished_at=now,
                    ))
                    log.warning("job %s failed: gave up after %d attempts", row.id, row.attempts)
                    continue
                if lost:
                    log.warning("reclaiming job %s from lost worker %s", row.id, row.worker_id)
                conn.execute(this.values(
                    status="running", attempts=row.attempts + 1, worker_id=worker_id,
                    lease_expires_at=now + timedelta(seconds=lease_seconds), updated_at=now, started_at=now,
                    finished_at=None,
                    message=f"reclaimed from lost worker {row.worker_id}" if lost else "started",
                ))
                job = self._get(conn, row.id)
                assert job is not None
                return job

    def _owned(self, job_id: str, worker_id: str, token: int) -> sa.ColumnElement[bool]:
        """The row while it is still this attempt's: a reclaim changes worker_id or attempts, an end the
        status, so a stale attempt's writes match nothing."""
        c = experiments.c
        return sa.and_(c.id == job_id, c.worker_id == worker_id, c.attempts == token, c.status == "running")

    def heartbeat(
        self, job_id: str, worker_id: str, token: int, progress: float, message: str | None,
        lease_seconds: float,
    ) -> bool:
        """Extend the attempt's lease and record its progress. False when the attempt is no longer the
        job's (its lease expired and another worker took the job, or the job ended): stop at once."""
        now = utcnow()
        progress = min(max(float(progress), 0.0), 1.0) if math.isfinite(progress) else 0.0
        with self._write() as conn:
            return bool(conn.execute(experiments.update().where(self._owned(job_id, worker_id, token)).values(
                progress=progress, message=message, updated_at=now,
                lease_expires_at=now + timedelta(seconds=lease_seconds),
            )).rowcount)

    def attempt_state(self, job_id: str, worker_id: str, token: int) -> AttemptState:
        """What a running attempt should do, from one read (no write lock, so it can be asked every
        second): "owned" (carry on), "cancel_requested" (stop) or "lost" (stop and publish nothing)."""
        c = experiments.c
        with self._read() as conn:
            cancel = conn.execute(
                sa.select(c.cancel_requested).where(self._owned(job_id, worker_id, token))
            ).scalar_one_or_none()
        if cancel is None:
            return "lost"
        return "cancel_requested" if cancel else "owned"

    def finish(
        self, job_id: str, worker_id: str, token: int, rows: Sequence[ResultModel],
        report_dir: str, *, indexes: Sequence[IndexRecord | Mapping[str, Any]] = (),
    ) -> bool:
        """Publish the attempt's result: the job succeeds with its rows and report directory, and its
        index records are stored, in one transaction. False (nothing written) if the attempt is stale."""
        now = utcnow()
        with self._write() as conn:
            done = conn.execute(experiments.update().where(self._owned(job_id, worker_id, token)).values(
                status="succeeded", progress=1.0, message="done", error=None, rows=to_json(rows_to_json(rows)),
                report_dir=str(report_dir), worker_id=None, lease_expires_at=None, updated_at=now,
                finished_at=now,
            )).rowcount
            if done:
                self._upsert_indexes(conn, job_id, indexes, now)
            return bool(done)

    def fail(
        self, job_id: str, worker_id: str, token: int, error: str, *, retry: bool = False
    ) -> JobStatus | None:
        """Fail the job with `error`. With retry=True and attempts left, requeue it instead (the error is
        kept as the last one). Returns the new status, or None if the attempt is stale."""
        now = utcnow()
        c = experiments.c
        owned = self._owned(job_id, worker_id, token)
        with self._write() as conn:
            row = conn.execute(sa.select(c.attempts, c.max_attempts).where(owned).with_for_update()).first()
            if row is None:
                return None
            this = experiments.update().where(owned)
            if retry and row.attempts < row.max_attempts:
                conn.execute(this.values(
                    status="queued", error=error, message=f"retrying after attempt {row.attempts}",
                    worker_id=None, lease_expires_at=None, updated_at=now, queued_at=now,
                ))
                return "queued"
            if retry and row.attempts > 1:
                error = f"gave up after {row.attempts} attempts: {error}"
            conn.execute(this.values(
                status="failed", error=error, message=None, worker_id=None, lease_expires_at=None,
                updated_at=now, finished_at=now,
            ))
            return "failed"

    def mark_cancelled(self, job_id: str, worker_id: str, token: int) -> bool:
        """The attempt stopped on a user's cancel. False if the attempt is stale."""
        now = utcnow()
        with self._write() as conn:
            return bool(conn.execute(experiments.update().where(self._owned(job_id, worker_id, token)).values(
                status="cancelled", message="cancelled", worker_id=None, lease_expires_at=None,
                updated_at=now, finished_at=now,
            )).rowcount)

    def release(self, job_id: str, worker_id: str, token: int) -> bool:
        """Give a running job back to the queue (the worker is shutting down); the attempt is not counted.
        False if the attempt is stale."""
        now = utcnow()
        c = experiments.c
        with self._write() as conn:
            return bool(conn.execute(experiments.update().where(self._owned(job_id, worker_id, token)).values(
                status="queued", attempts=sa.case((c.attempts > 0, c.attempts - 1), else_=0),
                message="released by a stopping worker", worker_id=None, lease_expires_at=None,
                updated_at=now, queued_at=now,
            )).rowcount)

    # -- indexes ------------------------------------------------------------------------------------

    def add_indexes(self, experiment_id: str, records: Sequence[IndexRecord | Mapping[str, Any]]) -> None:
        """Insert or replace index records by id (the cell key); a rebuilt cell keeps one row."""
        if not records:
            return
        with self._write() as conn:
            self._upsert_indexes(conn, experiment_id, records, utcnow())

    def _upsert_indexes(
        self, conn: Connection, experiment_id: str, records: Sequence[IndexRecord | Mapping[str, Any]],
        now: datetime,
    ) -> None:
        if not records:
            return
        values = [_index_values(experiment_id, index_record(r), now) for r in records]
        if self.dialect == "postgresql":
            from sqlalchemy.dialects.postgresql import insert
        else:
            from sqlalchemy.dialects.sqlite import insert  # type: ignore[assignment]
        stmt = insert(indexes).values(values)
        stmt = stmt.on_conflict_do_update(
            index_elements=[indexes.c.id],
            set_={k: stmt.excluded[k] for k in values[0] if k != "id"},
        )
        conn.execute(stmt)

    def list_indexes(self) -> builtins.list[IndexView]:
        with self._read() as conn:
            rows = conn.execute(sa.select(indexes).order_by(indexes.c.created_at.desc(), indexes.c.id)).all()
        return [index_view(r) for r in rows]

    def page_indexes(self, offset: int = 0, limit: int = 50,
                     experiment_id: str | None = None) -> tuple[builtins.list[IndexView], int]:
        """A page of indexes (only one experiment's, if given), newest first, and how many there are in all."""
        where = [indexes.c.experiment_id == experiment_id] if experiment_id is not None else []
        with self._read() as conn:
            total = conn.execute(sa.select(sa.func.count()).select_from(indexes).where(*where)).scalar_one()
            rows = conn.execute(
                sa.select(indexes).where(*where).order_by(indexes.c.created_at.desc(), indexes.c.id)
                .offset(max(offset, 0)).limit(max(limit, 0))
            ).all()
        return [index_view(r) for r in rows], int(total)

    def index_models(self) -> builtins.list[str]:
        """The embedding models of the text indexes (distinct), e.g. to load them at server start."""
        with self._read() as conn:
            got = conn.execute(sa.select(indexes.c.model).where(indexes.c.model.is_not(None)).distinct()).all()
        return sorted(str(r.model) for r in got)

    def get_index(self, index_id: str) -> IndexView | None:
        with self._read() as conn:
            row = conn.execute(sa.select(indexes).where(indexes.c.id == index_id)).first()
        return index_view(row) if row is not None else None
