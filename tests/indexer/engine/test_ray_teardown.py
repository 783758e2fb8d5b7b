"""A Ray started by the run stops with its driver and leaves nothing in TMPDIR: its session lives in a scratch
directory of the driver's, removed by close(), by the watcher within seconds of a kill -9 of the driver
(Ray's dashboard and runtime-env agents would otherwise live on for a minute), and by the next sweep when
the watcher was killed too."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from indexer.common import fileio
from indexer.common.fileio import sweep_scratch
from tests.indexer.test_scratch_sweep import short_tmpdir, wait_until

pytest.importorskip("ray")

TEARDOWN_BOUND = 10.0  # seconds from the driver's kill -9 until no process of its Ray is left (measured: ~1.1)
# a run of two cells on a Ray of its own; with "hold", the driver waits (Ray up, a cell done) to be killed
DRIVER = """\
import sys, time
from pathlib import Path
from indexer.engine import runner
from indexer.engine.executors import ExecutorConfig
from indexer.engine.spec import parse_spec
spec = {"name": "r", "dataset": {"kind": "synthetic", "intrinsic_dims": [2, 4], "points_per_subspace": 200,
        "queries_per_subspace": 10, "ambient_dim": 8, "seed": 1}, "metric": "l2", "k": 5,
        "orderings": ["random", "category"], "seeds": [0], "lid": {"k": 5},
        "backends": [{"name": "hnswlib", "M": 8, "ef_construction": 32, "ef_search": [10]}]}
def progress(fraction, message):
    if sys.argv[2] == "hold" and ": 1 of 2 cells done" in message:
        print("HOLDING", flush=True)
        time.sleep(600)
runner.run(parse_spec(spec), cache_dir=Path(sys.argv[1]), progress=progress, executor=ExecutorConfig("ray", workers=2))
print("DONE", flush=True)
"""


@pytest.fixture
def tmpdir_of_our_own(monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    yield from short_tmpdir(monkeypatch)


def start_driver(cache: Path, mode: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-c", DRIVER, str(cache), mode], stdout=subprocess.PIPE, text=True)


def held_session(driver: subprocess.Popen[str], tmp: Path) -> Path:
    """Wait until the driver holds (a cell done, Ray up); its session's scratch directory."""
    assert driver.stdout is not None and driver.stdout.readline().strip() == "HOLDING"
    sessions = [p for p in tmp.iterdir() if p.name.startswith("ray-")]
    assert len(sessions) == 1 and any(p.name.startswith("session_") for p in sessions[0].iterdir()), sessions
    return sessions[0]


def names(pids: list[int]) -> list[str]:
    found = []
    for pid in pids:
        try:
            found.append(psutil.Process(pid).name())
        except psutil.Error:
            pass
    return sorted(found)


def running(pids: list[int]) -> list[int]:
    return [pid for pid in pids if fileio._running(pid)]


def test_ray_stops_with_its_killed_driver_and_its_session_goes(tmp_path: Path, tmpdir_of_our_own: Path) -> None:
    driver = start_driver(tmp_path / "cache", "hold")
    try:
        session = held_session(driver, tmpdir_of_our_own)
        ray_pids = fileio._working_in(str(session))
        started = names(ray_pids)
        assert {"raylet", "gcs_server"} <= set(started), started
    finally:
        os.kill(driver.pid, signal.SIGKILL)
        driver.wait()
    killed = time.monotonic()
    assert wait_until(lambda: not running(ray_pids) and not fileio._working_in(str(session)), TEARDOWN_BOUND), \
        names(running(ray_pids))
    took = time.monotonic() - killed
    assert wait_until(lambda: not session.exists(), 5)  # the watcher removed it
    print(f"\nRay processes of the session: {started}\nall gone {took:.2f} s after the driver's kill -9")
    assert sweep_scratch() == 0  # nothing left for the next run: the cells' scratch went with their tasks
    assert not [p.name for p in tmpdir_of_our_own.iterdir() if "~" in p.name]


def test_the_sweep_stops_and_removes_a_session_whose_watcher_was_killed_too(
        tmp_path: Path, tmpdir_of_our_own: Path) -> None:
    driver = start_driver(tmp_path / "cache", "hold")
    try:
        session = held_session(driver, tmpdir_of_our_own)
        watcher = [p for p in psutil.Process(driver.pid).children() if "_remove_at_eof" in " ".join(p.cmdline())]
        assert len(watcher) == 1
        watcher[0].kill()  # a zombie until the driver (its parent) goes
    finally:
        os.kill(driver.pid, signal.SIGKILL)
        driver.wait()
    time.sleep(1)
    lingering = names(fileio._working_in(str(session)))
    assert session.is_dir() and lingering  # Ray's agents outlive their raylet for a minute
    started = time.monotonic()
    assert sweep_scratch() >= 1  # the session, and a cell's scratch if a task was killed mid-cell
    print(f"\nleft after the driver and its watcher were killed: {lingering}; "
          f"the sweep stopped them and removed the session in {time.monotonic() - started:.2f} s")
    assert not session.exists() and not fileio._working_in(str(session))
    assert not [p.name for p in tmpdir_of_our_own.iterdir() if "~" in p.name]


def test_a_finished_run_leaves_no_session_and_no_process(tmp_path: Path, tmpdir_of_our_own: Path) -> None:
    driver = start_driver(tmp_path / "cache", "run")
    out, _ = driver.communicate(timeout=300)
    assert driver.returncode == 0 and out.strip() == "DONE"
    assert not [p.name for p in tmpdir_of_our_own.iterdir() if "~" in p.name]  # close() removed the session
    assert not fileio._working_in(str(tmpdir_of_our_own))
    assert not [p for p in psutil.process_iter(["cmdline"])
                if str(tmpdir_of_our_own) in " ".join(p.info["cmdline"] or [])]  # the watcher has gone too


def test_a_tmpdir_too_long_for_rays_sockets_leaves_ray_its_default(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    from indexer.engine.executors.ray_tasks import RayExecutor

    executor = object.__new__(RayExecutor)  # its session handling alone: no Ray is started
    executor.session, executor.watcher = None, None
    long = tmp_path / ("x" * 60)
    long.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(long))
    assert executor._own_session() == {} and executor.watcher is None
    assert list(long.iterdir()) == []


def test_the_session_directory_is_watched_and_removed_on_close(tmpdir_of_our_own: Path) -> None:
    from indexer.engine.executors.ray_tasks import RayExecutor

    executor = object.__new__(RayExecutor)
    executor.session, executor.watcher = None, None
    options = executor._own_session()
    session, watcher = Path(options["_temp_dir"]), executor.watcher
    assert session.is_dir() and session.parent == tmpdir_of_our_own and watcher is not None
    assert watcher.poll() is None  # waiting for our end of its pipe
    executor._remove_session()
    assert not session.exists() and watcher.returncode == 0
