"""The machine's timing lock: timed searches run with no other cell of any run building or timing.

With two cells at once on two cores, a search timed while the other cell builds measures the neighbour's
load, not the index (a 9x QPS spread across orderings at equal ef, once). So every cell takes this lock
shared while it builds and exclusively while it times its searches: builds still overlap one another
(each keeps one core for its one insertion thread), timed passes never overlap anything.

A timed phase must not wait for a whole build elsewhere, though: that idled a core for most of a build
and held a 2-worker run to 0.65 of the machine's two-build ceiling. So a timer first takes a turnstile,
and a build passes through it between chunks of insertions (`pause_point`, called by
indexer.backends.base.chunks): when a timer is waiting, the build lets go of its shared lock, waits
until the timer is done, and goes on. A build's `paused` seconds are kept, so its build time leaves
them out. The build times of a run with several workers are still measured beside other builds; the
report says so.

Lock files per machine (flock, released by the kernel when a process dies, so a killed cell never leaves
one held), shared by every executor's cells: the pool's processes, Ray tasks on this node, the driver.
Ray tasks on other nodes take their own node's locks.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

LOCK_ENV = "INDEXER_TIMING_LOCK"  # the lock file's path, for tests and for machines without a shared /tmp


def lock_path() -> Path:
    return Path(os.environ.get(LOCK_ENV) or Path(tempfile.gettempdir()) / "indexer-timing.lock")


def _turnstile_path() -> Path:
    return lock_path().with_name(lock_path().name + ".turnstile")


def _open(path: Path) -> int:
    return os.open(path, os.O_RDWR | os.O_CREAT, 0o666)


@contextlib.contextmanager
def _held(path: Path, mode: int) -> Iterator[None]:
    fd = _open(path)
    try:
        fcntl.flock(fd, mode)
        yield
    finally:
        os.close(fd)  # closing releases the lock


@dataclass
class Build:
    """A build holding the shared lock in this process; `paused` counts the seconds it let timers run."""

    fd: int
    paused: float = 0.0


_current: Build | None = None  # one build at a time per process: a cell builds, then measures
_exclusive_depth = 0  # exclusive() nests: a cell takes it once around its whole ef sweep


@contextlib.contextmanager
def exclusive() -> Iterator[None]:
    """Held while searches are timed: builds elsewhere pause at their next chunk, timers take turns.

    Re-entrant within a process, so a cell can hold it across all its timed phases at once: each
    acquisition may wait up to a chunk of another cell's build, so fewer acquisitions idle fewer cores."""
    global _exclusive_depth
    if _exclusive_depth:
        _exclusive_depth += 1
        try:
            yield
        finally:
            _exclusive_depth -= 1
        return
    with _held(_turnstile_path(), fcntl.LOCK_EX), _held(lock_path(), fcntl.LOCK_EX):
        _exclusive_depth = 1
        try:
            yield
        finally:
            _exclusive_depth = 0


@contextlib.contextmanager
def shared() -> Iterator[Build]:
    """Held while a cell builds: other builds may run beside it, timed searches may not."""
    global _current
    _wait_for_timers()
    build = Build(fd=_open(lock_path()))
    try:
        fcntl.flock(build.fd, fcntl.LOCK_SH)
        _current = build
        yield build
    finally:
        _current = None
        os.close(build.fd)


def pause_point() -> None:
    """Between chunks of a build: when a timer waits, let it run first (no-op outside `shared`)."""
    build = _current
    if build is None or not _timer_waiting():
        return
    t0 = time.perf_counter()
    os.close(build.fd)  # the waiting timer can take the lock
    _wait_for_timers()
    build.fd = _open(lock_path())
    fcntl.flock(build.fd, fcntl.LOCK_SH)
    build.paused += time.perf_counter() - t0


def _timer_waiting() -> bool:
    fd = _open(_turnstile_path())
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        return False
    except BlockingIOError:
        return True
    finally:
        os.close(fd)


def _wait_for_timers() -> None:
    with _held(_turnstile_path(), fcntl.LOCK_SH):
        pass
