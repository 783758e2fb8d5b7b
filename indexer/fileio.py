"""Files that are either complete or absent: every artifact the engine writes goes through here."""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO

import numpy as np


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def atomic_write(path: Path, write: Callable[[BinaryIO], None]) -> None:
    """Write to a temp file in the same directory, fsync, rename over `path`, fsync the directory."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    try:  # make the rename durable; not every filesystem allows fsync on a directory
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except OSError:
        pass


def atomic_save_npy(path: Path, arr: np.ndarray) -> None:
    atomic_write(path, lambda f: np.save(f, arr, allow_pickle=False))


@contextlib.contextmanager
def staged_dir(final: Path) -> Iterator[Path]:
    """A hidden sibling directory to fill; renamed to `final` when the block ends without error.

    On any error (Ctrl-C included) the staging directory is removed, so only complete directories
    ever carry the final name. If another process renamed its own copy into place first, ours is
    dropped: both are complete and equivalent.
    """
    final = Path(final)
    tmp = final.with_name(f".{final.name}.{uuid.uuid4().hex}.tmp")
    tmp.mkdir(parents=True)
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    try:
        os.rename(tmp, final)
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)
        if not final.exists():
            raise


def remove_stale_staging(root: Path, older_than_seconds: float = 24 * 3600) -> int:
    """Delete staging directories a killed process (kill -9, power loss) left under root.

    Young ones are left alone: another process may be filling them right now.
    """
    root = Path(root)
    if not root.is_dir():
        return 0
    now = time.time()
    removed = 0
    for path in root.glob(".*.tmp"):
        if path.is_dir() and now - path.stat().st_mtime > older_than_seconds:
            shutil.rmtree(path, ignore_errors=True)
            removed += 1
    return removed
