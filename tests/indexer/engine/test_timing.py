"""The timing lock: a timed search waits for builds of other processes, builds overlap one another."""

from __future__ import annotations

import multiprocessing as mp
import time
from pathlib import Path

import pytest

from indexer.common import timing


def _hold(mode: str, seconds: float, path: str, ready: mp.synchronize.Event) -> None:  # type: ignore[name-defined]
    import os

    os.environ[timing.LOCK_ENV] = path
    with timing.shared() if mode == "shared" else timing.exclusive():
        ready.set()
        time.sleep(seconds)


@pytest.fixture
def lock(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    path = str(tmp_path / "timing.lock")
    monkeypatch.setenv(timing.LOCK_ENV, path)
    return path


def _in_other_process(mode: str, seconds: float, lock: str) -> mp.Process:
    ctx = mp.get_context("spawn")
    ready = ctx.Event()
    proc = ctx.Process(target=_hold, args=(mode, seconds, lock, ready))
    proc.start()
    assert ready.wait(30)
    return proc


def test_a_timed_search_waits_for_a_build_elsewhere(lock: str) -> None:
    proc = _in_other_process("shared", 1.5, lock)
    t0 = time.monotonic()
    with timing.exclusive():
        waited = time.monotonic() - t0
    proc.join()
    assert waited >= 1.0  # it did not time while the other process built


def test_builds_overlap_each_other(lock: str) -> None:
    proc = _in_other_process("shared", 1.5, lock)
    t0 = time.monotonic()
    with timing.shared():
        waited = time.monotonic() - t0
    proc.join()
    assert waited < 0.5


def test_a_killed_holder_releases_the_lock(lock: str) -> None:
    proc = _in_other_process("exclusive", 60, lock)
    proc.kill()
    proc.join()
    t0 = time.monotonic()
    with timing.exclusive():
        assert time.monotonic() - t0 < 2


def _build_in_chunks(path: str, chunks: int, seconds: float, ready: mp.synchronize.Event,  # type: ignore[name-defined]
                     out: mp.Queue) -> None:  # type: ignore[type-arg]
    import os

    os.environ[timing.LOCK_ENV] = path
    t0 = time.monotonic()
    with timing.shared() as build:
        ready.set()
        for _ in range(chunks):
            time.sleep(seconds)
            timing.pause_point()
    out.put((time.monotonic() - t0, build.paused))


def test_a_timer_waits_for_one_chunk_of_a_build_not_the_whole_build(lock: str) -> None:
    ctx = mp.get_context("spawn")
    ready, out = ctx.Event(), ctx.Queue()
    proc = ctx.Process(target=_build_in_chunks, args=(lock, 20, 0.2, ready, out))  # a 4 s build
    proc.start()
    assert ready.wait(30)
    t0 = time.monotonic()
    with timing.exclusive():
        waited = time.monotonic() - t0
        time.sleep(1.0)  # the timed passes: the build must not run meanwhile
    wall, paused = out.get(timeout=30)
    proc.join()
    assert waited < 1.0  # one chunk (0.2 s) and the hand-over, not the rest of the 4 s build
    assert paused >= 0.9  # the build stood still while the timer held the lock, and knows for how long
    assert wall >= 4.0 + 0.9


def test_pause_point_outside_a_build_does_nothing(lock: str) -> None:
    t0 = time.monotonic()
    with timing.exclusive():
        timing.pause_point()  # a timer's own process is not building: no wait, no deadlock
    assert time.monotonic() - t0 < 0.5
