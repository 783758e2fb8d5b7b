"""The job's child process: what runs one attempt of a job, away from the worker that supervises it.

A fresh interpreter ("spawn") imports this module and runs `child_main`: it runs the job's target with the
progress it sends to its parent through a pipe, exits when its parent is gone (code 70) or when the lease
the parent renews passes (code 71), and turns SIGTERM into ChildTerminated so `finally` blocks clean up.
The store (SQLAlchemy) is never imported here, to keep the child's start-up short. indexer.service.worker
describes the whole life of a job.
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
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any, Protocol

from indexer.common.errors import UserError
from indexer.common.logs import quiet_library_loggers

if TYPE_CHECKING:
    from indexer.engine.executors import ExecutorConfig
    from indexer.model.results import JobResult
    from indexer.settings import Settings

log = logging.getLogger(__name__)

Progress = Callable[[float, str], None]
ShouldStop = Callable[[], bool]

ORPHANED_EXIT = 70  # the child's worker is gone
LEASE_LAPSED_EXIT = 71  # the child's lease was not renewed in time
# Bad input: a retry would fail the same way. MemoryError covers numpy's _ArrayMemoryError.
USER_ERRORS: tuple[type[BaseException], ...] = (UserError, ValueError, TypeError, MemoryError)
CHILD_ENV = {"TQDM_DISABLE": "1", "HF_HUB_DISABLE_PROGRESS_BARS": "1"}  # no progress bars in the log


class JobTarget(Protocol):
    """What the child runs: a module-level function (it is pickled by reference into the child).

    Writes its report (if any) into `report_dir` (relative to data_dir; this attempt's own directory).
    Returns a JobResult: the rows and the index records (paths relative to data_dir) that Store.finish
    publishes. Raises UserError (or another of USER_ERRORS) for bad input; raises anything once
    `should_stop()` is true.
    """

    def __call__(
        self, spec_json: str, data_dir: str, report_dir: str, progress: Progress, should_stop: ShouldStop
    ) -> JobResult: ...


def execute_job(
    spec_json: str, data_dir: str, report_dir: str, progress: Progress, should_stop: ShouldStop
) -> JobResult:
    """The real job: run the experiment through the engine's one path, write its report."""
    from indexer.engine.spec import SpecError, parse_spec
    from indexer.model.results import JobResult
    from indexer.pipeline import run_and_report

    try:
        spec = parse_spec(json.loads(spec_json))
    except SpecError as err:  # validated at submit; a spec from an older version may no longer be
        raise UserError(str(err)) from None
    from indexer.settings import get_settings

    root = Path(data_dir).resolve()
    result = run_and_report(spec, cache_dir=root / "cache", out_dir=root / report_dir, progress=progress,
                            should_stop=should_stop, executor=_executor(get_settings()))
    indexes = []
    for record in result.indexes:
        assert record.path is not None, "the runner records where each cell lives"
        indexes.append(record.model_copy(update={"path": _relative_to(record.path, root)}))
    return JobResult(rows=result.rows, indexes=indexes)


def _relative_to(path: str | os.PathLike[str], root: Path) -> str:
    """A path under data_dir as relative to it (the data dir can move); any other path unchanged."""
    p = Path(path)
    try:
        return p.resolve().relative_to(root).as_posix()
    except ValueError:
        return str(p)


def attempt_report_dir(job_id: str, token: int) -> Path:
    """Where one attempt writes its report, relative to data_dir.

    The nonce keeps attempts apart even when a token recurs (after a release, or when a failed job is
    submitted again), so a stale worker tidying up its own directory never deletes its successor's.
    """
    return Path("reports") / job_id / f"attempt-{token}-{uuid.uuid4().hex[:8]}"


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
    if exitcode == LEASE_LAPSED_EXIT:
        return "worker child stopped itself: its lease was not renewed in time (worker paused or stalled)"
    if exitcode == ORPHANED_EXIT:
        return "worker child stopped itself: its worker was gone"
    return f"worker child exited with code {exitcode} without a result"


def is_user_error(exc: BaseException) -> bool:
    """Bad input, so the job fails at once. An OSError is the machine's (a full disk, a flaky mount)
    even when its class is also a ValueError, so it is retried."""
    return isinstance(exc, USER_ERRORS) and not isinstance(exc, OSError)


def user_error_message(exc: BaseException) -> str:
    """A UserError's own message; a library's error with its kind ("ValueError: ...")."""
    if isinstance(exc, UserError):
        return str(exc)
    kind = "MemoryError" if isinstance(exc, MemoryError) else type(exc).__name__  # not _ArrayMemoryError
    return f"{kind}: {exc}" if str(exc) else kind


# -- the child ---------------------------------------------------------------------------------------


class ChildTerminated(BaseException):
    """Raised in the child by SIGTERM, so `finally` blocks and `except BaseException` clean-ups (staging
    directories) run. Not an Exception, so a library's `except Exception` cannot swallow it."""


def _raise_on_sigterm() -> None:
    def on_sigterm(_signum: int, _frame: FrameType | None) -> None:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # once: let the clean-ups finish; SIGKILL is the backstop
        raise ChildTerminated("worker child terminated (SIGTERM)")

    signal.signal(signal.SIGTERM, on_sigterm)


def _exit_with_parent() -> None:
    """An orphaned child exits: its worker is gone, so another worker will redo the job."""
    parent = mp.parent_process()
    if parent is None or parent.sentinel is None:
        return
    sentinel = parent.sentinel

    def watch() -> None:
        mp_connection.wait([sentinel])
        os._exit(ORPHANED_EXIT)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def _exit_when_lease_lapses(lease_deadline: Any) -> None:
    """Exit once the wall-clock time passes the lease the parent last renewed (a shared double).

    A parent that is paused or cannot reach the database stops renewing; its lease then expires and
    another worker may take the job, so this child must not go on computing (or writing) beside it.
    The parent's deadline is a little earlier than the store's, so the child is gone first.
    """

    def watch() -> None:
        while True:
            left = lease_deadline.value - time.time()
            if left <= 0:
                os.write(2, b"worker child: lease not renewed in time (worker paused or stalled); exiting\n")
                os._exit(LEASE_LAPSED_EXIT)
            time.sleep(min(left, 0.5))  # wakes at the deadline itself, not up to a period after it

    threading.Thread(target=watch, name="lease-watch", daemon=True).start()


def _is_cancelled(exc: BaseException) -> bool:
    runner = sys.modules.get("indexer.engine.runner")  # only if the target used the engine; no import here
    cancelled = getattr(runner, "Cancelled", None)
    return isinstance(cancelled, type) and isinstance(exc, cancelled)


def _outcome_of(exc: BaseException, stopping: bool) -> tuple[Any, ...]:
    """What the child tells the parent about the exception that ended its target."""
    if stopping or _is_cancelled(exc):
        return ("cancelled",)
    if isinstance(exc, ChildTerminated):  # SIGTERM from someone else than the worker (systemd, a user)
        return ("terminated",)
    if is_user_error(exc):
        return ("user_error", user_error_message(exc))
    log.error("job failed:\n%s", "".join(traceback.format_exception(exc)))
    return ("error", f"{type(exc).__name__}: {exc}")


def child_main(
    target: JobTarget, job_id: str, spec_json: str, data_dir: str, report_dir: str,
    conn: mp_connection.Connection, stop: Any, lease_deadline: Any,
) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole process group; the parent decides
    _raise_on_sigterm()
    _exit_with_parent()
    _exit_when_lease_lapses(lease_deadline)
    os.environ.update(CHILD_ENV)  # before the target imports tqdm or huggingface_hub, which read them once
    logging.basicConfig(level=logging.INFO, format=f"%(asctime)s %(levelname)s job {job_id}: %(message)s")
    quiet_library_loggers()

    def progress(fraction: float, message: str) -> None:
        conn.send(("progress", float(fraction), str(message)))

    try:
        result = target(spec_json, data_dir, report_dir, progress, stop.is_set)
        message: tuple[Any, ...] = ("result", result)
    except BaseException as exc:  # everything is reported; the parent settles the job
        message = _outcome_of(exc, stop.is_set())
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # the work is over; only the report to the parent is left
    try:
        conn.send(message)
    except Exception as exc:  # e.g. a result that does not pickle
        conn.send(("error", f"could not return the job's result: {type(exc).__name__}: {exc}"))
    conn.close()


def _executor(settings: Settings) -> ExecutorConfig:
    """Where this worker's jobs run their cells: INDEXER_EXECUTOR, INDEXER_WORKERS, INDEXER_RAY_ADDRESS."""
    from indexer.engine.executors import executor_config

    return executor_config(settings.executor, settings.workers, settings.ray_address)
