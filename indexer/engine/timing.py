"""The machine's timing lock: timed searches run with no other cell of any run building or timing.

With two cells at once on two cores, a search timed while the other cell builds measures the neighbour's
load, not the index (a 9x QPS spread across orderings at equal ef, once). So every cell takes this lock
shared while it builds and exclusively while it times its searches: builds still overlap one another
(each keeps one core for its one insertion thread), timed passes never overlap anything. The build
times of a run with several workers are still measured beside other builds; the report says so.

One lock file per machine (flock, released by the kernel when a process dies, so a killed cell never
leaves it held), shared by every executor's cells: the pool's processes, Ray tasks on this node, the
driver. Ray tasks on other nodes take their own node's lock.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

LOCK_ENV = "INDEXER_TIMING_LOCK"  # the lock file's path, for tests and for machines without a shared /tmp


def lock_path() -> Path:
    return Path(os.environ.get(LOCK_ENV) or Path(tempfile.gettempdir()) / "indexer-timing.lock")


@contextlib.contextmanager
def _held(mode: int) -> Iterator[None]:
    fd = os.open(lock_path(), os.O_RDWR | os.O_CREAT, 0o666)
    try:
        fcntl.flock(fd, mode)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def exclusive() -> contextlib.AbstractContextManager[None]:
    """Held while searches are timed: waits for every build and timing of other cells to end."""
    return _held(fcntl.LOCK_EX)


def shared() -> contextlib.AbstractContextManager[None]:
    """Held while a cell builds: other builds may run beside it, timed searches may not."""
    return _held(fcntl.LOCK_SH)
