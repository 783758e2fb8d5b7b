"""Test harness for the API: real uvicorn servers in subprocesses and the tiny spec they run.

A module with a unique name (not conftest) so that test files can import it under any import mode.
"""

from __future__ import annotations

import contextlib
import copy
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from tests.pg import PG_URL, pg_schema_url  # noqa: F401  (re-exported for the app tests)

REPO = Path(__file__).resolve().parents[2]
STARTUP_SECONDS = 60.0
WORKER_SECONDS = 300.0  # a fresh venv compiles ranx with numba (about 35 s) inside the first text job

TINY_SPEC: dict[str, Any] = {
    "name": "api-tiny-synthetic",
    "dataset": {
        "kind": "synthetic", "intrinsic_dims": [2, 8], "points_per_subspace": 500,
        "queries_per_subspace": 10, "ambient_dim": 32,
    },
    "metric": "cosine",
    "k": 10,
    "backends": [{"name": "hnswlib", "M": 8, "ef_construction": 64, "ef_search": [10, 40]}, {"name": "exact"}],
}


def make_spec(spec_name: str, /, **changes: Any) -> dict[str, Any]:
    """TINY_SPEC renamed, with top-level fields replaced (a new seed makes a new job)."""
    spec = copy.deepcopy(TINY_SPEC)
    spec["name"] = spec_name
    spec.update(changes)
    return spec


@dataclass
class Server:
    url: str
    data_dir: Path
    env: dict[str, str]
    proc: subprocess.Popen[bytes] | None = None  # a subprocess server
    log: Path | None = None
    thread: ThreadServer | None = None  # or a server in a thread of this process

    def stop(self) -> None:
        if self.proc is not None:
            stop_server(self.proc)
        if self.thread is not None:
            self.thread.stop()

    def client(self, **kwargs: Any) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=30.0, **kwargs)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def server_env(data_dir: Path, **settings: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("INDEXER_")}
    env.update({"INDEXER_DATA_DIR": str(data_dir), "PYTHONPATH": str(REPO), "HNSWLIB_NO_NATIVE": "1"})
    env.update({f"INDEXER_{k.upper()}": v for k, v in settings.items()})
    return env


def start_server(data_dir: Path, *, cli: bool = False, **settings: str) -> Server:
    """Start `uvicorn app.main:app` (or, with `cli`, `indexer serve`, as deployed) and wait until /health
    answers."""
    data_dir.mkdir(parents=True, exist_ok=True)
    env = server_env(data_dir, **settings)
    log = data_dir / "server.log"
    for _ in range(3):  # the free port can be taken between probing and binding: retry
        port = _free_port()
        command = (["indexer.cli", "serve"] if cli else ["uvicorn", "app.main:app", "--log-level", "warning"])
        with log.open("wb") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", *command, "--host", "127.0.0.1", "--port", str(port)],
                cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT,
            )
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + STARTUP_SECONDS
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                if httpx.get(f"{url}/health", timeout=5.0).status_code == 200:
                    return Server(url=url, data_dir=data_dir, env=env, proc=proc, log=log)
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        stop_server(proc)
    raise RuntimeError(f"uvicorn did not come up:\n{log.read_text()[-4000:]}")


def stop_server(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@contextlib.contextmanager
def own_server(data_dir: Path) -> Iterator[Server]:
    """A real uvicorn with a data dir and queue of its own, stopped afterwards."""
    srv = start_server(data_dir)
    try:
        yield srv
    finally:
        srv.stop()


def run_worker_once(srv: Server) -> subprocess.CompletedProcess[str]:
    """The real worker in its own process, against the server's data dir and database."""
    return subprocess.run(
        [sys.executable, "-m", "indexer.cli", "worker", "--once", "--poll-seconds", "0.2"],
        cwd=REPO, env=srv.env, capture_output=True, text=True, timeout=WORKER_SECONDS,
    )


class ThreadServer:
    """uvicorn serving `create_app(settings)` in a thread, on a socket bound before it starts.

    Cheaper than a subprocess (the app is already imported) for servers that only differ in settings.
    """

    def __init__(self, data_dir: Path, **settings: Any) -> None:
        import uvicorn

        from app.main import create_app
        from indexer.settings import Settings

        self.settings = Settings(data_dir=data_dir, **settings)
        app = create_app(self.settings, configure_threads=False)
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.port = int(self.sock.getsockname()[1])
        self.server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)

    def start(self) -> str:
        self.thread.start()
        deadline = time.monotonic() + STARTUP_SECONDS
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("threaded uvicorn did not start")
            time.sleep(0.02)
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
        self.sock.close()


def start_thread_server(data_dir: Path, **settings: Any) -> Server:
    """A real uvicorn on 127.0.0.1 in this process, with its own settings and data dir."""
    data_dir.mkdir(parents=True, exist_ok=True)
    runner = ThreadServer(data_dir, **settings)
    url = runner.start()
    return Server(url=url, data_dir=data_dir, env=server_env(data_dir), thread=runner)




