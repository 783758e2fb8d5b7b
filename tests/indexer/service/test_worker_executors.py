"""The service's worker on the executors: a job's cells run where INDEXER_EXECUTOR says, and a cancelled
job stops its running Ray tasks, not only its pending ones."""

from __future__ import annotations

import time

import pytest

from indexer.engine.spec import parse_spec
from indexer.service.job_child import execute_job
from indexer.service.store import Store
from indexer.settings import Settings
from tests.indexer.engine.test_executors import slow_spec
from tests.indexer.service.test_worker import ThreadedWorker, _job, wait_for

ray = pytest.importorskip("ray")


@pytest.fixture(scope="module")
def cluster():
    """A Ray of this test module's own (2 CPUs), which the job's child process joins by its address, as a
    worker joins a cluster named by INDEXER_RAY_ADDRESS."""
    context = ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield context.address_info["gcs_address"]
    ray.shutdown()


def test_a_job_runs_on_ray_and_its_cancel_kills_the_running_tasks(store: Store, settings: Settings, cluster: str,
                                                                  monkeypatch) -> None:
    monkeypatch.setenv("INDEXER_EXECUTOR", "ray")  # the job's child reads its settings from the environment
    monkeypatch.setenv("INDEXER_RAY_ADDRESS", cluster)
    monkeypatch.setenv("INDEXER_WORKERS", "2")
    job, _ = store.submit(parse_spec(slow_spec()))
    worker = ThreadedWorker(settings, execute_job)
    try:
        # both cells are running once the cluster's two CPUs are taken
        wait_for(lambda: ray.available_resources().get("CPU", 0) == 0, timeout=120, what="two running tasks")
        time.sleep(1.0)
        cancelled_at = time.monotonic()
        store.cancel(job.id)
        wait_for(lambda: _job(store, job.id).status == "cancelled", timeout=30, what="cancelled")
        wait_for(lambda: ray.available_resources().get("CPU", 0) == 2, timeout=30, what="the tasks' CPUs back")
        assert time.monotonic() - cancelled_at < 30  # the builds take minutes: they were killed
    finally:
        assert worker.stop() == 0
    cells = settings.data_dir / "cache" / "cells"
    assert not cells.exists() or not [p for p in cells.iterdir() if not p.name.startswith(".")]
