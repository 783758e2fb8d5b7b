"""Fencing: a worker that lost its job's lease neither keeps computing nor publishes anything.

A real worker is paused (SIGSTOP) while a second one takes the job over; a live worker has its job taken
from under it (as a reclaim after a missed lease would). The targets record their pid and steps in
files, and write into the report directory they were given, so the tests see who wrote what.
"""

from __future__ import annotations

import json
import os
import signal
import time
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from indexer.service.job_child import Progress, ShouldStop
from indexer.service.worker import run_worker
from tests.indexer.service.test_worker import (
    ThreadedWorker,
    _job,
    _spec,
    pid_running,
    result_saying,
    said,
    spawn_worker,
    wait_for,
    write_whole,
)

if TYPE_CHECKING:
    from indexer.model.results import JobResult
    from indexer.service.store import Store
    from indexer.settings import Settings

LEASE = 2.0  # seconds: short, so that a paused worker loses its job quickly


def _pids(data_dir: str | Path) -> Path:
    return Path(data_dir) / "pids"


# -- targets (run in the child) ----------------------------------------------------------------------


def target_steps(spec_json: str, data_dir: str, report_dir: str, progress: Progress,
                 should_stop: ShouldStop) -> JobResult:
    """Works in steps, recording each in its report directory. The first attempt runs until stopped
    (30 s at most); later attempts finish after a few steps and write a report naming their pid."""
    out = Path(data_dir) / report_dir
    out.mkdir(parents=True)
    _pids(data_dir).mkdir(exist_ok=True)
    first = not any(_pids(data_dir).iterdir())
    write_whole(_pids(data_dir) / str(os.getpid()), report_dir)
    steps = 600 if first else 5
    for step in range(1, steps + 1):
        if should_stop():
            raise RuntimeError("stopped at a step boundary")
        write_whole(out / "steps", str(step))
        progress(step / steps, f"step {step}")
        time.sleep(0.05)
    (out / "report.json").write_text(json.dumps({"pid": os.getpid(), "steps": steps}))
    return result_saying(f"pid={os.getpid()} steps={steps}", [INDEX])


def target_waits_for_go(spec_json: str, data_dir: str, report_dir: str, progress: Progress,
                        should_stop: ShouldStop) -> JobResult:
    """Writes its report, then returns it once the test says go."""
    out = Path(data_dir) / report_dir
    out.mkdir(parents=True)
    (out / "report.json").write_text(json.dumps({"pid": os.getpid()}))
    write_whole(Path(data_dir) / "started", str(os.getpid()))
    while not (Path(data_dir) / "go").exists():
        time.sleep(0.02)
    return result_saying(f"pid={os.getpid()}", [INDEX])


INDEX = {
    "id": "cell-fenced", "dataset": "synthetic", "ordering": "random", "backend": "exact", "params": {},
    "reduction_label": "none", "dims": 8, "metric": "cosine", "n": 100, "size_bytes": 1, "path": "cache/x",
}


# -- helpers -----------------------------------------------------------------------------------------


def _children(data_dir: Path) -> dict[int, str]:
    """pid -> report directory of every child that started so far."""
    folder = _pids(data_dir)
    return {int(p.name): p.read_text() for p in folder.glob("[0-9]*")} if folder.is_dir() else {}


def _steps(data_dir: Path, report_dir: str) -> int:
    path = data_dir / report_dir / "steps"
    return int(path.read_text()) if path.exists() else 0


def _take_over(store: Store, job_id: str) -> None:
    """What a reclaim does after a missed lease: another worker, the next attempt."""
    from indexer.service.tables import experiments, utcnow

    c = experiments.c
    with store.engine.begin() as conn:
        conn.execute(experiments.update().where(c.id == job_id).values(
            worker_id="thief", attempts=c.attempts + 1, lease_expires_at=utcnow() + timedelta(seconds=60),
        ))


def _pause_between_heartbeats(store: Store, job_id: str, pid: int) -> None:
    """SIGSTOP the worker just after a heartbeat, not inside one: a worker paused inside a write
    transaction would hold SQLite's write lock (or the row lock on PostgreSQL) and stall the test."""
    seen = _job(store, job_id).updated_at
    wait_for(lambda: _job(store, job_id).updated_at != seen, timeout=5, what="a heartbeat")
    time.sleep(0.1)
    os.kill(pid, signal.SIGSTOP)


# -- tests -------------------------------------------------------------------------------------------


def test_paused_worker_stops_computing_and_publishes_nothing(store: Store, settings: Settings) -> None:
    """The observed bug: a worker paused longer than its lease kept computing while a second worker ran
    the same job, then woke and wrote over it. Now its child stops itself when the lease is not renewed,
    the second worker's result is the one published, and no stale attempt directory remains."""
    settings = settings.model_copy(update={"job_lease_seconds": LEASE})
    data_dir = settings.data_dir
    job, _ = store.submit(_spec("paused"))
    log_path = data_dir.parent / "first-worker.log"
    data_dir.mkdir(parents=True, exist_ok=True)
    with log_path.open("wb") as log:
        first = spawn_worker(settings, "target_steps", module=__name__, log=log)
        try:
            (child, first_dir), = wait_for(lambda: list(_children(data_dir).items()), what="the first child")
            wait_for(lambda: _steps(data_dir, first_dir) >= 3, what="the first child to compute")
            _pause_between_heartbeats(store, job.id, first.pid)
            paused_at = time.monotonic()
            wait_for(lambda: not pid_running(child), timeout=LEASE + 2, what="the paused worker's child to stop")
            assert time.monotonic() - paused_at <= LEASE + 2
            assert b"lease not renewed in time" in log_path.read_bytes()  # its watchdog, nothing else

            wait_for(lambda: _job(store, job.id).lease_expired, timeout=5, what="the lease to expire")
            run_worker(settings, once=True, poll_seconds=0.1, worker_id="second", target=target_steps)
            done = _job(store, job.id)
            assert done.status == "succeeded" and done.attempts == 2, done.error
            (second_child,) = set(_children(data_dir)) - {child}
            assert said(done) == [f"pid={second_child} steps=5"]
            assert done.report_dir == _children(data_dir)[second_child]

            os.kill(first.pid, signal.SIGCONT)
            wait_for(lambda: b"is stale" in log_path.read_bytes(), timeout=10,
                     what="the first worker to find its attempt stale")
            first.send_signal(signal.SIGTERM)
            assert first.wait(20) == 0
        finally:
            if first.poll() is None:
                os.kill(first.pid, signal.SIGCONT)
                first.kill()
                first.wait(10)
    final = _job(store, job.id)
    assert final == done.model_copy(update={"lease_expired": False})  # the first worker wrote nothing
    assert list((data_dir / "reports" / job.id).iterdir()) == [data_dir / done.report_dir]
    assert json.loads((data_dir / done.report_dir / "report.json").read_text())["pid"] == second_child
    assert [i.id for i in store.list_indexes()] == ["cell-fenced"]


def test_lost_lease_kills_the_child_and_removes_its_directory(store: Store, settings: Settings) -> None:
    job, _ = store.submit(_spec("taken"))
    worker = ThreadedWorker(settings, target_steps)
    try:
        (child, first_dir), = wait_for(lambda: list(_children(settings.data_dir).items()), what="the child")
        wait_for(lambda: _steps(settings.data_dir, first_dir) >= 2, what="the child to compute")
        _take_over(store, job.id)
        wait_for(lambda: not pid_running(child), timeout=3, what="the child to be killed")
        wait_for(lambda: not (settings.data_dir / first_dir).exists(), timeout=3,
                 what="the stale attempt's directory to go")
    finally:
        assert worker.stop() == 0
    taken = _job(store, job.id)
    assert taken.status == "running" and taken.worker_id == "thief" and taken.attempts == 2
    assert taken.rows is None and taken.report_dir is None


def test_a_stale_result_is_not_published(store: Store, settings: Settings) -> None:
    """Taken over after the child wrote its report but before the worker noticed: the finish is refused,
    and the worker removes the report it will never publish."""
    job, _ = store.submit(_spec("late"))
    slow = settings.model_copy(update={"job_lease_seconds": 30.0})  # no heartbeat before the finish
    worker = ThreadedWorker(slow, target_waits_for_go, cancel_poll_seconds=60.0)
    try:
        wait_for(lambda: (slow.data_dir / "started").exists(), what="the child to write its report")
        (report,) = (slow.data_dir / "reports" / job.id).iterdir()
        _take_over(store, job.id)
        (slow.data_dir / "go").write_text("")
        wait_for(lambda: not report.exists(), timeout=10, what="the refused report to be removed")
    finally:
        assert worker.stop() == 0
    taken = _job(store, job.id)
    assert taken.status == "running" and taken.worker_id == "thief"
    assert taken.rows is None and taken.report_dir is None
    assert store.list_indexes() == []
