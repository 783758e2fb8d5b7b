"""Atomic files and staged directories: complete or absent, never half-written."""

from __future__ import annotations

import os
import time

import numpy as np
import pytest

from indexer.common import fileio
from indexer.common.fileio import (
    atomic_save_npy,
    atomic_write,
    fsync_dir,
    sha256_file,
    staged_dir,
    staging_path,
    sweep_orphans,
    write_durable,
)


def test_staged_dir_appears_only_when_complete(tmp_path):
    final = tmp_path / "cell"
    with staged_dir(final) as tmp:
        (tmp / "a.txt").write_text("x")
        assert not final.exists()
    assert (final / "a.txt").read_text() == "x"
    assert [p.name for p in tmp_path.iterdir()] == ["cell"]


def test_staged_dir_is_removed_on_error(tmp_path):
    final = tmp_path / "cell"
    with pytest.raises(KeyboardInterrupt), staged_dir(final) as tmp:
        (tmp / "a.txt").write_text("x")
        raise KeyboardInterrupt
    assert list(tmp_path.iterdir()) == []


def test_a_concurrent_finisher_wins_and_ours_is_dropped(tmp_path):
    final = tmp_path / "cell"
    with staged_dir(final) as tmp:
        (tmp / "mine").write_text("mine")
        final.mkdir()
        (final / "theirs").write_text("theirs")
    assert [p.name for p in final.iterdir()] == ["theirs"] and len(list(tmp_path.iterdir())) == 1


def test_unowned_staging_entries_of_earlier_versions_go_after_a_day(tmp_path):
    old, young, kept = tmp_path / ".a.1.tmp", tmp_path / ".b.partial-x1", tmp_path / "done"
    for p in (old, young, kept):
        p.mkdir()
    past = time.time() - 3 * 24 * 3600
    os.utime(old, (past, past))
    assert sweep_orphans(tmp_path) == 1
    assert not old.exists() and young.exists() and kept.exists()


_LEAVE_STAGING = """
import os, signal, sys
from pathlib import Path
from indexer.common.fileio import staging_path
root = Path(sys.argv[1])
staging_path(root / "cell").mkdir()
staging_path(root / "report", "partial").mkdir()
(staging_path(root / "gt.npz")).write_bytes(b"half")
if sys.argv[2] == "kill":
    os.kill(os.getpid(), signal.SIGKILL)
"""


def _leave_staging(root, how: str) -> None:
    import subprocess
    import sys

    subprocess.run([sys.executable, "-c", _LEAVE_STAGING, str(root), how], check=False, timeout=60)


def test_entries_of_a_killed_process_are_swept_at_once_and_live_ones_kept(tmp_path):
    _leave_staging(tmp_path, "kill")
    left = sorted(p.name for p in tmp_path.iterdir())
    assert len(left) == 3 and all(name.startswith((".cell.~", ".report.~", ".gt.npz.~")) for name in left)
    mine = staging_path(tmp_path / "other")
    mine.mkdir()  # this process is alive: its entry stays
    assert sweep_orphans(tmp_path) == 3
    assert [p.name for p in tmp_path.iterdir()] == [mine.name]


def test_a_normal_exit_removes_its_own_staging_entries(tmp_path):
    _leave_staging(tmp_path, "exit")
    assert list(tmp_path.iterdir()) == []


def test_another_hosts_entries_wait_a_day(tmp_path):
    young = tmp_path / ".cell.~elsewhere~123~456~abcd1234.tmp"
    old = tmp_path / ".cell2.~elsewhere~123~456~abcd1234.tmp"
    young.mkdir()
    old.mkdir()
    past = time.time() - 3 * 24 * 3600
    os.utime(old, (past, past))
    assert sweep_orphans(tmp_path) == 1 and young.exists() and not old.exists()


def test_atomic_npy_round_trip_and_checksum(tmp_path):
    import hashlib

    arr = np.arange(12, dtype=np.int64).reshape(3, 4)
    atomic_save_npy(tmp_path / "a.npy", arr)
    assert np.array_equal(np.load(tmp_path / "a.npy"), arr)
    assert sha256_file(tmp_path / "a.npy") == hashlib.sha256((tmp_path / "a.npy").read_bytes()).hexdigest()
    assert [p.name for p in tmp_path.iterdir()] == ["a.npy"]


def _recording_fsync(monkeypatch, fail: bool = False) -> list[str]:
    """Replace os.fsync with one that records what it was given (and refuses when `fail`)."""
    synced: list[str] = []
    real = os.fsync

    def fsync(fd: int) -> None:
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        if fail:
            raise OSError("fsync refused")
        real(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    return synced


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_write_durable_replaces_the_content_and_syncs_the_file(tmp_path, monkeypatch):
    target = tmp_path / "report.md"
    target.write_bytes(b"an older, longer content")
    synced = _recording_fsync(monkeypatch)
    write_durable(target, "ünïcode\n".encode())
    assert target.read_bytes() == "ünïcode\n".encode()
    assert synced == [str(target)]
    assert [p.name for p in tmp_path.iterdir()] == ["report.md"]  # in place: no staging sibling


def test_fsync_dir_syncs_the_directory_and_closes_it(tmp_path, monkeypatch):
    synced = _recording_fsync(monkeypatch)
    before = _open_fds()
    fsync_dir(tmp_path)
    assert synced == [str(tmp_path)] and _open_fds() == before


def test_fsync_dir_tolerates_a_refusing_filesystem_and_a_missing_directory(tmp_path, monkeypatch):
    synced = _recording_fsync(monkeypatch, fail=True)
    before = _open_fds()
    fsync_dir(tmp_path)  # refused: not fatal, and the descriptor is still closed
    fsync_dir(tmp_path / "absent")
    assert synced == [str(tmp_path)] and _open_fds() == before


def test_atomic_write_syncs_the_file_then_its_directory(tmp_path, monkeypatch):
    synced = _recording_fsync(monkeypatch)
    dirs: list[str] = []
    real = fileio.fsync_dir
    monkeypatch.setattr(fileio, "fsync_dir", lambda p: (dirs.append(str(p)), real(p)))
    atomic_write(tmp_path / "sub" / "a.bin", lambda f: f.write(b"abc"))
    assert (tmp_path / "sub" / "a.bin").read_bytes() == b"abc"
    assert dirs == [str(tmp_path / "sub")]
    assert len(synced) == 2 and synced[-1] == str(tmp_path / "sub")  # the staged file, then the rename
