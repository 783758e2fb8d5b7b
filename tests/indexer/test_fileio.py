"""Atomic files and staged directories: complete or absent, never half-written."""

from __future__ import annotations

import os
import time

import numpy as np
import pytest

from indexer.fileio import atomic_save_npy, remove_stale_staging, sha256_file, staged_dir


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


def test_only_old_staging_directories_are_swept(tmp_path):
    old, young, kept = tmp_path / ".a.1.tmp", tmp_path / ".b.2.tmp", tmp_path / "done"
    for p in (old, young, kept):
        p.mkdir()
    past = time.time() - 3 * 24 * 3600
    os.utime(old, (past, past))
    assert remove_stale_staging(tmp_path) == 1
    assert not old.exists() and young.exists() and kept.exists()


def test_atomic_npy_round_trip_and_checksum(tmp_path):
    import hashlib

    arr = np.arange(12, dtype=np.int64).reshape(3, 4)
    atomic_save_npy(tmp_path / "a.npy", arr)
    assert np.array_equal(np.load(tmp_path / "a.npy"), arr)
    assert sha256_file(tmp_path / "a.npy") == hashlib.sha256((tmp_path / "a.npy").read_bytes()).hexdigest()
    assert [p.name for p in tmp_path.iterdir()] == ["a.npy"]
