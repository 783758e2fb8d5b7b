"""The worker: takes experiment jobs from the store and runs each one in a child process.

As in rq, the work runs in a child ("spawn" start method: a fresh interpreter, no inherited locks or
threads), so a crash in native code (a segfault in faiss or hnswlib, the OOM killer) ends one attempt,
not the worker. The parent owns the job's lease: it heartbeats every lease/3 seconds with the progress
the child reports through a pipe, and settles the job when the child ends.

One job never runs twice at once (fencing). A claim's token (the job's `attempts` after the claim) goes
with every store write of the attempt, so a worker that was paused or cut off while another reclaimed
its job has every write refused:
- a heartbeat or the cancel poll that finds the attempt lost kills the child at once;
- after each renewed lease the parent writes the new wall-clock expiry into a value shared with the
  child, whose watchdog thread exits (code 71) once time passes it: a child whose parent is paused
  (SIGSTOP), stalled or cut off from the database stops before another worker may reclaim the job;
- each attempt writes its report into a directory of its own, reports/<job id>/attempt-<token>-<nonce>,
  published only by `Store.finish` (which records it as report_dir together with the rows and index
  records). The winner removes the job's other attempt directories; an attempt whose writes are refused,
  or that ends any other way, removes its own.

How a job ends:
- result: the job succeeds with its rows, index records and report directory, in one transaction.
- bad input in the child, failed at once with its message (a retry would fail the same way):
  indexer.common.errors.UserError, a ValueError or TypeError from a library given the user's data, a
  MemoryError (numpy's for an impossible allocation included).
- a fault of the machine: requeued while attempts remain, failed after `max_attempts` with the last
  error: the child dying (a signal, "worker child died with signal 11 (SIGSEGV)", a non-zero exit),
  an OSError (a full disk, a flaky mount), any other exception. Native crashes are usually
  deterministic, so these cost max_attempts runs; it also lets a job survive a transient cause.
- cancel requested: the parent reads `cancel_requested` about every second (`cancel_poll_seconds`,
  apart from the heartbeat), sets the child's `should_stop` (the engine raises indexer.engine.runner.Cancelled
  before its next cell), sends SIGTERM after `cancel_grace_seconds` (the child's handler raises
  ChildTerminated, so `finally` blocks remove staging directories; native code delays it) and SIGKILL
  after another `kill_grace_seconds`. The job is marked cancelled.
- the worker itself is lost (SIGKILL, host down): its lease expires and another worker reclaims the job;
  the orphaned child notices its parent is gone and exits (code 70).
- SIGTERM/SIGINT to the worker: it stops claiming, stops the child the same way (`should_stop`, SIGTERM
  after `shutdown_grace_seconds`, SIGKILL), puts the job back in the queue without counting the
  attempt, and exits 0.

The child's log stays readable: library progress bars are off (TQDM_DISABLE, HF_HUB_DISABLE_PROGRESS_BARS)
and the chatty `faiss.loader` and `alembic` loggers are at WARNING, in the parent and the child.
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import multiprocessing.connection as mp_connection
import shutil
import signal
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

from indexer.common.logs import quiet_library_loggers
from indexer.service.job_child import (
    JobTarget,
    attempt_report_dir,
    child_main,
    default_worker_id,
    describe_exit,
    execute_job,
)

if TYPE_CHECKING:
    from indexer.model.results import JobResult
    from indexer.service.store import Store
    from indexer.service.views import JobView
    from indexer.settings import Settings


log = logging.getLogger(__name__)

# -- the parent --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Attempt:
    """One claim of a job: the token that fences its store writes and the directory only it writes."""

    job_id: str
    token: int
    report_dir: Path  # relative to data_dir


@dataclass
class _Run:
    """What the parent knows about the child running one attempt."""

    outcome: tuple[Any, ...] | None = None
    progress: float = 0.0
    message: str = "started"
    reported: bool = True  # progress already in the store
    cancel: bool = False  # cancel requested by a user
    shutdown: bool = False  # the worker is stopping
    lost: bool = False  # the attempt is stale: another worker owns the job now, or it ended
    killed: bool = False  # we sent the child SIGTERM or SIGKILL
    term_at: float | None = None  # when SIGTERM is due (monotonic), once the child was asked to stop
    kill_at: float | None = None  # when SIGKILL is due, once SIGTERM was sent


def _stop_child(proc: Any, grace: float = 5.0) -> None:
    if proc.is_alive():
        proc.terminate()
        proc.join(grace)
    if proc.is_alive():
        proc.kill()
        proc.join(grace)


def _remove_tree(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    elif path.exists() or path.is_symlink():
        path.unlink(missing_ok=True)


class _Worker:
    def __init__(self, store: Store, settings: Settings, worker_id: str, target: JobTarget,
                 shutdown: threading.Event, *, cancel_grace: float, shutdown_grace: float,
                 kill_grace: float, cancel_poll: float) -> None:
        self.store = store
        self.data_dir = Path(settings.data_dir).resolve()
        self.lease = float(settings.job_lease_seconds)
        self.worker_id = worker_id
        self.target = target
        self.shutdown = shutdown
        self.cancel_grace = cancel_grace
        self.shutdown_grace = shutdown_grace
        self.kill_grace = kill_grace
        self.cancel_poll = cancel_poll
        self.ctx = mp.get_context("spawn")

    def run_job(self, job: JobView) -> None:
        if job.spec is None:  # stored by an older version that accepted it: every attempt would fail alike
            log.info("job %s (%s): its spec cannot be read: %s", job.id, job.name, job.spec_problem)
            self.store.fail(job.id, self.worker_id, job.attempts, job.spec_problem or "unreadable spec")
            return
        attempt = _Attempt(job.id, job.attempts, attempt_report_dir(job.id, job.attempts))
        log.info("job %s (%s): attempt %d of %d", job.id, job.name, job.attempts, job.max_attempts)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        recv, send = self.ctx.Pipe(duplex=False)
        stop = self.ctx.Event()
        expires = job.lease_expires_at.timestamp() if job.lease_expires_at else time.time() + self.lease
        # No lock: a parent paused while holding it would block the very watchdog that must then act.
        lease_deadline = self.ctx.Value("d", expires, lock=False)
        proc = self.ctx.Process(
            target=child_main, name=f"indexer-job-{job.id}",
            args=(self.target, job.id, job.spec.canonical_json(), str(self.data_dir),
                  attempt.report_dir.as_posix(), send, stop, lease_deadline),
        )
        proc.start()
        send.close()  # the child holds the only write end: EOF on recv means the child is gone
        state = _Run()
        try:
            self._supervise(attempt, proc, recv, stop, lease_deadline, state)
            if state.outcome is None:  # gone without a word: wait for its exit code
                proc.join(5.0)
                if proc.is_alive():
                    state.killed = True
                    _stop_child(proc, self.kill_grace)
            self._settle_safely(attempt, proc.exitcode, state)  # before the child's slow interpreter exit
        finally:
            recv.close()
            proc.join(10.0)
            if proc.is_alive():
                log.warning("job %s: child still alive after its result; killing it", job.id)
                _stop_child(proc, self.kill_grace)

    def _settle_safely(self, attempt: _Attempt, exitcode: int | None, state: _Run) -> None:
        try:
            self._settle(attempt, exitcode, state)
        except Exception as exc:  # e.g. the database went away: the job must not stay claimed forever
            log.exception("job %s: could not record its end", attempt.job_id)
            try:
                status = self.store.fail(attempt.job_id, self.worker_id, attempt.token,
                                         f"worker could not record the job's end: {exc}", retry=True)
            except Exception:
                log.exception("job %s: left to lease expiry", attempt.job_id)
                return
            if status is not None:  # only then is it sure that nothing of ours was published
                self._discard(attempt)

    def _supervise(self, attempt: _Attempt, proc: Any, recv: mp_connection.Connection, stop: Any,
                   lease_deadline: Any, state: _Run) -> None:
        beat_every = self.lease / 3
        progress_every = min(1.0, beat_every)  # push fresh progress sooner than the lease needs
        last_beat = last_poll = time.monotonic()
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
            if now - last_beat >= beat_every or (not state.reported and now - last_beat >= progress_every):
                last_beat = now
                self._beat(attempt, state, lease_deadline)
            elif now - last_poll >= self.cancel_poll and not (state.cancel or state.lost):
                last_poll = now
                self._poll(attempt, state)
            if state.lost:
                log.warning("job %s: attempt %d is stale (another worker owns the job now); killing its "
                            "child", attempt.job_id, attempt.token)
                state.killed = True
                _stop_child(proc, self.kill_grace)
                return
            if state.cancel and state.term_at is None:
                log.info("job %s: cancel requested; stopping its child", attempt.job_id)
                self._ask_to_stop(stop, state, now + self.cancel_grace)
            if self.shutdown.is_set() and not state.shutdown:
                log.info("job %s: worker stopping; the job goes back to the queue", attempt.job_id)
                state.shutdown = True
                self._ask_to_stop(stop, state, now + self.shutdown_grace)
            if self._escalate(attempt, proc, state, now):
                return

    @staticmethod
    def _ask_to_stop(stop: Any, state: _Run, term_at: float) -> None:
        """Turn the child's `should_stop` true; SIGTERM is due at `term_at` if it has not stopped by then."""
        stop.set()
        state.term_at = term_at if state.term_at is None else min(state.term_at, term_at)

    def _escalate(self, attempt: _Attempt, proc: Any, state: _Run, now: float) -> bool:
        """SIGTERM a child that did not stop when asked; SIGKILL one that outlives the SIGTERM too.
        True once it was killed."""
        if state.kill_at is not None and now >= state.kill_at:
            log.warning("job %s: child still alive %.1fs after SIGTERM; killing it", attempt.job_id,
                        self.kill_grace)
            proc.kill()
            return True
        if state.term_at is not None and state.kill_at is None and now >= state.term_at:
            log.info("job %s: child did not stop at a cell boundary; sending it SIGTERM", attempt.job_id)
            state.killed = True
            proc.terminate()
            state.kill_at = now + self.kill_grace
        return False

    def _beat(self, attempt: _Attempt, state: _Run, lease_deadline: Any) -> None:
        import sqlalchemy as sa

        started = time.time()  # before the store's clock reads now: the child's deadline comes first
        try:
            owned = self.store.heartbeat(attempt.job_id, self.worker_id, attempt.token, state.progress,
                                         state.message, self.lease)
        except sa.exc.SQLAlchemyError as err:  # the lease has slack (3 beats); try again next time
            log.warning("job %s: heartbeat failed: %s", attempt.job_id, err)
            return
        state.reported = True
        if owned:
            lease_deadline.value = started + self.lease
        else:
            state.lost = True

    def _poll(self, attempt: _Attempt, state: _Run) -> None:
        """Read whether a user asked to cancel (or the attempt went stale): cheaper than a heartbeat,
        so it runs about every second and a cancel reaches the child within seconds."""
        import sqlalchemy as sa

        try:
            now = self.store.attempt_state(attempt.job_id, self.worker_id, attempt.token)
        except sa.exc.SQLAlchemyError as err:  # the heartbeat reports database trouble
            log.debug("job %s: cancel poll failed: %s", attempt.job_id, err)
            return
        if now == "lost":
            state.lost = True
        elif now == "cancel_requested":
            state.cancel = True

    def _settle(self, attempt: _Attempt, exitcode: int | None, state: _Run) -> None:
        """Write the attempt's end to the store (nothing when it is stale), then tidy the job's report
        directories: the published one stays, every other goes."""
        if state.lost:
            self._discard(attempt)
            return
        kind = state.outcome[0] if state.outcome else None
        store, me, token, job_id = self.store, self.worker_id, attempt.token, attempt.job_id
        if kind == "result":
            result: JobResult = state.outcome[1]  # type: ignore[index]
            if store.finish(job_id, me, token, result.rows, attempt.report_dir.as_posix(),
                            indexes=result.indexes):
                log.info("job %s: succeeded", job_id)
                self._remove_other_attempts(attempt)
            else:
                log.warning("job %s: attempt %d is stale (another worker owns the job); its result is "
                            "dropped", job_id, token)
                self._discard(attempt)
            return
        stopped = kind in ("cancelled", "terminated", None) or state.killed
        if state.cancel and stopped:
            if ended := store.mark_cancelled(job_id, me, token):
                log.info("job %s: cancelled", job_id)
        elif (state.shutdown or self.shutdown.is_set()) and stopped:
            ended = store.release(job_id, me, token)
        elif kind == "user_error":
            if ended := store.fail(job_id, me, token, state.outcome[1]) is not None:  # type: ignore[index]
                log.info("job %s: failed: %s", job_id, state.outcome[1])  # type: ignore[index]
        else:
            error = self._error(kind, state, exitcode)
            status = store.fail(job_id, me, token, error, retry=True)
            ended = status is not None
            if ended:
                log.warning("job %s: %s; %s", job_id, error, status)
        if not ended:
            log.warning("job %s: attempt %d is stale (another worker owns the job, or it ended); its end "
                        "was not recorded", job_id, token)
        self._discard(attempt)

    @staticmethod
    def _error(kind: str | None, state: _Run, exitcode: int | None) -> str:
        if kind == "error":
            return str(state.outcome[1])  # type: ignore[index]
        if kind == "cancelled":  # stopped though nobody asked (should not happen): retry it
            return "the job stopped without being cancelled"
        if kind == "terminated":
            return "worker child was terminated (SIGTERM) by something other than its worker"
        return describe_exit(exitcode)

    def _discard(self, attempt: _Attempt) -> None:
        """Remove what this attempt wrote for its report: it will never be published."""
        folder = self.data_dir / attempt.report_dir
        _remove_tree(folder)
        if folder.parent.is_dir():
            for staging in folder.parent.glob(f".{folder.name}.*"):  # writers stage in hidden siblings
                _remove_tree(staging)

    def _remove_other_attempts(self, attempt: _Attempt) -> None:
        """The published attempt removes the job's other attempt directories (stale, crashed, cancelled
        attempts, and their staging), so only the report the store names remains."""
        folder = self.data_dir / attempt.report_dir
        if not folder.parent.is_dir():
            return
        for path in folder.parent.iterdir():
            if path.name != folder.name and path.name.lstrip(".").startswith("attempt-"):
                _remove_tree(path)


def run_worker(
    settings: Settings,
    *,
    once: bool = False,
    poll_seconds: float = 1.0,
    worker_id: str | None = None,
    target: JobTarget = execute_job,
    shutdown: threading.Event | None = None,
    cancel_grace_seconds: float = 2.0,
    shutdown_grace_seconds: float = 5.0,
    kill_grace_seconds: float = 2.0,
    cancel_poll_seconds: float = 1.0,
) -> int:
    """Claim and run jobs until SIGTERM/SIGINT (or `shutdown` is set); returns the exit code (0).

    once: run at most one job (none if the queue is empty), then return.
    target: what the child runs (default: the engine via `execute_job`); tests pass small functions.
    cancel_grace_seconds / shutdown_grace_seconds: how long a child asked to stop (a cancel, the worker
    stopping) has to reach a cell boundary before SIGTERM; kill_grace_seconds: then before SIGKILL.
    cancel_poll_seconds: how often the worker reads whether a user cancelled the running job.
    """
    import sqlalchemy as sa

    from indexer.common.fileio import sweep_scratch
    from indexer.service.store import Store

    quiet_library_loggers()
    worker_id = worker_id or default_worker_id()
    shutdown = shutdown or threading.Event()
    store = Store(settings.resolved_database_url, max_attempts=settings.job_max_attempts)
    worker = _Worker(store, settings, worker_id, target, shutdown, cancel_grace=cancel_grace_seconds,
                     shutdown_grace=shutdown_grace_seconds, kill_grace=kill_grace_seconds,
                     cancel_poll=cancel_poll_seconds)
    previous: dict[signal.Signals, Any] = {}

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        log.info("worker %s: %s received; finishing up", worker_id, signal.Signals(signum).name)
        shutdown.set()

    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGINT):
            previous[sig] = signal.signal(sig, on_signal)
    try:
        store.migrate()
        if removed := sweep_scratch():  # what the systems and Ray of killed jobs left in TMPDIR
            log.info("worker %s: removed %d scratch directories of processes that are gone", worker_id, removed)
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
