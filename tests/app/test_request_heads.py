"""Request heads are bounded in time and size, and the connection limit answers in JSON: app/http_protocol.py
in a real uvicorn, driven over raw sockets, for both of uvicorn's HTTP/1.1 parsers (httptools as `indexer
serve` runs it when httptools is installed, h11 otherwise).

A head must be complete within the deadline, counted from the connection's opening or the head's first
byte: heads that stall, or trickle, are answered 408 and closed, connections that send nothing are closed,
however many (more than the connection limit) at once; a slow head that completes in time is answered. A
head past the size limit is refused. Exactly `max_connections` connections are served; the next is 503
with the API's JSON error and Retry-After.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlparse

import httpx
import pytest

from tests.app.apiharness import REPO, STARTUP_SECONDS, Server, server_env, start_server, stop_server

HEADER_TIMEOUT = 1.0
MAX_CONNECTIONS = 3
KEEP_ALIVE = 5  # the default: Retry-After
STALLED = 150  # heads that stall, 50 times the connection limit
SILENT = 50  # connections that never send a byte
SLACK = 3.0  # a loaded machine's scheduling, on top of a stated timeout
CLIENT_WAIT = HEADER_TIMEOUT + 10.0  # how long a client waits for the server before the test fails
MAX_HEAD = 16 * 1024  # h11's limit, which httptools gets too
SETTINGS = {"header_timeout_seconds": str(HEADER_TIMEOUT), "max_connections": str(MAX_CONNECTIONS),
            "keep_alive_seconds": str(KEEP_ALIVE)}

H11_SERVE = """\
import sys, uvicorn
from indexer.settings import ServerLimits
uvicorn.run("app.main:app", host="127.0.0.1", port=int(sys.argv[1]), log_level="info",
            http="app.http_protocol:H11WithLimits", **ServerLimits().uvicorn_options())
"""


def _start_h11(data_dir: Path) -> Server:
    """`indexer serve` as it runs without httptools: the same options, the h11 protocol."""
    data_dir.mkdir(parents=True, exist_ok=True)
    env = server_env(data_dir, **SETTINGS)
    log = data_dir / "server.log"
    for _ in range(3):  # the free port can be taken between probing and binding: retry
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        with log.open("wb") as out:
            proc = subprocess.Popen([sys.executable, "-c", H11_SERVE, str(port)], cwd=REPO, env=env, stdout=out,
                                    stderr=subprocess.STDOUT)
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + STARTUP_SECONDS
        while time.monotonic() < deadline and proc.poll() is None:
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{url}/health", timeout=5.0).status_code == 200:
                    return Server(url=url, data_dir=data_dir, env=env, proc=proc, log=log)
            time.sleep(0.1)
        stop_server(proc)
    raise RuntimeError(f"uvicorn did not come up:\n{log.read_text()[-4000:]}")


@pytest.fixture(scope="module", params=["httptools", "h11"])
def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    data_dir = tmp_path_factory.mktemp(f"api-heads-{request.param}")
    if request.param == "httptools":
        pytest.importorskip("httptools")
        srv = start_server(data_dir, cli=True, **SETTINGS)  # as deployed
    else:
        srv = _start_h11(data_dir)
    yield srv
    srv.stop()
    assert srv.log is not None
    log = srv.log.read_text()
    assert "Traceback" not in log, log[-4000:]


def _connect(server: Server) -> socket.socket:
    url = urlparse(server.url)
    assert url.hostname and url.port
    return socket.create_connection((url.hostname, url.port), timeout=CLIENT_WAIT)


def _read_until_closed(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection (a socket timeout fails the test)."""
    received = b""
    with contextlib.suppress(ConnectionResetError):
        while chunk := sock.recv(65536):
            received += chunk
    return received


def _open_fds(server: Server) -> int:
    assert server.proc is not None
    return len(os.listdir(f"/proc/{server.proc.pid}/fd"))


def _health_is(server: Server, status: int, within: float = CLIENT_WAIT) -> httpx.Response:
    """/health on a new connection until it answers `status` (fails after `within` seconds)."""
    deadline = time.monotonic() + within
    while True:
        response = httpx.get(f"{server.url}/health", timeout=CLIENT_WAIT)
        if response.status_code == status or time.monotonic() > deadline:
            return response
        time.sleep(0.05)


def _error(reply: bytes) -> tuple[bytes, dict[bytes, bytes], object]:
    head, _, body = reply.partition(b"\r\n\r\n")
    status, *lines = head.split(b"\r\n")
    headers = {name.strip().lower(): value.strip() for name, _, value in (line.partition(b":") for line in lines)}
    return status, headers, json.loads(body)


def test_a_stalled_head_is_answered_408_in_json(server: Server) -> None:
    """Our protocol serves (uvicorn's own never answers a stalled head): 408 in the API's error shape."""
    with _connect(server) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n")
        status, headers, body = _error(_read_until_closed(sock))
    assert status == b"HTTP/1.1 408 Request Timeout"
    assert headers[b"content-type"] == b"application/json" and headers[b"connection"] == b"close"
    assert body == {"detail": f"request head not received within {HEADER_TIMEOUT:g} s"}


def test_stalled_heads_past_the_connection_limit_are_all_closed_within_the_deadline(server: Server) -> None:
    """150 heads stopped before their blank line and 50 connections that send nothing, all at once (67 times the
    connection limit): every one is closed by the server within the deadline, the heads with 408 in JSON; the
    server holds their sockets meanwhile and none after, and then serves a request as before."""
    before = _open_fds(server)
    with contextlib.ExitStack() as stack:
        started = time.monotonic()
        heads = [stack.enter_context(_connect(server)) for _ in range(STALLED)]
        silent = [stack.enter_context(_connect(server)) for _ in range(SILENT)]
        for sock in heads:
            sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n")
        time.sleep(HEADER_TIMEOUT / 2)
        during = _open_fds(server)
        replies = [_read_until_closed(sock) for sock in heads]
        quiet = [_read_until_closed(sock) for sock in silent]
        elapsed = time.monotonic() - started
    assert during >= before + STALLED + SILENT  # they were all accepted and held
    for reply in replies:
        status, headers, body = _error(reply)
        assert status == b"HTTP/1.1 408 Request Timeout", reply[:300]
        assert body == {"detail": f"request head not received within {HEADER_TIMEOUT:g} s"}
    assert quiet == [b""] * SILENT  # nothing sent, nothing answered
    assert elapsed < HEADER_TIMEOUT + SLACK, f"the last stalled connection was closed after {elapsed:.1f} s"
    response = _health_is(server, 200, within=SLACK)
    assert response.status_code == 200, response.text
    deadline = time.monotonic() + SLACK
    while _open_fds(server) > before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _open_fds(server) <= before


def test_a_trickling_head_is_cut_off_at_the_deadline(server: Server) -> None:
    """The deadline covers the whole head: a byte every 0.05 s does not keep the connection."""
    with _connect(server) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n")
        started = time.monotonic()
        with contextlib.suppress(OSError):  # the server closes the connection while we write
            while time.monotonic() - started < HEADER_TIMEOUT + SLACK:
                sock.sendall(b"X")
                time.sleep(0.05)
        reply = _read_until_closed(sock)
        elapsed = time.monotonic() - started
    assert reply.startswith(b"HTTP/1.1 408"), reply[:300]
    assert elapsed < HEADER_TIMEOUT + SLACK


def test_a_slow_head_completed_within_the_deadline_is_answered(server: Server) -> None:
    """A head sent a few bytes at a time over 60% of the deadline is answered; so is the next head on the same
    keep-alive connection, whose own deadline starts at its first byte (it comes after the first's ran out)."""
    head = b"GET /health HTTP/1.1\r\nHost: x\r\nUser-Agent: slow\r\n\r\n"
    pieces = [head[i:i + 4] for i in range(0, len(head), 4)]
    with _connect(server) as sock:
        for _request in range(2):
            started = time.monotonic()
            for piece in pieces:
                sock.sendall(piece)
                time.sleep(0.6 * HEADER_TIMEOUT / len(pieces))
            assert time.monotonic() - started < HEADER_TIMEOUT
            reply = b""
            while b'"store"' not in reply:
                chunk = sock.recv(65536)
                assert chunk, f"closed after {reply[:300]!r}"
                reply += chunk
            assert reply.startswith(b"HTTP/1.1 200"), reply[:300]
            time.sleep(0.6 * HEADER_TIMEOUT)  # within keep-alive; the two heads span more than one deadline


def test_a_head_past_the_size_limit_is_refused(server: Server, request: pytest.FixtureRequest) -> None:
    """A head just under 16 KiB is answered; one that keeps growing is refused and closed after at most a few
    reads (h11 answers its own 400, httptools, which has no limit of its own, 431 in JSON)."""
    with _connect(server) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nX-Pad: " + b"a" * (MAX_HEAD - 100) + b"\r\n\r\n")
        reply = sock.recv(65536)
    assert reply.startswith(b"HTTP/1.1 200"), reply[:300]
    sent = 0
    with _connect(server) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nX-Pad: ")
        with contextlib.suppress(OSError):  # the server closes the connection while we write
            while sent < 64 * MAX_HEAD:  # 1 MiB
                sock.sendall(b"a" * 4096)
                sent += 4096
                time.sleep(0.001)
        reply = _read_until_closed(sock)
    assert sent < 64 * MAX_HEAD, "the server read a 1 MiB head"
    if "h11" in request.node.callspec.id:
        assert reply.startswith(b"HTTP/1.1 400"), reply[:300]
    else:
        status, headers, body = _error(reply)
        assert status == b"HTTP/1.1 431 Request Header Fields Too Large"
        assert body == {"detail": f"request head exceeds the limit of {MAX_HEAD} bytes"}


def _hold(server: Server) -> socket.socket:
    """A connection whose request is in the app, waiting for a body that never comes (BodyDeadline: 30 s)."""
    sock = _connect(server)
    sock.sendall(b"POST /experiments HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                 b"Content-Length: 100\r\n\r\n")
    return sock


def test_exactly_max_connections_are_served_and_the_next_gets_503_in_json(server: Server) -> None:
    """With max_connections - 1 requests held, one more is served (it is the max_connections-th: uvicorn itself
    would refuse it); with max_connections held, the next is 503 in the API's error shape, with Retry-After."""
    with contextlib.ExitStack() as stack:
        for _ in range(MAX_CONNECTIONS - 1):
            stack.enter_context(_hold(server))
        response = _health_is(server, 200)
        assert response.status_code == 200, response.text
        stack.enter_context(_hold(server))
        response = _health_is(server, 503)
        assert response.status_code == 503, response.text
        assert response.headers["content-type"] == "application/json"
        assert response.headers["retry-after"] == str(KEEP_ALIVE)
        assert response.headers["connection"] == "close"
        assert response.json() == {"detail": f"the server is at its limit of {MAX_CONNECTIONS} connections: "
                                              "retry later"}
    response = _health_is(server, 200)  # the held requests end with their connections
    assert response.status_code == 200, response.text
