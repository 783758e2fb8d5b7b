"""The job store on SQLite and PostgreSQL: idempotent submit, paging, cancel, leases, fencing, atomic claims."""

from __future__ import annotations

import threading
import time
from collections import Counter
from datetime import timedelta

import pytest
import sqlalchemy as sa

from indexer.engine.spec import ExperimentSpec, parse_spec
from indexer.model.results import SparseRow
from indexer.service.store import Store
from indexer.service.views import IndexView, JobView


def bm25_row(ndcg: float) -> SparseRow:
    """A real result row (the store takes typed rows and hands them back typed)."""
    return SparseRow.model_validate({"dataset": "d", "index_size": 10, "k": 1, "build_seconds": 0.1, "qps": 1.0,
                                     "index_bytes": 10, "neighbors": None, "ndcg@10": ndcg,
                                     "mrr@10": float("nan"), "recall@100": 0.25})


INDEX_RECORD = {
    "id": "cell1", "dataset": "synthetic", "ordering": "random", "backend": "hnswlib",
    "params": {"M": 16, "ef_construction": 200}, "reduction": {"name": "none"}, "reduction_label": "none",
    "dims": 8, "input_dim": 8, "metric": "cosine", "model": None, "n": 100, "size_bytes": 1234,
    "path": "cache/cells/cell1", "space": "ip",
}


def make_spec(name: str = "tiny", **overrides: object) -> ExperimentSpec:
    data = {
        "name": name,
        "dataset": {"kind": "synthetic", "intrinsic_dims": [2], "points_per_subspace": 50,
                    "queries_per_subspace": 5, "ambient_dim": 8},
        "backends": [{"name": "exact"}],
        **overrides,
    }
    return parse_spec(data)


def test_migrations_run_on_empty_db_and_are_idempotent(db_url: str) -> None:
    s = Store(db_url)
    try:
        assert not s.ping()  # no schema yet
        s.migrate()
        s.migrate()
        assert s.ping()
        tables = set(sa.inspect(s.engine).get_table_names())
        assert {"experiments", "indexes", "alembic_version"} <= tables
    finally:
        s.close()


def test_concurrent_migrations_do_not_collide(db_url: str) -> None:
    """The API and a worker may start together; both run migrate() on an empty database."""
    stores = [Store(db_url) for _ in range(2)]
    errors: list[BaseException] = []
    barrier = threading.Barrier(len(stores))

    def migrate(s: Store) -> None:
        try:
            barrier.wait()
            s.migrate()
        except BaseException as err:  # surfaced below
            errors.append(err)

    threads = [threading.Thread(target=migrate, args=(s,)) for s in stores]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    try:
        assert not errors, errors
        assert all(s.ping() for s in stores)
    finally:
        for s in stores:
            s.close()


def test_models_match_migrations(store: Store) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from indexer.service.tables import metadata

    with store.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), metadata)
    assert diff == []


def test_submit_is_idempotent(store: Store) -> None:
    spec = make_spec()
    job, created = store.submit(spec)
    assert created and job.id == spec.key() and job.status == "queued" and job.attempts == 0
    again, created_again = store.submit(make_spec())
    assert not created_again and again.id == job.id and again.created_at == job.created_at
    assert store.list()[1] == 1
    assert job.created_at.tzinfo is not None


def test_resubmit_failed_or_cancelled_requeues(store: Store) -> None:
    spec = make_spec()
    store.submit(spec)
    job = store.claim("w", 30)
    assert job is not None
    assert store.fail(job.id, "w", job.attempts, "boom") == "failed"
    failed = store.get(job.id)
    assert failed is not None and failed.status == "failed" and failed.error == "boom"
    requeued, created = store.submit(spec)
    assert created and requeued.status == "queued" and requeued.error is None and requeued.attempts == 0
    assert store.cancel(job.id).status == "cancelled"  # type: ignore[union-attr]
    requeued, created = store.submit(spec)
    assert created and requeued.status == "queued" and not requeued.cancel_requested


def test_succeeded_spec_is_not_rerun(store: Store) -> None:
    spec = make_spec()
    store.submit(spec)
    job = store.claim("w", 30)
    assert job is not None
    assert store.finish(job.id, "w", job.attempts, [bm25_row(0.5)], "reports/x")
    done, created = store.submit(spec)
    assert not created and done.status == "succeeded"
    assert done.rows is not None and done.report_dir == "reports/x"
    assert [r.to_json() for r in done.rows] == [{**bm25_row(0.5).to_json(), "mrr@10": None}]  # NaN stored as null
    assert done.progress == 1.0 and done.finished_at is not None and done.worker_id is None


def test_list_paging_and_status_filter(store: Store) -> None:
    ids = [store.submit(make_spec(f"job-{i}"))[0].id for i in range(7)]
    claimed = store.claim("w", 30)
    assert claimed is not None and claimed.id == ids[0]  # the oldest queued job first

    page, total = store.list(limit=3)
    assert total == 7 and len(page) == 3
    assert [j.id for j in page] == list(reversed(ids))[:3]  # newest first
    assert all(j.rows is None for j in page)
    page2, _ = store.list(offset=3, limit=3)
    page3, _ = store.list(offset=6, limit=3)
    assert [j.id for j in page + page2 + page3] == list(reversed(ids))
    assert store.list(offset=10)[0] == []

    running, n_running = store.list(status="running")
    assert n_running == 1 and [j.id for j in running] == [ids[0]]
    queued, n_queued = store.list(status="queued", limit=2)
    assert n_queued == 6 and len(queued) == 2 and all(j.status == "queued" for j in queued)
    with pytest.raises(ValueError):
        store.list(status="nope")  # type: ignore[arg-type]


def test_cancel_queued_never_runs(store: Store) -> None:
    job, _ = store.submit(make_spec())
    cancelled = store.cancel(job.id)
    assert cancelled is not None and cancelled.status == "cancelled" and cancelled.finished_at is not None
    assert store.claim("w", 30) is None
    assert store.cancel("missing") is None


def test_cancel_running_is_requested_then_marked(store: Store) -> None:
    store.submit(make_spec())
    job = store.claim("w", 30)
    assert job is not None
    token = job.attempts
    assert store.heartbeat(job.id, "w", token, 0.25, "cell 1", 30)
    assert store.attempt_state(job.id, "w", token) == "owned"
    view = store.cancel(job.id)
    assert view is not None and view.status == "running" and view.cancel_requested
    assert store.attempt_state(job.id, "w", token) == "cancel_requested"  # the worker learns of it here
    assert store.heartbeat(job.id, "w", token, 0.5, "cell 2", 30)  # the lease holds while the child stops
    assert store.get(job.id).progress == 0.5  # type: ignore[union-attr]
    assert store.mark_cancelled(job.id, "w", token)
    final = store.get(job.id)
    assert final is not None and final.status == "cancelled" and final.worker_id is None
    assert store.cancel(job.id).status == "cancelled"  # type: ignore[union-attr]  # finished: unchanged


def test_only_the_owner_writes(store: Store) -> None:
    store.submit(make_spec())
    job = store.claim("w1", 30)
    assert job is not None
    token = job.attempts
    assert not store.heartbeat(job.id, "w2", token, 0.5, None, 30)
    assert store.attempt_state(job.id, "w2", token) == "lost"
    assert not store.finish(job.id, "w2", token, [], "r")
    assert store.fail(job.id, "w2", token, "x") is None
    assert not store.mark_cancelled(job.id, "w2", token)
    assert not store.release(job.id, "w2", token)
    assert store.get(job.id).status == "running"  # type: ignore[union-attr]


def test_expired_lease_is_reclaimed_then_given_up(store: Store) -> None:
    store.submit(make_spec(), max_attempts=2)
    first = store.claim("w1", 0.2)
    assert first is not None and first.attempts == 1
    assert store.claim("w2", 0.2) is None  # lease still held
    time.sleep(0.3)
    second = store.claim("w2", 0.2)
    assert second is not None and second.id == first.id and second.attempts == 2 and second.worker_id == "w2"
    assert not store.heartbeat(first.id, "w1", first.attempts, 0.9, None, 30)  # w1 learns it lost the job
    time.sleep(0.3)
    assert store.claim("w3", 0.2) is None
    failed = store.get(first.id)
    assert failed is not None and failed.status == "failed"
    assert failed.error == "gave up after 2 attempts: worker lost"
    assert failed.lease_expires_at is None and failed.worker_id is None


def test_lost_job_with_cancel_requested_is_cancelled(store: Store) -> None:
    store.submit(make_spec())
    job = store.claim("w1", 0.1)
    assert job is not None
    store.cancel(job.id)
    time.sleep(0.2)
    assert store.claim("w2", 30) is None
    assert store.get(job.id).status == "cancelled"  # type: ignore[union-attr]


def test_fail_with_retry_requeues_until_attempts_are_spent(store: Store) -> None:
    store.submit(make_spec(), max_attempts=2)
    job = store.claim("w", 30)
    assert job is not None
    assert store.fail(job.id, "w", job.attempts, "worker child died with signal 11 (SIGSEGV)",
                      retry=True) == "queued"
    queued = store.get(job.id)
    assert queued is not None and queued.status == "queued" and "SIGSEGV" in (queued.error or "")
    job = store.claim("w", 30)
    assert job is not None and job.attempts == 2
    assert store.fail(job.id, "w", job.attempts, "worker child died with signal 11 (SIGSEGV)",
                      retry=True) == "failed"
    assert store.get(job.id).error == (  # type: ignore[union-attr]
        "gave up after 2 attempts: worker child died with signal 11 (SIGSEGV)"
    )


def test_release_does_not_count_the_attempt(store: Store) -> None:
    store.submit(make_spec(), max_attempts=1)
    job = store.claim("w", 30)
    assert job is not None and job.attempts == 1
    assert store.release(job.id, "w", job.attempts)
    again = store.claim("w2", 30)
    assert again is not None and again.attempts == 1


def _expire_lease(store: Store, job_id: str) -> None:
    """As if the worker had not heartbeaten for a whole lease (paused, cut off)."""
    from indexer.service.tables import experiments, utcnow

    with store.engine.begin() as conn:
        conn.execute(experiments.update().where(experiments.c.id == job_id)
                     .values(lease_expires_at=utcnow() - timedelta(seconds=1)))


def test_a_stale_attempt_cannot_write(store: Store) -> None:
    """Fencing: the same worker id reclaims its own job, so only the token tells the attempts apart."""
    store.submit(make_spec())
    first = store.claim("w", 30)
    assert first is not None and first.attempts == 1
    _expire_lease(store, first.id)
    second = store.claim("w", 30)
    assert second is not None and second.id == first.id and second.attempts == 2
    stale = first.attempts
    assert not store.heartbeat(first.id, "w", stale, 0.9, "stale", 30)
    assert store.attempt_state(first.id, "w", stale) == "lost"
    assert not store.finish(first.id, "w", stale, [bm25_row(0.1)], "reports/stale", indexes=[INDEX_RECORD])
    assert store.fail(first.id, "w", stale, "stale error") is None
    assert store.fail(first.id, "w", stale, "stale error", retry=True) is None
    assert not store.mark_cancelled(first.id, "w", stale)
    assert not store.release(first.id, "w", stale)
    still = store.get(first.id)
    assert still is not None and still.status == "running" and still.attempts == 2
    assert still.message != "stale" and still.error is None and still.report_dir is None
    assert store.list_indexes() == []  # the stale finish published no index either

    assert store.heartbeat(first.id, "w", second.attempts, 0.5, "live", 30)
    assert store.finish(first.id, "w", second.attempts, [bm25_row(0.9)], "reports/live", indexes=[INDEX_RECORD])
    done = store.get(first.id)
    assert done is not None and done.status == "succeeded" and done.report_dir == "reports/live"
    assert done.rows == [bm25_row(0.9).model_copy(update={"mrr_at_10": None})] and [i.id for i in store.list_indexes()] == ["cell1"]
    assert not store.finish(first.id, "w", second.attempts, [], "reports/again")  # finished: nothing to own


def test_lease_expired_is_shown_at_read(store: Store) -> None:
    store.submit(make_spec())
    assert not store.list()[0][0].lease_expired  # queued: no lease
    job = store.claim("w", 30)
    assert job is not None and not job.lease_expired
    _expire_lease(store, job.id)
    assert store.get(job.id).lease_expired  # type: ignore[union-attr]
    assert store.list(status="running")[0][0].lease_expired
    assert store.heartbeat(job.id, "w", job.attempts, 0.5, None, 30)  # nobody reclaimed it: renewed
    assert not store.get(job.id).lease_expired  # type: ignore[union-attr]
    _expire_lease(store, job.id)
    assert store.fail(job.id, "w", job.attempts, "boom") == "failed"
    assert not store.get(job.id).lease_expired  # type: ignore[union-attr]  # only a running job's


def _race(store_url: str, claimers: int) -> list[str]:
    claimed: list[str] = []
    lock = threading.Lock()
    barrier = threading.Barrier(claimers)
    errors: list[BaseException] = []

    def claimer(name: str) -> None:
        s = Store(store_url)
        try:
            barrier.wait()
            while (job := s.claim(name, 60)) is not None:
                with lock:
                    claimed.append(job.id)
        except BaseException as err:  # surfaced below
            errors.append(err)
        finally:
            s.close()

    threads = [threading.Thread(target=claimer, args=(f"w{i}",)) for i in range(claimers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert not errors, errors
    assert not any(t.is_alive() for t in threads)
    return claimed


def test_concurrent_claimers_never_share_a_job(store: Store) -> None:
    ids = {store.submit(make_spec(f"job-{i}"))[0].id for i in range(20)}
    claimed = _race(store.url, claimers=4)
    counts = Counter(claimed)
    assert set(counts) == ids and max(counts.values()) == 1
    running, n = store.list(status="running", limit=100)
    assert n == 20 and {j.worker_id for j in running} <= {"w0", "w1", "w2", "w3"}


def test_indexes_upsert_by_id(store: Store) -> None:
    job, _ = store.submit(make_spec())
    record = INDEX_RECORD
    store.add_indexes(job.id, [record])
    store.add_indexes(job.id, [{**record, "size_bytes": 999}, {**record, "id": "cell2", "input_dim": 16}])
    views = store.list_indexes()
    assert sorted(v.id for v in views) == ["cell1", "cell2"]
    one = store.get_index("cell1")
    assert isinstance(one, IndexView)
    assert one.size_bytes == 999 and one.reduction == "none" and one.dim == 8 and one.meta["space"] == "ip"
    assert store.get_index("cell2").dim == 16  # type: ignore[union-attr]
    assert store.get_index("nope") is None


def test_views_are_frozen(store: Store) -> None:
    job, _ = store.submit(make_spec())
    assert isinstance(job, JobView)
    with pytest.raises(Exception):  # noqa: B017 - pydantic's frozen-instance error
        job.status = "failed"  # type: ignore[misc]
    assert JobView.model_validate_json(job.model_dump_json()) == job
