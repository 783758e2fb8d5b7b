"""uvicorn's HTTP/1.1 protocol with the request head bounded, and the API's JSON error past the connection
limit. `indexer serve` runs uvicorn with `http="app.http_protocol:HttpProtocol"`.

uvicorn (0.55) times out only idle keep-alive connections, between requests: a client that opens a
connection and sends nothing, or part of a request head, holds its connection for ever, and with httptools
a head has no size limit either (a 200 MiB header line was read into memory and answered). Here:

- a head must be complete `header_timeout_seconds` (ServerLimits) after the connection opened or the head's
  first byte arrived: past it the client gets 408 and the connection is closed (closed without an answer
  when it sent nothing);
- with httptools, a head over h11's limit (16 KiB, `h11_max_incomplete_event_size`) is answered 431 and
  closed; h11 has that limit itself (and answers 400);
- past `limit_concurrency` (INDEXER_MAX_CONNECTIONS) the answer is 503 with {"detail": ...}, as every other
  error of the API, and Retry-After; uvicorn's own is plain text. The limit counts as its setting says:
  uvicorn refuses the limit-th connection, this the first one past it.

Once the head is in, app/limits.py's BodyDeadline bounds the time the body may take.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import logging
from typing import TYPE_CHECKING, Any

import h11
from h11._connection import DEFAULT_MAX_INCOMPLETE_EVENT_SIZE
from uvicorn.config import Config
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.server import ServerState

from indexer.settings import ServerLimits

log = logging.getLogger(__name__)
__all__ = ["H11WithLimits", "HttpProtocol"]


def _response(status: bytes, detail: str, server_state: ServerState, *extra: tuple[bytes, bytes]) -> bytes:
    """A whole JSON error response that closes the connection, as bytes for the transport."""
    body = json.dumps({"detail": detail}).encode()
    headers = [*server_state.default_headers, (b"content-type", b"application/json"),
               (b"content-length", str(len(body)).encode()), *extra, (b"connection", b"close")]
    return b"HTTP/1.1 " + status + b"\r\n" + b"".join(name + b": " + value + b"\r\n" for name, value in headers) \
        + b"\r\n" + body


class _Bounds:
    """The head deadline, the head size and the connection limit of one connection, for either protocol.

    The protocol calls `head_begins` when part of a head is in, `head_complete` when all of it is, and
    asks `app()` which application answers the request whose head is complete.
    """

    def __init__(self, protocol: Any, config: Config, head_timeout: float) -> None:
        self.protocol = protocol
        self.head_timeout = head_timeout
        self.max_head_bytes = config.h11_max_incomplete_event_size or DEFAULT_MAX_INCOMPLETE_EVENT_SIZE
        self.limit = config.limit_concurrency
        self.retry_after = str(config.timeout_keep_alive).encode()  # every idle connection is closed by then
        self.application = config.loaded_app
        self.timer: asyncio.TimerHandle | None = None
        self.head_bytes: int | None = None  # of the head in progress; None between requests
        self.heads = 0  # heads begun on this connection

    def arm(self) -> None:
        if self.timer is None:
            self.timer = self.protocol.loop.call_later(self.head_timeout, self._expired)

    def cancel(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None

    def head_begins(self) -> None:
        if self.head_bytes is None:
            self.head_bytes = 0
            self.heads += 1
        self.arm()

    def head_complete(self) -> None:
        self.head_bytes = None
        self.cancel()

    def head_too_large(self) -> bool:
        """Whether the head in progress is past the limit; if so it is answered 431 and the connection closed."""
        if self.head_bytes is None or self.head_bytes <= self.max_head_bytes:
            return False
        log.info("a request head over %d bytes: 431", self.max_head_bytes)
        self._close(b"431 Request Header Fields Too Large",
                    f"request head exceeds the limit of {self.max_head_bytes} bytes")
        return True

    def _expired(self) -> None:
        self.timer = None
        transport, cycle = self.protocol.transport, self.protocol.cycle
        if transport.is_closing():
            return
        if cycle is not None and not cycle.response_complete:  # a pipelined head waits for the response before
            self.arm()
            return
        if self.head_bytes is None:  # nothing sent since the connection opened
            transport.close()
            return
        log.info("request head not received within %g s: 408", self.head_timeout)
        self._close(b"408 Request Timeout", f"request head not received within {self.head_timeout:g} s")

    def _close(self, status: bytes, detail: str) -> None:
        self.cancel()
        self.protocol.transport.write(_response(status, detail, self.protocol.server_state))
        self.protocol.transport.close()

    def app(self) -> Any:
        """The app for the request whose head just completed: ours, or a 503 past the connection limit
        (this connection is among `connections`; its request is not yet among `tasks`)."""
        connections, tasks = self.protocol.connections, self.protocol.tasks
        if self.limit is None or (len(connections) <= self.limit and len(tasks) < self.limit):
            return self.application
        log.warning("past the limit of %d connections: 503", self.limit)
        return self._unavailable

    async def _unavailable(self, scope: Any, receive: Any, send: Any) -> None:
        body = json.dumps({"detail": f"the server is at its limit of {self.limit} connections: retry later"})
        await send({"type": "http.response.start", "status": 503, "headers": [
            (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
            (b"retry-after", self.retry_after), (b"connection", b"close")]})
        await send({"type": "http.response.body", "body": body.encode()})


if TYPE_CHECKING:  # the mixin's super() is one of uvicorn's protocols; mypy checks it against h11's
    _Protocol = H11Protocol
else:
    _Protocol = object


class _WithBounds(_Protocol):
    """What both protocols add: a head deadline armed from the connection's opening and cancelled with it,
    and the connection limit checked by _Bounds.app instead of uvicorn (whose own check is switched off)."""

    head_timeout = ServerLimits().header_timeout_seconds

    def __init__(self, config: Config, server_state: ServerState, app_state: dict[str, Any],
                 _loop: asyncio.AbstractEventLoop | None = None) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self.bounds = _Bounds(self, self.config, self.head_timeout)
        self.limit_concurrency = None  # uvicorn's check is off: _Bounds.app checks

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self.bounds.arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self.bounds.cancel()
        super().connection_lost(exc)


class H11WithLimits(_WithBounds, H11Protocol):
    """h11 bounds the head's size itself; h11 reads no further than the end of the request whose response is
    pending, so each call of handle_events starts at most one request."""

    def handle_events(self) -> None:
        self.app = self.bounds.app()
        super().handle_events()
        if self.conn.their_state is not h11.IDLE:
            self.bounds.head_complete()
        elif self.conn.trailing_data[0]:  # part of the next head
            self.bounds.head_begins()


if importlib.util.find_spec("httptools") is None:  # as uvicorn's "auto": httptools when it is installed
    HttpProtocol: type[asyncio.Protocol] = H11WithLimits
else:
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    class HttpToolsWithLimits(_WithBounds, HttpToolsProtocol):  # type: ignore[misc]
        def data_received(self, data: bytes) -> None:
            """Counts the bytes of a head that was in progress before this data and still is after it: a
            head that began inside this data is counted from the next, so it is refused at most one read
            (256 KiB) past the limit, and never for the body of the request before it."""
            before = self.bounds.heads if self.bounds.head_bytes is not None else None
            super().data_received(data)
            if self.bounds.head_bytes is not None and self.bounds.heads == before:
                self.bounds.head_bytes += len(data)
                self.bounds.head_too_large()

        def on_message_begin(self) -> None:
            super().on_message_begin()
            self.bounds.head_begins()

        def on_headers_complete(self) -> None:
            self.bounds.head_complete()
            self.app = self.bounds.app()
            super().on_headers_complete()

    HttpProtocol = HttpToolsWithLimits
