"""Body size limit: the ASGI middleware alone (lying headers) and through a real server (chunked too); the
body deadline's middleware alone (tests/app/test_connection_limits.py drives it through a real server)."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import Iterator, MutableMapping
from typing import Any
from urllib.parse import urlparse

import httpx
import pytest

from app.limits import BodyDeadline, BodySizeLimit
from tests.app.apiharness import Server, make_spec, start_thread_server

LIMIT = 4096


# ---- the middleware alone -----------------------------------------------------------------------


def _call(middleware_limit: int, chunks: list[bytes], headers: list[tuple[bytes, bytes]]) -> dict[str, Any]:
    """Run the middleware over one request; report the status sent and what the app saw."""
    seen: dict[str, Any] = {"app_called": False, "pulled": 0}
    sent: list[MutableMapping[str, Any]] = []
    messages = [{"type": "http.request", "body": c, "more_body": i < len(chunks) - 1}
                for i, c in enumerate(chunks)]

    async def receive() -> dict[str, Any]:
        seen["pulled"] += 1
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def send(message: MutableMapping[str, Any]) -> None:
        sent.append(message)

    async def app(scope: Any, recv: Any, snd: Any) -> None:
        seen["app_called"] = True
        body = b""
        while True:
            msg = await recv()
            body += msg.get("body", b"")
            if not msg.get("more_body"):
                break
        seen["body"] = body
        await snd({"type": "http.response.start", "status": 200, "headers": []})
        await snd({"type": "http.response.body", "body": b"ok"})

    scope = {"type": "http", "method": "POST", "path": "/", "headers": headers}
    asyncio.run(BodySizeLimit(app, middleware_limit)(scope, receive, send))
    seen["status"] = sent[0]["status"] if sent else None
    seen["sent"] = sent
    return seen


def test_under_limit_passes_body_through() -> None:
    out = _call(10, [b"abc", b"defg"], [])
    assert out["status"] == 200 and out["body"] == b"abcdefg"


def test_declared_length_over_limit_rejected_unread() -> None:
    out = _call(10, [b"x" * 50], [(b"content-length", b"50")])
    assert out["status"] == 413 and not out["app_called"] and out["pulled"] == 0
    assert "10 bytes" in json.loads(out["sent"][1]["body"])["detail"]


def test_lying_content_length_still_counted() -> None:
    out = _call(10, [b"x" * 6, b"x" * 6, b"x" * 6], [(b"content-length", b"5")])
    assert out["status"] == 413 and not out["app_called"]
    assert out["pulled"] == 2  # stopped at the chunk that crossed the limit


def test_no_content_length_counted() -> None:
    out = _call(10, [b"x" * 8, b"x" * 8], [])
    assert out["status"] == 413 and not out["app_called"]


def test_exactly_at_limit_passes() -> None:
    assert _call(10, [b"x" * 10], [])["status"] == 200


def _deadline(seconds: float, receive: Any, app_reads: int) -> list[MutableMapping[str, Any]]:
    """Run BodyDeadline over an app that reads `app_reads` messages, then answers 200; return what was sent."""
    sent: list[MutableMapping[str, Any]] = []

    async def send(message: MutableMapping[str, Any]) -> None:
        sent.append(message)

    async def app(scope: Any, recv: Any, snd: Any) -> None:
        for _ in range(app_reads):
            await recv()
        await snd({"type": "http.response.start", "status": 200, "headers": []})
        await snd({"type": "http.response.body", "body": b"ok"})

    scope = {"type": "http", "method": "POST", "path": "/", "headers": []}
    asyncio.run(BodyDeadline(app, seconds)(scope, receive, send))
    return sent


def test_a_stalled_body_gets_408_and_nothing_the_app_sends_after() -> None:
    async def stalled() -> dict[str, Any]:
        await asyncio.sleep(60)
        raise AssertionError("the deadline did not stop the read")

    sent = _deadline(0.05, stalled, app_reads=1)
    assert [m["status"] for m in sent if m["type"] == "http.response.start"] == [408]
    assert (b"connection", b"close") in sent[0]["headers"]
    assert json.loads(sent[1]["body"]) == {"detail": "request body not received within 0.05 s"}


def test_reads_after_the_body_have_no_deadline() -> None:
    """A wait for the client to disconnect, once the body is in (as a streamed response does), is not cut."""
    messages = [{"type": "http.request", "body": b"{}", "more_body": False}]

    async def receive() -> dict[str, Any]:
        if messages:
            return messages.pop(0)
        await asyncio.sleep(0.3)  # past the deadline
        return {"type": "http.disconnect"}

    sent = _deadline(0.05, receive, app_reads=2)
    assert [m["status"] for m in sent if m["type"] == "http.response.start"] == [200]


# ---- through a real server ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def small_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = start_thread_server(tmp_path_factory.mktemp("api-small"), max_body_bytes=LIMIT)
    yield srv
    srv.stop()


def _padded_spec(size: int) -> bytes:
    spec = make_spec("x" * 10)
    raw = json.dumps(spec).encode()
    return raw[:-1] + b" " * (size - len(raw)) + b"}"  # whitespace keeps it valid JSON


def test_small_body_accepted(small_server: Server) -> None:
    with small_server.client() as c:
        r = c.post("/experiments", content=_padded_spec(LIMIT), headers={"content-type": "application/json"})
    assert r.status_code == 202, r.text


def test_large_body_413(small_server: Server) -> None:
    with small_server.client() as c:
        r = c.post("/experiments", content=_padded_spec(LIMIT + 1), headers={"content-type": "application/json"})
    assert r.status_code == 413
    assert r.json() == {"detail": f"request body exceeds the limit of {LIMIT} bytes"}


def test_chunked_body_without_length_413(small_server: Server) -> None:
    def chunks() -> Iterator[bytes]:
        for _ in range(64):
            yield b" " * 256

    with small_server.client() as c:
        r = c.post("/indexes/abc/search", content=chunks(), headers={"content-type": "application/json"})
    assert r.status_code == 413


def test_declared_huge_body_rejected_before_sending(small_server: Server) -> None:
    """A raw request announcing 1 GB gets its 413 without the server waiting for the body."""
    url = urlparse(small_server.url)
    with socket.create_connection((url.hostname, url.port), timeout=10) as s:
        s.sendall(b"POST /experiments HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  b"Content-Length: 1000000000\r\n\r\n{")
        reply = s.recv(4096).decode()
    assert reply.startswith("HTTP/1.1 413"), reply


def test_get_requests_unaffected(small_server: Server) -> None:
    assert httpx.get(f"{small_server.url}/health").status_code == 200
