"""Files that are either complete or absent: every artifact the engine writes goes through here, and so do
the scratch directories in TMPDIR; both carry their owner, so what a killed process left is swept."""

from __future__ import annotations

import atexit
import contextlib
import functools
import hashlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
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


# Staging names carry their owner: `.{final}.~{host}~{pid}~{start}~{random}.{kind}`, so a sweep can
# tell a staging entry whose process is gone (remove it now) from one still being filled (leave it).
STAGING_KINDS = ("tmp", "partial", "old")
_STAGING = re.compile(r"^\..*\.~(?P<host>[^~/]*)~(?P<pid>\d+)~(?P<start>\d+)~[0-9a-f]+\.(?:tmp|partial|old)$")
_LEGACY = re.compile(r"^\..*(\.tmp|\.partial-\w+|\.old-\w+)$")  # unowned names of earlier versions
LEGACY_AGE_SECONDS = 24 * 3600  # unowned or another host's entries: removed only when this old
_mine: dict[Path, int] = {}  # staging entries this process made, with its pid


@functools.cache
def _host() -> str:
    return re.sub(r"[^A-Za-z0-9.-]", "-", socket.gethostname())[:64] or "host"


def _start_time(pid: int) -> int | None:
    """The process's start time in clock ticks since boot (/proc), which tells a reused pid apart."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return None
    return int(stat[stat.rindex(b")") + 2 :].split()[19])


def staging_path(final: Path, kind: str = "tmp") -> Path:
    """A hidden sibling of `final` named after this process, removed by `sweep_orphans` once it is gone."""
    assert kind in STAGING_KINDS
    pid = os.getpid()
    path = Path(final).with_name(f".{Path(final).name}.~{_host()}~{pid}~{_start_time(pid) or 0}~"
                                 f"{uuid.uuid4().hex[:8]}.{kind}")
    _mine[path] = pid
    return path


def _owner_gone(match: re.Match[str], host: str | None = None) -> bool | None:
    """True when the owner was a process on this host (`host`: as the name spells it) that has exited;
    None when it was elsewhere."""
    if match["host"] != (host or _host()):
        return None
    started = _start_time(int(match["pid"]))
    return started is None or started != int(match["start"])


def sweep_orphans(root: Path) -> int:
    """Remove staging entries under `root` left by processes that are gone (kill -9, power loss).

    An owner on this host is gone when its pid no longer runs (or runs a newer process); entries of
    other hosts (a shared data directory) and unowned ones from earlier versions go after a day.
    """
    root = Path(root)
    if not root.is_dir():
        return 0
    removed = 0
    now = time.time()
    for path in root.iterdir():
        if not path.name.startswith("."):
            continue
        owned = _STAGING.match(path.name)
        gone = _owner_gone(owned) if owned else None
        if gone is None:
            if not (owned or _LEGACY.match(path.name)):
                continue
            try:
                gone = now - path.lstat().st_mtime > LEGACY_AGE_SECONDS
            except OSError:
                continue
        if gone:
            _remove(path)
            removed += 1
    return removed


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


@atexit.register
def _remove_mine() -> None:
    """On a normal exit, whatever this process still had in staging goes with it."""
    for path, pid in list(_mine.items()):
        if pid == os.getpid() and (path.exists() or path.is_symlink()):  # a forked child keeps its parent's
            _remove(path)


# Scratch directories in TMPDIR (a deployed system's files, a Ray session, a Ray task's cell) carry their
# owner the same way: `{prefix}{host}~{pid}~{start}~{random}` (prefix: `indexer-chroma-`, ...), the host as
# 8 hex digits of its name's hash so that a Ray session's unix sockets still fit in 107 bytes below it.
# Their users remove them; `sweep_scratch` removes those whose owner was killed, and first stops what still
# runs in them (a postmaster, Ray's agents).
_SCRATCH = re.compile(r"^[A-Za-z0-9_.-]+-(?P<host>[0-9a-f]{8})~(?P<pid>\d+)~(?P<start>\d+)~[0-9a-f]{6}$")
STOP_GRACE_SECONDS = 1.0  # SIGTERM, then this long, then SIGKILL
# the watcher: waits for EOF on stdin (its owner closed the pipe or died), then removes the directory
_WATCH = ("import sys; sys.path.insert(0, sys.argv[2]); "
          "from indexer.common.fileio import _remove_at_eof; _remove_at_eof(sys.argv[1])")


@functools.cache
def _host_tag() -> str:
    return hashlib.sha256(_host().encode()).hexdigest()[:8]


def scratch_dir(prefix: str) -> Path:
    """A new private directory in TMPDIR named `prefix` (ending in `-`, as for mkdtemp) and this process, so
    that a kill -9 of this process leaves nothing that `sweep_scratch` cannot tell is orphaned."""
    assert prefix.endswith("-"), prefix
    pid = os.getpid()
    owner = f"{prefix}{_host_tag()}~{pid}~{_start_time(pid) or 0}~"
    while True:
        path = Path(tempfile.gettempdir()) / f"{owner}{uuid.uuid4().hex[:6]}"
        try:
            path.mkdir(mode=0o700)
            return path
        except FileExistsError:
            continue


def sweep_scratch(root: Path | None = None) -> int:
    """Remove the scratch directories in `root` (TMPDIR) whose owner on this host is gone, with whatever still
    runs in them; returns how many. A live owner's directory is never touched, nor another host's, nor any
    when /proc cannot tell owners apart. As root, directories a server left as `nobody` go too."""
    root = Path(root) if root is not None else Path(tempfile.gettempdir())
    if _start_time(os.getpid()) is None:
        return 0
    try:
        entries = list(root.iterdir())
    except OSError:
        return 0
    removed = 0
    for path in entries:
        owned = _SCRATCH.match(path.name)
        if owned and _owner_gone(owned, _host_tag()) and path.is_dir() and not path.is_symlink():
            remove_scratch(path)
            removed += not path.exists()  # another user's, when we are not root, stays
    return removed


def remove_scratch(path: Path) -> None:
    """Stop the processes that still work in `path` (their owner is gone or done with them), then remove it."""
    path = Path(path)
    if not path.is_dir() or path.is_symlink():
        return
    real = os.path.realpath(path)
    for sig in (signal.SIGTERM, signal.SIGKILL, signal.SIGKILL):
        pids = _working_in(real)
        if not pids:
            break
        for pid in pids:
            with contextlib.suppress(OSError):
                os.kill(pid, sig)
        deadline = time.monotonic() + STOP_GRACE_SECONDS
        while any(_running(p) for p in pids) and time.monotonic() < deadline:
            time.sleep(0.05)
    shutil.rmtree(path, ignore_errors=True)


def _working_in(directory: str) -> list[int]:
    """The processes (ours, and anyone's as root) whose working directory or an open file is inside
    `directory`: a server's log and data files, a Ray process's logs and sockets."""
    inside = directory.rstrip(os.sep) + os.sep
    found = []
    for pid in _pids():
        links = []
        with contextlib.suppress(OSError):
            links.append(os.readlink(f"/proc/{pid}/cwd"))
            for fd in os.listdir(f"/proc/{pid}/fd"):
                with contextlib.suppress(OSError):
                    links.append(os.readlink(f"/proc/{pid}/fd/{fd}"))
        if any(link == directory or link.startswith(inside) for link in links):
            found.append(pid)
    return found


def _pids() -> list[int]:
    try:
        return [int(name) for name in os.listdir("/proc") if name.isdigit() and int(name) != os.getpid()]
    except OSError:
        return []


def _running(pid: int) -> bool:
    """Whether `pid` still runs (a zombie has stopped: it only waits for its parent to read its status)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return False
    return stat[stat.rindex(b")") + 2:][:1] not in (b"Z", b"X")


def watch_scratch(path: Path) -> subprocess.Popen[bytes]:
    """A small process that removes `path` (stopping what works in it) once this process closes the returned
    process's stdin or dies, kill -9 included: the kernel closes the pipe either way. In a session of its
    own, so a Ctrl-C or a signal to our process group does not stop it first."""
    package_root = str(Path(__file__).resolve().parents[2])
    return subprocess.Popen([sys.executable, "-c", _WATCH, str(path), package_root], stdin=subprocess.PIPE,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)


def _remove_at_eof(path: str) -> None:
    while sys.stdin.buffer.read(1 << 16):
        pass
    remove_scratch(Path(path))


def atomic_write(path: Path, write: Callable[[BinaryIO], None]) -> None:
    """Write to a temp file in the same directory, fsync, rename over `path`, fsync the directory."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = staging_path(path)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    finally:
        _mine.pop(tmp, None)
    fsync_dir(path.parent)  # make the rename durable


def write_durable(path: Path, data: bytes) -> None:
    """Write `data` to `path` (created or truncated) and fsync it; not atomic by itself.

    For files inside a staging directory that is renamed into place whole (then `fsync_dir` it).
    """
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def fsync_dir(path: Path) -> None:
    """Make renames and new entries in directory `path` durable; a filesystem that refuses is not fatal."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def npy_file_of(arr: np.ndarray) -> Path | None:
    """The .npy file `arr` maps whole (np.load with mmap_mode), or None: a view of part of it, a copy,
    or an array in memory. Another process can then map that file instead of a second copy."""
    if not isinstance(arr, np.memmap) or arr.filename is None or not arr.flags.c_contiguous:
        return None
    path = Path(arr.filename)
    try:
        with open(path, "rb") as f:
            version = np.lib.format.read_magic(f)
            read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
            shape, fortran, dtype = read(f)
            offset = f.tell()
    except (OSError, ValueError):
        return None
    whole = arr.offset == offset and tuple(arr.shape) == tuple(shape) and arr.dtype == dtype and not fortran
    return path if whole else None


def atomic_write_bytes(path: Path, data: bytes) -> None:
    def write(f: BinaryIO) -> None:
        f.write(data)

    atomic_write(path, write)


def atomic_save_npy(path: Path, arr: np.ndarray) -> None:
    atomic_write(path, lambda f: np.save(f, arr, allow_pickle=False))


@contextlib.contextmanager
def staged_dir(final: Path, *, replace: bool = False) -> Iterator[Path]:
    """A hidden sibling directory to fill; renamed to `final` when the block ends without error.

    On any error (Ctrl-C included) the staging directory is removed, so only complete directories
    ever carry the final name. If another process renamed its own copy into place first, ours is
    dropped: both are complete and equivalent. With `replace`, ours takes the place of an existing
    `final` (moved aside first, then removed): a rerun that must not reuse it.
    """
    final = Path(final)
    tmp = staging_path(final)
    tmp.mkdir(parents=True)
    try:
        try:
            yield tmp
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        if replace and final.exists():
            old = staging_path(final)
            os.rename(final, old)
            shutil.rmtree(old, ignore_errors=True)
            _mine.pop(old, None)
        try:
            os.rename(tmp, final)
        except OSError:
            shutil.rmtree(tmp, ignore_errors=True)
            if not final.exists():
                raise
    finally:
        _mine.pop(tmp, None)
