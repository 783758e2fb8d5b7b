"""The worker with real child processes and a real database (SQLite and PostgreSQL).

The targets below are what the child runs instead of the engine: they sleep, report progress, raise, or
crash on purpose. They live at module level because the "spawn" child imports them by name. Fencing
(paused and stale workers) has its own file, test_worker_fencing.py, which shares these helpers.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from indexer.common.errors import UserError
from indexer.service.job_child import LEASE_LAPSED_EXIT, ORPHANED_EXIT, Progress, ShouldStop, describe_exit
from indexer.service.worker import run_worker

if TYPE_CHECKING:
    from indexer.engine.spec import ExperimentSpec
    from indexer.model.results import JobResult
    from indexer.service.store import Store
    from indexer.service.views import JobView
    from indexer.settings import Settings

# The spawned children import this module to find their target: keep its top-level imports light
# (no pytest, no SQLAlchemy); the `settings` and `store` fixtures live in conftest.py.



def result_saying(tag: str, indexes: list[Any] | None = None) -> JobResult:
    """A job's result of one (BM25) row whose `dataset` is `tag`: how a target tells the test what it did."""
    from indexer.model.results import JobResult, SparseRow

    row = SparseRow.model_validate({"dataset": tag, "index_size": 1, "k": 1, "build_seconds": 0.0, "qps": 1.0,
                                    "index_bytes": 1, "neighbors": None, "ndcg@10": 0.5, "mrr@10": 0.5,
                                    "recall@100": 0.5})
    return JobResult(rows=[row], indexes=indexes or [])


def said(job: JobView) -> list[str]:
    """The tags of a finished job's rows (see `result_saying`)."""
    return [row["dataset"] for row in job.rows or []]


def _spec(name: str = "tiny") -> ExperimentSpec:
    from indexer.engine.spec import parse_spec

    return parse_spec({
        "name": name,
        "dataset": {"kind": "synthetic", "intrinsic_dims": [2], "points_per_subspace": 50,
                    "queries_per_subspace": 5, "ambient_dim": 8},
        "backends": [{"name": "exact"}],
    })


def _started(data_dir: str | Path) -> Path:
    return Path(data_dir) / "started"


def write_whole(path: Path, text: str) -> None:
    """Whole or absent (temp file, rename): the tests read these files while the child writes them."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def _mark_started(data_dir: str) -> None:
    write_whole(_started(data_dir), str(os.getpid()))


# -- targets (run in the child) ----------------------------------------------------------------------


def target_ok(spec_json: str, data_dir: str, report_dir: str, progress: Progress,
              should_stop: ShouldStop) -> JobResult:
    progress(0.5, "half way")
    assert json.loads(spec_json)["name"]
    return result_saying("ok")


def target_until_stopped(spec_json: str, data_dir: str, report_dir: str, progress: Progress,
                         should_stop: ShouldStop) -> JobResult:
    """Works in small 'cells' for up to 30 s, checking should_stop between them like the runner."""
    _mark_started(data_dir)
    deadline = time.monotonic() + 30
    step = 0
    while time.monotonic() < deadline:
        if should_stop():
            raise RuntimeError("stopped at a cell boundary")  # the runner raises Cancelled here
        step += 1
        progress(min(step / 1000, 0.99), f"cell {step}")
        time.sleep(0.05)
    return result_saying("ok")


def target_stuck_in_one_step(spec_json: str, data_dir: str, report_dir: str, progress: Progress,
                             should_stop: ShouldStop) -> JobResult:
    """One long cell that never looks at should_stop, filling a staging directory as the engine does."""
    from indexer.common.fileio import staged_dir

    with staged_dir(Path(data_dir) / "cache" / "cell") as staging:
        (staging / "part").write_text("half written")
        _mark_started(data_dir)
        time.sleep(30)
    return result_saying("ok")


def target_ignores_sigterm(spec_json: str, data_dir: str, report_dir: str, progress: Progress,
                           should_stop: ShouldStop) -> JobResult:
    """Stuck where SIGTERM cannot reach it (as in native code): only SIGKILL ends it."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    _mark_started(data_dir)
    time.sleep(30)
    return result_saying("ok")


def target_hangs_first_time(spec_json: str, data_dir: str, report_dir: str, progress: Progress,
                            should_stop: ShouldStop) -> JobResult:
    """The first attempt hangs (its worker will be killed); later attempts succeed."""
    marker = _started(data_dir)
    if not marker.exists():
        _mark_started(data_dir)
        time.sleep(30)
    progress(0.9, "second attempt")
    return result_saying("ok")


def target_segfault(spec_json: str, data_dir: str, report_dir: str, progress: Progress,
                    should_stop: ShouldStop) -> JobResult:
    progress(0.1, "about to crash in native code")
    os.kill(os.getpid(), signal.SIGSEGV)
    time.sleep(10)
    return result_saying("ok")


def target_exit_3(spec_json: str, data_dir: str, report_dir: str, progress: Progress,
                  should_stop: ShouldStop) -> JobResult:
    os._exit(3)


def target_raises(spec_json: str, data_dir: str, report_dir: str, progress: Progress,
                  should_stop: ShouldStop) -> JobResult:
    """Raises the kind of error the spec's name says, the way a job meets it."""
    import numpy as np

    kind = json.loads(spec_json)["name"]
    if kind == "user-error":
        raise UserError("data file /nope.npy not found")
    if kind == "value-error":  # a library refusing the user's data
        int("not a number")
    if kind == "type-error":
        np.zeros("three")
    if kind == "memory-error":  # numpy's _ArrayMemoryError: an allocation no machine has
        np.zeros(1 << 62, dtype=np.uint8)
    if kind == "os-error":
        raise OSError(errno.ENOSPC, "No space left on device")
    if kind == "bug":
        raise ZeroDivisionError("division by zero")
    raise AssertionError(f"no such case {kind!r}")


def target_chatty(spec_json: str, data_dir: str, report_dir: str, progress: Progress,
                  should_stop: ShouldStop) -> JobResult:
    """Does what the engine's libraries do to a log: progress bars, start-up INFO lines."""
    from tqdm import tqdm

    logging.getLogger("faiss.loader").info("Loading faiss with AVX2 support.")
    logging.getLogger("alembic.runtime.migration").info("Context impl SQLiteImpl.")
    logging.getLogger("tests.child").warning("the child's own line")
    for _ in tqdm(range(3), desc="encoding corpus"):
        time.sleep(0.01)
    env = {name: os.environ.get(name) for name in ("TQDM_DISABLE", "HF_HUB_DISABLE_PROGRESS_BARS")}
    return result_saying(json.dumps(env, sort_keys=True))


# -- helpers -----------------------------------------------------------------------------------------


def wait_for(cond: Callable[[], Any], timeout: float = 15.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = cond()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def pid_running(pid: int) -> bool:
    """True while the process runs. A zombie (exited, not yet reaped, e.g. because its parent is
    stopped) does not run, though signal 0 still reaches it."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    except OSError:  # no procfs: signal 0 is the best we have
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


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


def spawn_worker(settings: Settings, target_name: str, *, module: str = __name__,
                 log: IO[bytes] | None = None) -> subprocess.Popen[bytes]:
    """A worker in its own process, as `indexer worker` runs it; its log goes to `log` if given."""
    code = f"""
import logging, sys
sys.path[:0] = {sys.path!r}
logging.basicConfig(level=logging.INFO)
from indexer.settings import Settings
from indexer.service.worker import run_worker
from {module} import {target_name} as target
settings = Settings.model_validate_json({settings.model_dump_json()!r})
sys.exit(run_worker(settings, poll_seconds=0.1, target=target))
"""
    return subprocess.Popen([sys.executable, "-c", code], stderr=log)


def _job(store: Store, job_id: str) -> JobView:
    job = store.get(job_id)
    assert job is not None
    return job


# -- tests -------------------------------------------------------------------------------------------


def test_describe_exit() -> None:
    assert describe_exit(-11) == "worker child died with signal 11 (SIGSEGV)"
    assert describe_exit(3) == "worker child exited with code 3 without a result"
    assert describe_exit(-9).startswith("worker child died with signal 9 (SIGKILL)")
    assert "lease was not renewed in time" in describe_exit(LEASE_LAPSED_EXIT)
    assert "its worker was gone" in describe_exit(ORPHANED_EXIT)


def test_job_succeeds(store: Store, settings: Settings) -> None:
    job, _ = store.submit(_spec())
    assert run_worker(settings, once=True, target=target_ok) == 0
    done = _job(store, job.id)
    assert done.status == "succeeded", done.error
    assert said(done) == ["ok"] and done.report_dir is not None
    assert done.report_dir.startswith(f"reports/{job.id}/attempt-1-")  # this attempt's own directory
    assert done.attempts == 1 and done.progress == 1.0 and done.worker_id is None and not done.lease_expired


def test_empty_queue_once_returns(store: Store, settings: Settings) -> None:
    assert run_worker(settings, once=True, target=target_ok) == 0


def test_cancelled_queued_job_never_runs(store: Store, settings: Settings) -> None:
    job, _ = store.submit(_spec())
    store.cancel(job.id)
    run_worker(settings, once=True, target=target_until_stopped)
    assert _job(store, job.id).status == "cancelled"
    assert not _started(settings.data_dir).exists()


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
    pid = int(_started(settings.data_dir).read_text())
    wait_for(lambda: not pid_running(pid), timeout=5, what="the child to exit")
    assert not (settings.data_dir / "reports" / job.id).exists() or not any(
        (settings.data_dir / "reports" / job.id).iterdir()
    )  # a cancelled attempt leaves no report directory


def test_cancel_reaches_a_child_stuck_in_one_step(store: Store, settings: Settings) -> None:
    """Within seconds, not at the next cell: the cancel poll, then SIGTERM, whose exception lets the
    child's `finally` blocks remove their staging directories."""
    job, _ = store.submit(_spec())
    worker = ThreadedWorker(settings, target_stuck_in_one_step)  # default poll and graces
    try:
        wait_for(lambda: _started(settings.data_dir).exists(), what="the child to start")
        pid = int(_started(settings.data_dir).read_text())
        cancelled_at = time.monotonic()
        store.cancel(job.id)
        wait_for(lambda: not pid_running(pid), timeout=10, what="the child to exit")
        seconds = time.monotonic() - cancelled_at
        print(f"cancel to child exit: {seconds:.2f}s")
        assert seconds < 5.0, f"the child outlived its cancel by {seconds:.1f}s"
        wait_for(lambda: _job(store, job.id).status == "cancelled", timeout=5, what="cancelled")
    finally:
        assert worker.stop() == 0
    cache = settings.data_dir / "cache"
    assert sorted(p.name for p in cache.iterdir()) == [], "the staging directory outlived the SIGTERM"
    assert _job(store, job.id).error is None


def test_cancel_kills_a_child_that_ignores_sigterm(store: Store, settings: Settings) -> None:
    job, _ = store.submit(_spec())
    worker = ThreadedWorker(settings, target_ignores_sigterm, cancel_grace_seconds=0.3,
                            kill_grace_seconds=0.5)
    try:
        wait_for(lambda: _started(settings.data_dir).exists(), what="the child to start")
        store.cancel(job.id)
        wait_for(lambda: _job(store, job.id).status == "cancelled", what="cancelled")
    finally:
        worker.stop()
    pid = int(_started(settings.data_dir).read_text())
    wait_for(lambda: not pid_running(pid), timeout=5, what="the child to be killed")


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


def test_user_errors_fail_at_once(store: Store, settings: Settings) -> None:
    """Bad input fails the same way every time: no retry, the message says what was wrong."""
    cases = {
        "user-error": "data file /nope.npy not found",
        "value-error": "ValueError: invalid literal for int() with base 10: 'not a number'",
        "type-error": "TypeError: ",
        "memory-error": "MemoryError: Unable to allocate 4.00 EiB",
    }
    for name, message in cases.items():
        job, _ = store.submit(_spec(name), max_attempts=3)
        run_worker(settings, once=True, target=target_raises)
        final = _job(store, job.id)
        assert final.status == "failed" and final.attempts == 1, (name, final.status, final.error)
        assert final.error is not None and final.error.startswith(message), (name, final.error)


def test_machine_faults_are_retried(store: Store, settings: Settings) -> None:
    cases = {
        "os-error": "OSError: [Errno 28] No space left on device",
        "bug": "ZeroDivisionError: division by zero",
    }
    for name, message in cases.items():
        job, _ = store.submit(_spec(name), max_attempts=3)
        run_worker(settings, once=True, target=target_raises)
        again = _job(store, job.id)
        assert again.status == "queued" and again.attempts == 1, (name, again.status, again.error)
        assert again.error == message
        store.cancel(job.id)  # out of the queue, so the next case's job is the one claimed


def test_killed_worker_job_is_reclaimed_after_lease(store: Store, settings: Settings) -> None:
    job, _ = store.submit(_spec())
    proc = spawn_worker(settings, "target_hangs_first_time")
    try:
        marker = _started(settings.data_dir)
        wait_for(marker.exists, what="the first attempt to start")
        running = _job(store, job.id)
        assert running.status == "running" and running.attempts == 1
    finally:
        proc.kill()
        proc.wait(10)
    orphan = int(marker.read_text())
    wait_for(lambda: not pid_running(orphan), timeout=10, what="the orphaned child to exit")

    wait_for(lambda: _job(store, job.id).lease_expired, timeout=5, what="lease expiry")
    run_worker(settings, once=True, target=target_hangs_first_time)
    final = _job(store, job.id)
    assert final.status == "succeeded", final.error
    assert final.attempts == 2


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
    assert not pid_running(int(_started(settings.data_dir).read_text()))


def test_worker_log_has_no_progress_bars_or_library_chatter(store: Store, settings: Settings) -> None:
    job, _ = store.submit(_spec())
    log_path = settings.data_dir.parent / "worker.log"
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    with log_path.open("wb") as log:
        proc = spawn_worker(settings, "target_chatty", log=log)
        try:
            wait_for(lambda: _job(store, job.id).status == "succeeded", what="the job to succeed")
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(20) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
    text = log_path.read_text(errors="replace")
    assert "the child's own line" in text  # the child's log does reach the worker log
    for noise in ("encoding corpus", "it/s", "Loading faiss", "Context impl", "transactional DDL"):
        assert noise not in text, (noise, text[-3000:])
    assert [json.loads(tag) for tag in said(_job(store, job.id))] == [
        {"TQDM_DISABLE": "1", "HF_HUB_DISABLE_PROGRESS_BARS": "1"}]


def test_real_experiment_end_to_end(store: Store, settings: Settings) -> None:
    """The default target: the engine's runner and report writer, in a spawned child, on a tiny spec."""
    from indexer.engine.spec import parse_spec

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
    assert done.report_dir is not None and done.report_dir.startswith(f"reports/{job.id}/attempt-1-")
    assert (settings.data_dir / done.report_dir / "report.json").exists()
    attempts = list((settings.data_dir / "reports" / job.id).iterdir())
    assert attempts == [settings.data_dir / done.report_dir]  # no staging, no other attempt
    built = store.list_indexes()
    assert len(built) == 2 and {i.experiment_id for i in built} == {job.id}
    for index in built:
        assert not Path(index.path).is_absolute() and (settings.data_dir / index.path / "meta.json").exists()
        assert index.backend == "hnswlib" and index.n == 300 and index.dims == 16 and index.reduction == "none"
