"""The worker: takes experiment jobs from the store and runs each one in a child process.

As in rq, the work runs in a child ("spawn" start method: a fresh interpreter, no inherited locks or
threads), so a crash in native code (a segfault in faiss or hnswlib, the OOM killer) ends one attempt,
not the worker. The parent owns the job's lease: it heartbeats every lease/3 seconds with the progress
the child reports through a pipe, and settles the job when the child ends.

How a job ends:
- result: its index records are stored, the job succeeds with its rows and report directory.
- indexer.errors.UserError in the child: failed at once with its message (bad input; a retry would fail
  the same way).
- any other exception, or the child dying (non-zero exit, a signal): requeued while attempts remain, and
  failed after `max_attempts` with the last error ("worker child died with signal 11 (SIGSEGV)"). Native
  crashes are usually deterministic, so this costs max_attempts runs; it also lets a job survive a
  transient cause (OOM kill while another job was running, a full disk, a flaky mount).
- cancel requested (heartbeat says so): the child's `should_stop` turns true, the engine raises
  indexer.runner.Cancelled before its next cell, and the job is marked cancelled. A child that does not
  stop within `cancel_grace_seconds` is killed.
- the worker itself is lost (SIGKILL, host down): its lease expires and another worker reclaims the job;
  the orphaned child notices its parent is gone and exits.
- SIGTERM/SIGINT to the worker: it stops claiming, stops the child (`should_stop`, then kill after
  `shutdown_grace_seconds`), puts the job back in the queue without counting the attempt, and exits 0.
"""

from __future__ import annotations

import json
import logging
import multiprocessing as mp
import multiprocessing.connection as mp_connection
import os
import signal
import socket
import sys
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any, Protocol

from indexer.errors import UserError

if TYPE_CHECKING:
    from indexer.settings import Settings
    from indexer.store import JobView, Store

# The child imports this module to run a job: the store (SQLAlchemy) is imported only in the parent,
# inside the functions that use it, to keep the child's start-up short.

log = logging.getLogger(__name__)

Progress = Callable[[float, str], None]
ShouldStop = Callable[[], bool]


class JobTarget(Protocol):
    """What the child runs: a module-level function (it is pickled by reference into the child).

    Returns {"rows": [...], "report_dir": str relative to data_dir, "indexes": [records for
    Store.add_indexes]}. Raises UserError for bad input; raises anything once `should_stop()` is true.
    """

    def __call__(
        self, spec_json: str, data_dir: str, progress: Progress, should_stop: ShouldStop
    ) -> Mapping[str, Any]: ...


def execute_job(spec_json: str, data_dir: str, progress: Progress, should_stop: ShouldStop) -> dict[str, Any]:
    """The real job: run the experiment through the engine's one path, write its report."""
    from indexer.runner import run_and_report
    from indexer.spec import SpecError, parse_spec

    try:
        spec = parse_spec(json.loads(spec_json))
    except SpecError as err:  # validated at submit; a spec from an older version may no longer be
        raise UserError(str(err)) from None
    root = Path(data_dir).resolve()
    report_dir = Path("reports") / spec.key()
    result = run_and_report(spec, cache_dir=root / "cache", out_dir=root / report_dir, progress=progress,
                            should_stop=should_stop)
    return {
        "rows": result.rows,
        "report_dir": report_dir.as_posix(),
        "indexes": [{**r, "path": _relative_to(r["path"], root)} for r in result.indexes],
    }


def _relative_to(path: str | os.PathLike[str], root: Path) -> str:
    """A path under data_dir as relative to it (the data dir can move); any other path unchanged."""
    p = Path(path)
    try:
        return p.resolve().relative_to(root).as_posix()
    except ValueError:
        return str(p)


def default_worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


def describe_exit(exitcode: int | None) -> str:
    """'worker child died with signal 11 (SIGSEGV)' or 'worker child exited with code 3'."""
    if exitcode is None:
        return "worker child did not exit"
    if exitcode < 0:
        try:
            name = signal.Signals(-exitcode).name
        except ValueError:
            name = "unknown"
        hint = "; killed, perhaps for running out of memory" if -exitcode == signal.SIGKILL else ""
        return f"worker child died with signal {-exitcode} ({name}){hint}"
    return f"worker child exited with code {exitcode} without a result"


# -- the child ---------------------------------------------------------------------------------------


def _exit_with_parent() -> None:
    """An orphaned child exits: its worker is gone, so another worker will redo the job."""
    parent = mp.parent_process()
    if parent is None or parent.sentinel is None:
        return
    sentinel = parent.sentinel

    def watch() -> None:
        mp_connection.wait([sentinel])
        os._exit(70)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def _is_cancelled(exc: BaseException) -> bool:
    runner = sys.modules.get("indexer.runner")  # only if the target used the engine; no import here
    cancelled = getattr(runner, "Cancelled", None)
    return isinstance(cancelled, type) and isinstance(exc, cancelled)


def _child_main(
    target: JobTarget, job_id: str, spec_json: str, data_dir: str,
    conn: mp_connection.Connection, stop: Any,
) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole process group; the parent decides
    _exit_with_parent()
    logging.basicConfig(level=logging.INFO, format=f"%(asctime)s %(levelname)s job {job_id}: %(message)s")

    def progress(fraction: float, message: str) -> None:
        conn.send(("progress", float(fraction), str(message)))

    try:
        result = target(spec_json, data_dir, progress, stop.is_set)
        message: tuple[Any, ...] = ("result", dict(result))
    except BaseException as exc:  # everything is reported; the parent settles the job
        if stop.is_set() or _is_cancelled(exc):
            message = ("cancelled",)
        elif isinstance(exc, UserError):
            message = ("user_error", str(exc))
        else:
            log.error("job failed:\n%s", traceback.format_exc())
            message = ("error", f"{type(exc).__name__}: {exc}")
    try:
        conn.send(message)
    except Exception as exc:  # e.g. a result that does not pickle
        conn.send(("error", f"could not return the job's result: {type(exc).__name__}: {exc}"))
    conn.close()


# -- the parent --------------------------------------------------------------------------------------


@dataclass
class _Run:
    """What the parent knows about the child running one job."""

    outcome: tuple[Any, ...] | None = None
    progress: float = 0.0
    message: str = "started"
    reported: bool = True  # progress already in the store
    cancel: bool = False  # cancel requested by a user
    shutdown: bool = False  # the worker is stopping
    lost: bool = False  # another worker owns the job now
    killed: bool = False  # we ended the child ourselves
    stop_deadline: float | None = None


def _stop_child(proc: Any, grace: float = 5.0) -> None:
    if proc.is_alive():
        proc.terminate()
        proc.join(grace)
    if proc.is_alive():
        proc.kill()
        proc.join(grace)


class _Worker:
    def __init__(self, store: Store, settings: Settings, worker_id: str, target: JobTarget,
                 shutdown: threading.Event, cancel_grace: float, shutdown_grace: float) -> None:
        self.store = store
        self.data_dir = Path(settings.data_dir).resolve()
        self.lease = float(settings.job_lease_seconds)
        self.worker_id = worker_id
        self.target = target
        self.shutdown = shutdown
        self.cancel_grace = cancel_grace
        self.shutdown_grace = shutdown_grace
        self.ctx = mp.get_context("spawn")

    def run_job(self, job: JobView) -> None:
        log.info("job %s (%s): attempt %d of %d", job.id, job.name, job.attempts, job.max_attempts)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        recv, send = self.ctx.Pipe(duplex=False)
        stop = self.ctx.Event()
        proc = self.ctx.Process(
            target=_child_main, name=f"indexer-job-{job.id}",
            args=(self.target, job.id, json.dumps(job.spec), str(self.data_dir), send, stop),
        )
        proc.start()
        send.close()  # the child holds the only write end: EOF on recv means the child is gone
        state = _Run()
        try:
            self._supervise(job, proc, recv, stop, state)
            if state.outcome is None:  # gone without a word: wait for its exit code
                proc.join(5.0)
                if proc.is_alive():
                    state.killed = True
                    _stop_child(proc)
            self._settle_safely(job, proc.exitcode, state)  # before the child's slow interpreter exit
        finally:
            recv.close()
            proc.join(10.0)
            if proc.is_alive():
                log.warning("job %s: child still alive after its result; killing it", job.id)
                _stop_child(proc)

    def _settle_safely(self, job: JobView, exitcode: int | None, state: _Run) -> None:
        try:
            self._settle(job, exitcode, state)
        except Exception as exc:  # e.g. the database went away: the job must not stay claimed forever
            log.exception("job %s: could not record its end", job.id)
            try:
                self.store.fail(job.id, self.worker_id, f"worker could not record the job's end: {exc}",
                                retry=True)
            except Exception:
                log.exception("job %s: left to lease expiry", job.id)

    def _supervise(self, job: JobView, proc: Any, recv: mp_connection.Connection, stop: Any,
                   state: _Run) -> None:
        beat_every = self.lease / 3
        progress_every = min(1.0, beat_every)  # push fresh progress sooner than the lease needs
        last_beat = time.monotonic()
        while state.outcome is None:
            if recv.poll(0.1):
                try:
                    msg = recv.recv()
                except (EOFError, OSError):
                    return  # the child is gone without a word: a crash
                if msg[0] == "progress":
                    state.progress, state.message, state.reported = msg[1], msg[2], False
                else:
                    state.outcome = msg
                    return
            elif not proc.is_alive():
                if recv.poll(0):  # it wrote just before exiting: read that first
                    continue
                return
            now = time.monotonic()
            due = now - last_beat >= beat_every or (not state.reported and now - last_beat >= progress_every)
            if due:
                last_beat = now
                self._beat(job, state)
                if state.lost:
                    log.warning("job %s: lease lost to another worker; stopping its child", job.id)
                    state.killed = True
                    _stop_child(proc)
                    return
            if state.cancel and state.stop_deadline is None:
                log.info("job %s: cancel requested; the child stops at its next cell", job.id)
                stop.set()
                state.stop_deadline = now + self.cancel_grace
            if self.shutdown.is_set() and not state.shutdown:
                log.info("job %s: worker stopping; the job goes back to the queue", job.id)
                state.shutdown = True
                stop.set()
                deadline = now + self.shutdown_grace
                state.stop_deadline = min(state.stop_deadline or deadline, deadline)
            if state.stop_deadline is not None and now >= state.stop_deadline:
                log.warning("job %s: child did not stop in time; killing it", job.id)
                state.killed = True
                _stop_child(proc)
                return

    def _beat(self, job: JobView, state: _Run) -> None:
        import sqlalchemy as sa

        try:
            ok = self.store.heartbeat(job.id, self.worker_id, state.progress, state.message, self.lease)
            state.reported = True
            if ok:
                return
            now = self.store.get(job.id)
        except sa.exc.SQLAlchemyError as err:  # the lease has slack (3 beats); try again next time
            log.warning("job %s: heartbeat failed: %s", job.id, err)
            return
        if now is None or now.worker_id != self.worker_id or now.status != "running":
            state.lost = True
        elif now.cancel_requested:
            state.cancel = True

    def _settle(self, job: JobView, exitcode: int | None, state: _Run) -> None:
        """Write the job's end to the store (nothing when another worker owns it now)."""
        if state.lost:
            return
        kind = state.outcome[0] if state.outcome else None
        store, me = self.store, self.worker_id
        if kind == "result":
            result = state.outcome[1]  # type: ignore[index]
            store.add_indexes(job.id, result.get("indexes") or [])
            if store.finish(job.id, me, result.get("rows") or [], str(result.get("report_dir") or "")):
                log.info("job %s: succeeded", job.id)
            return
        if state.cancel and (kind in ("cancelled", None) or state.killed):
            store.mark_cancelled(job.id, me)
            log.info("job %s: cancelled", job.id)
        elif state.shutdown and (kind in ("cancelled", None) or state.killed):
            store.release(job.id, me)
        elif kind == "user_error":
            store.fail(job.id, me, state.outcome[1])  # type: ignore[index]
            log.info("job %s: failed: %s", job.id, state.outcome[1])  # type: ignore[index]
        else:
            if kind == "error":
                error = state.outcome[1]  # type: ignore[index]
            elif kind == "cancelled":  # stopped though nobody asked (should not happen): retry it
                error = "the job stopped without being cancelled"
            else:
                error = describe_exit(exitcode)
            status = store.fail(job.id, me, error, retry=True)
            log.warning("job %s: %s; %s", job.id, error, "requeued" if status == "queued" else "failed")


def run_worker(
    settings: Settings,
    *,
    once: bool = False,
    poll_seconds: float = 1.0,
    worker_id: str | None = None,
    target: JobTarget = execute_job,
    shutdown: threading.Event | None = None,
    cancel_grace_seconds: float = 30.0,
    shutdown_grace_seconds: float = 5.0,
) -> int:
    """Claim and run jobs until SIGTERM/SIGINT (or `shutdown` is set); returns the exit code (0).

    once: run at most one job (none if the queue is empty), then return.
    target: what the child runs (default: the engine via `execute_job`); tests pass small functions.
    """
    import sqlalchemy as sa

    from indexer.store import Store

    worker_id = worker_id or default_worker_id()
    shutdown = shutdown or threading.Event()
    store = Store(settings.resolved_database_url, max_attempts=settings.job_max_attempts)
    worker = _Worker(store, settings, worker_id, target, shutdown, cancel_grace_seconds, shutdown_grace_seconds)
    previous: dict[signal.Signals, Any] = {}

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        log.info("worker %s: %s received; finishing up", worker_id, signal.Signals(signum).name)
        shutdown.set()

    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGINT):
            previous[sig] = signal.signal(sig, on_signal)
    try:
        store.migrate()
        log.info("worker %s: waiting for jobs (lease %.0fs)", worker_id, worker.lease)
        while not shutdown.is_set():
            try:
                job = store.claim(worker_id, worker.lease)
            except sa.exc.SQLAlchemyError as err:  # database restarting: keep polling
                log.warning("worker %s: claim failed: %s", worker_id, err)
                job = None
            if job is not None:
                try:
                    worker.run_job(job)
                except Exception:  # the worker keeps serving; the job's lease runs out and it is retried
                    log.exception("worker %s: job %s crashed the worker loop", worker_id, job.id)
            if once:
                break
            if job is None:
                shutdown.wait(poll_seconds)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        store.close()
    log.info("worker %s: stopped", worker_id)
    return 0
