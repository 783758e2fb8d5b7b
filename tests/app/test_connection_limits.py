"""Connections are bounded in time and number: `indexer serve`, as deployed, with short limits, driven
over raw sockets (app/limits.py ServerLimits).

A stalled request body is answered 408 and closed, an idle keep-alive connection is closed, and
connections past the limit are answered 503.
"""

from __future__ import annotations

import contextlib
import json
import socket
import time
from collections.abc import Iterator
from urllib.parse import urlparse

import httpx
import pytest

from tests.app.apiharness import Server, start_server

BODY_TIMEOUT = 1.0
KEEP_ALIVE = 1
MAX_CONNECTIONS = 20
STALLED = 12  # under MAX_CONNECTIONS: every one reaches the app
SLACK = 3.0  # a loaded machine's scheduling, on top of a stated timeout
CLIENT_WAIT = BODY_TIMEOUT + 10.0  # how long a client waits for the server before the test fails


@pytest.fixture(scope="module")
def limited(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = start_server(
        tmp_path_factory.mktemp("api-connection-limits"), cli=True, body_timeout_seconds=str(BODY_TIMEOUT),
        keep_alive_seconds=str(KEEP_ALIVE), max_connections=str(MAX_CONNECTIONS),
    )
    yield srv
    srv.stop()


def _connect(server: Server) -> socket.socket:
    url = urlparse(server.url)
    assert url.hostname and url.port
    sock = socket.create_connection((url.hostname, url.port), timeout=CLIENT_WAIT)
    return sock


def _read_until_closed(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection (a socket timeout fails the test)."""
    received = b""
    while chunk := sock.recv(65536):
        received += chunk
    return received


def test_stalled_bodies_are_cut_off_within_the_timeout(limited: Server) -> None:
    """Each client sends headers and 10 of the 1,000 bytes it announced, then stalls."""
    with contextlib.ExitStack() as stack:
        socks = [stack.enter_context(_connect(limited)) for _ in range(STALLED)]
        for sock in socks:
            sock.sendall(b"POST /indexes/abc/search HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                         b"Content-Length: 1000\r\n\r\n" + b'{"vectors"')
        started = time.monotonic()
        replies = [_read_until_closed(sock) for sock in socks]
        elapsed = time.monotonic() - started
    for reply in replies:
        head, _, body = reply.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 408"), reply[:300]
        assert json.loads(body) == {"detail": f"request body not received within {BODY_TIMEOUT:g} s"}
    assert elapsed < BODY_TIMEOUT + SLACK, f"the last stalled body was cut off after {elapsed:.1f} s"


def test_a_slow_but_steady_body_is_cut_off_too(limited: Server) -> None:
    """The deadline covers the whole body: a byte every 0.2 s does not keep the connection."""
    with _connect(limited) as sock:
        sock.sendall(b"POST /experiments HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     b"Content-Length: 1000\r\n\r\n")
        started = time.monotonic()
        with contextlib.suppress(OSError):  # the server closes the connection while we write
            while time.monotonic() - started < BODY_TIMEOUT + SLACK:
                sock.sendall(b" ")
                time.sleep(0.2)
        reply = _read_until_closed(sock)
    assert reply.startswith(b"HTTP/1.1 408"), reply[:300]


def _read_response(sock: socket.socket) -> bytes:
    """One whole response with a Content-Length, leaving the connection open."""
    received = b""
    while b"\r\n\r\n" not in received:
        received += sock.recv(65536)
    head, _, body = received.partition(b"\r\n\r\n")
    length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:"))
    while len(body) < length:
        body += sock.recv(65536)
    return head + b"\r\n\r\n" + body


def test_an_idle_keep_alive_connection_is_closed(limited: Server) -> None:
    with _connect(limited) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        first = _read_response(sock)
        assert first.startswith(b"HTTP/1.1 200"), first[:300]
        started = time.monotonic()
        rest = _read_until_closed(sock)
        elapsed = time.monotonic() - started
    assert rest == b""
    assert elapsed < KEEP_ALIVE + SLACK, f"an idle connection was closed after {elapsed:.1f} s"


def test_connections_past_the_limit_are_answered_503(limited: Server) -> None:
    """Connections that never send a byte (they never reach the app) hold every place."""
    with contextlib.ExitStack() as stack:
        for _ in range(MAX_CONNECTIONS):
            stack.enter_context(_connect(limited))
        time.sleep(0.2)  # the server has accepted them
        assert httpx.get(f"{limited.url}/health", timeout=CLIENT_WAIT).status_code == 503
    deadline = time.monotonic() + CLIENT_WAIT
    while httpx.get(f"{limited.url}/health", timeout=CLIENT_WAIT).status_code != 200:
        assert time.monotonic() < deadline, "the server did not take connections again"
        time.sleep(0.1)
