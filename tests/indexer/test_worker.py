"""The worker with real child processes and a real database (SQLite and PostgreSQL).

The targets below are what the child runs instead of the engine: they sleep, report progress, raise, or
crash on purpose. They live at module level because the "spawn" child imports them by name.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from indexer.errors import UserError
from indexer.worker import describe_exit, run_worker

if TYPE_CHECKING:
    from indexer.settings import Settings
    from indexer.spec import ExperimentSpec
    from indexer.store import JobView, Store

# The spawned children import this module to find their target: keep its top-level imports light
# (no pytest, no SQLAlchemy); the `settings` and `store` fixtures live in conftest.py.

RESULT = {"rows": [{"recall": 0.75, "ef": 10}], "report_dir": "reports/test", "indexes": []}


def _spec(name: str = "tiny") -> ExperimentSpec:
    from indexer.spec import parse_spec

    return parse_spec({
        "name": name,
        "dataset": {"kind": "synthetic", "intrinsic_dims": [2], "points_per_subspace": 50,
                    "queries_per_subspace": 5, "ambient_dim": 8},
        "backends": [{"name": "exact"}],
    })


def _started(data_dir: str) -> Path:
    return Path(data_dir) / "started"


# -- targets (run in the child) ----------------------------------------------------------------------


def target_ok(spec_json: str, data_dir: str, progress: Callable[[float, str], None],
              should_stop: Callable[[], bool]) -> dict[str, Any]:
    progress(0.5, "half way")
    assert json.loads(spec_json)["name"]
    return RESULT


def target_until_stopped(spec_json: str, data_dir: str, progress: Callable[[float, str], None],
                         should_stop: Callable[[], bool]) -> dict[str, Any]:
    """Works in small 'cells' for up to 30 s, checking should_stop between them like the runner."""
    _started(data_dir).write_text(str(os.getpid()))
    deadline = time.monotonic() + 30
    step = 0
    while time.monotonic() < deadline:
        if should_stop():
            raise RuntimeError("stopped at a cell boundary")  # the runner raises Cancelled here
        step += 1
        progress(min(step / 1000, 0.99), f"cell {step}")
        time.sleep(0.05)
    return RESULT


def target_ignores_stop(spec_json: str, data_dir: str, progress: Callable[[float, str], None],
                        should_stop: Callable[[], bool]) -> dict[str, Any]:
    _started(data_dir).write_text(str(os.getpid()))
    time.sleep(30)  # one long cell: never looks at should_stop
    return RESULT


def target_hangs_first_time(spec_json: str, data_dir: str, progress: Callable[[float, str], None],
                            should_stop: Callable[[], bool]) -> dict[str, Any]:
    """The first attempt hangs (its worker will be killed); later attempts succeed."""
    marker = _started(data_dir)
    if not marker.exists():
        marker.write_text(str(os.getpid()))
        time.sleep(30)
    progress(0.9, "second attempt")
    return RESULT


def target_segfault(spec_json: str, data_dir: str, progress: Callable[[float, str], None],
                    should_stop: Callable[[], bool]) -> dict[str, Any]:
    progress(0.1, "about to crash in native code")
    os.kill(os.getpid(), signal.SIGSEGV)
    time.sleep(10)
    return RESULT


def target_exit_3(spec_json: str, data_dir: str, progress: Callable[[float, str], None],
                  should_stop: Callable[[], bool]) -> dict[str, Any]:
    os._exit(3)


def target_user_error(spec_json: str, data_dir: str, progress: Callable[[float, str], None],
                      should_stop: Callable[[], bool]) -> dict[str, Any]:
    raise UserError("data file /nope.npy not found")


def target_bug(spec_json: str, data_dir: str, progress: Callable[[float, str], None],
               should_stop: Callable[[], bool]) -> dict[str, Any]:
    raise ZeroDivisionError("division by zero")


# -- helpers -----------------------------------------------------------------------------------------


def wait_for(cond: Callable[[], Any], timeout: float = 15.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = cond()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


class ThreadedWorker:
    """run_worker in a thread of this process (its children are real processes)."""

    def __init__(self, settings: Settings, target: Any, **kwargs: Any) -> None:
        self.shutdown = threading.Event()
        self.code: int | None = None

        def main() -> None:
            self.code = run_worker(settings, poll_seconds=0.1, worker_id="threaded", target=target,
                                   shutdown=self.shutdown, **kwargs)

        self.thread = threading.Thread(target=main, daemon=True)
        self.thread.start()

    def stop(self) -> int | None:
        self.shutdown.set()
        self.thread.join(20)
        assert not self.thread.is_alive(), "worker did not stop"
        return self.code


def spawn_worker(settings: Settings, target_name: str) -> subprocess.Popen[bytes]:
    """A worker in its own process, as `indexer worker` runs it."""
    code = f"""
import logging, sys
sys.path[:0] = {sys.path!r}
logging.basicConfig(level=logging.INFO)
from indexer.settings import Settings
from indexer.worker import run_worker
from {__name__} import {target_name} as target
settings = Settings.model_validate_json({settings.model_dump_json()!r})
sys.exit(run_worker(settings, poll_seconds=0.1, target=target))
"""
    return subprocess.Popen([sys.executable, "-c", code])


def _job(store: Store, job_id: str) -> JobView:
    job = store.get(job_id)
    assert job is not None
    return job


# -- tests -------------------------------------------------------------------------------------------


def test_describe_exit() -> None:
    assert describe_exit(-11) == "worker child died with signal 11 (SIGSEGV)"
    assert describe_exit(3) == "worker child exited with code 3 without a result"
    assert describe_exit(-9).startswith("worker child died with signal 9 (SIGKILL)")


def test_job_succeeds(store: Store, settings: Settings) -> None:
    job, _ = store.submit(_spec())
    assert run_worker(settings, once=True, target=target_ok) == 0
    done = _job(store, job.id)
    assert done.status == "succeeded", done.error
    assert done.rows == RESULT["rows"] and done.report_dir == "reports/test"
    assert done.attempts == 1 and done.progress == 1.0 and done.worker_id is None


def test_empty_queue_once_returns(store: Store, settings: Settings) -> None:
    assert run_worker(settings, once=True, target=target_ok) == 0


def test_cancelled_queued_job_never_runs(store: Store, settings: Settings) -> None:
    job, _ = store.submit(_spec())
    store.cancel(job.id)
    run_worker(settings, once=True, target=target_until_stopped)
    assert _job(store, job.id).status == "cancelled"
    assert not _started(str(settings.data_dir)).exists()


def test_cancel_running_job_stops_at_next_cell(store: Store, settings: Settings) -> None:
    job, _ = store.submit(_spec())
    worker = ThreadedWorker(settings, target_until_stopped)
    try:
        wait_for(lambda: _job(store, job.id).progress > 0, what="progress reported by the child")
        assert _job(store, job.id).message.startswith("cell ")  # type: ignore[union-attr]
        store.cancel(job.id)
        wait_for(lambda: _job(store, job.id).status == "cancelled", what="cancelled")
    finally:
        assert worker.stop() == 0
    final = _job(store, job.id)
    assert final.worker_id is None and final.error is None
    pid = int(_started(str(settings.data_dir)).read_text())
    wait_for(lambda: not _pid_alive(pid), timeout=5, what="the child to exit")


def test_cancel_kills_a_child_that_does_not_stop(store: Store, settings: Settings) -> None:
    job, _ = store.submit(_spec())
    worker = ThreadedWorker(settings, target_ignores_stop, cancel_grace_seconds=0.5)
    try:
        wait_for(lambda: _started(str(settings.data_dir)).exists(), what="the child to start")
        store.cancel(job.id)
        wait_for(lambda: _job(store, job.id).status == "cancelled", what="cancelled")
    finally:
        worker.stop()
    assert not _pid_alive(int(_started(str(settings.data_dir)).read_text()))


def test_segfault_is_retried_then_failed(store: Store, settings: Settings) -> None:
    job, _ = store.submit(_spec(), max_attempts=2)
    run_worker(settings, once=True, target=target_segfault)
    first = _job(store, job.id)
    assert first.status == "queued" and first.attempts == 1
    assert first.error == "worker child died with signal 11 (SIGSEGV)"
    run_worker(settings, once=True, target=target_segfault)
    final = _job(store, job.id)
    assert final.status == "failed" and final.attempts == 2
    assert final.error == "gave up after 2 attempts: worker child died with signal 11 (SIGSEGV)"
    assert run_worker(settings, once=True, target=target_segfault) == 0  # nothing left to claim


def test_child_exit_code_fails_the_job(store: Store, settings: Settings) -> None:
    job, _ = store.submit(_spec(), max_attempts=1)
    run_worker(settings, once=True, target=target_exit_3)
    final = _job(store, job.id)
    assert final.status == "failed" and final.error == "worker child exited with code 3 without a result"


def test_user_error_fails_without_retry(store: Store, settings: Settings) -> None:
    job, _ = store.submit(_spec(), max_attempts=3)
    run_worker(settings, once=True, target=target_user_error)
    final = _job(store, job.id)
    assert final.status == "failed" and final.attempts == 1
    assert final.error == "data file /nope.npy not found"


def test_unexpected_exception_is_retried(store: Store, settings: Settings) -> None:
    job, _ = store.submit(_spec(), max_attempts=3)
    run_worker(settings, once=True, target=target_bug)
    again = _job(store, job.id)
    assert again.status == "queued" and again.attempts == 1
    assert again.error == "ZeroDivisionError: division by zero"


def test_killed_worker_job_is_reclaimed_after_lease(store: Store, settings: Settings) -> None:
    job, _ = store.submit(_spec())
    proc = spawn_worker(settings, "target_hangs_first_time")
    try:
        marker = _started(str(settings.data_dir))
        wait_for(marker.exists, what="the first attempt to start")
        running = _job(store, job.id)
        assert running.status == "running" and running.attempts == 1
    finally:
        proc.kill()
        proc.wait(10)
    orphan = int(marker.read_text())
    wait_for(lambda: not _pid_alive(orphan), timeout=10, what="the orphaned child to exit")

    wait_for(lambda: _job(store, job.id).lease_expires_at < store_now(), timeout=5, what="lease expiry")
    run_worker(settings, once=True, target=target_hangs_first_time)
    final = _job(store, job.id)
    assert final.status == "succeeded", final.error
    assert final.attempts == 2


def store_now() -> Any:
    from indexer.store import utcnow

    return utcnow()


def test_sigterm_releases_the_job_and_exits_0(store: Store, settings: Settings) -> None:
    job, _ = store.submit(_spec())
    proc = spawn_worker(settings, "target_until_stopped")
    try:
        wait_for(lambda: _job(store, job.id).progress > 0, what="the job to run")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    released = _job(store, job.id)
    assert released.status == "queued" and released.attempts == 0 and released.worker_id is None
    assert not _pid_alive(int(_started(str(settings.data_dir)).read_text()))


def test_real_experiment_end_to_end(store: Store, settings: Settings) -> None:
    """The default target: the engine's runner and report writer, in a spawned child, on a tiny spec."""
    from indexer.spec import parse_spec

    spec = parse_spec({
        "name": "worker end to end",
        "dataset": {"kind": "synthetic", "intrinsic_dims": [2, 4], "points_per_subspace": 150,
                    "queries_per_subspace": 10, "ambient_dim": 16},
        "k": 5,
        "orderings": ["random", "lid_asc"],
        "backends": [{"name": "hnswlib", "M": 8, "ef_construction": 40, "ef_search": [5, 20]}],
        "lid": {"k": 10},
    })
    job, _ = store.submit(spec)
    run_worker(settings, once=True)
    done = _job(store, job.id)
    assert done.status == "succeeded", done.error
    assert done.rows and len(done.rows) == 4  # 2 orderings x 2 ef
    assert all(0.0 <= r["recall"] <= 1.0 for r in done.rows)
    assert done.report_dir == f"reports/{job.id}"
    assert (settings.data_dir / done.report_dir / "report.json").exists()
    built = store.list_indexes()
    assert len(built) == 2 and {i.experiment_id for i in built} == {job.id}
    for index in built:
        assert not Path(index.path).is_absolute() and (settings.data_dir / index.path / "meta.json").exists()
        assert index.backend == "hnswlib" and index.n == 300 and index.dims == 16 and index.reduction == "none"
