"""Limits on connections and request bodies: a body's size and the time it may take to arrive as pure
ASGI middlewares (FastAPI and Starlette have neither), and the server's own limits for uvicorn.

The body is counted as it arrives, whatever Content-Length says (absent with chunked encoding, or
wrong), and reading stops at the first byte over the limit. The app then receives the buffered body
in one message; FastAPI reads the whole body into memory before parsing anyway.

uvicorn (0.55, with httptools or h11) times out only idle keep-alive connections, between requests: a
client that sends headers and part of a body, then stalls, holds its connection and its task for ever.
BodyDeadline answers such a request 408 and closes the connection. A client that stalls inside its
headers never reaches the app: in `indexer serve`, app/http_protocol.py answers it 408 and closes it.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from indexer.settings import ServerLimits

log = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
__all__ = ["BodyDeadline", "BodySizeLimit", "ServerLimits"]


class BodySizeLimit:
    """Answer 413 with a JSON message before reading more than `max_body_bytes` of a request body."""

    def __init__(self, app: ASGIApp, max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.max_body_bytes:
            await self._reject(send, declared)
            return
        chunks: list[bytes] = []
        total = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return  # the client left; nobody to answer
            body = message.get("body", b"")
            total += len(body)
            if total > self.max_body_bytes:
                await self._reject(send, total)
                return
            chunks.append(body)
            if not message.get("more_body", False):
                break
        await self.app(scope, _replay(b"".join(chunks), receive), send)

    async def _reject(self, send: Send, seen: int) -> None:
        log.info("rejected a request body of at least %d bytes (limit %d)", seen, self.max_body_bytes)
        await _refuse(send, 413, f"request body exceeds the limit of {self.max_body_bytes} bytes")


class BodyDeadline:
    """Answer 408 with a JSON message when a request body has not arrived in full `seconds` after its
    headers, and close the connection.

    The app then hears a disconnect, and whatever it sends is dropped. Once the body is in, later reads
    (a wait for the client to disconnect) have no deadline.
    """

    def __init__(self, app: ASGIApp, seconds: float) -> None:
        self.app = app
        self.seconds = seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        deadline = asyncio.get_running_loop().time() + self.seconds
        body_read = timed_out = False

        async def receive_in_time() -> Message:
            nonlocal body_read, timed_out
            if body_read or timed_out:
                return await receive()
            try:
                async with asyncio.timeout_at(deadline):
                    message = await receive()
            except TimeoutError:
                timed_out = True
                log.info("%s %s: request body not received within %g s", scope["method"], scope["path"],
                         self.seconds)
                await _refuse(send, 408, f"request body not received within {self.seconds:g} s")
                return {"type": "http.disconnect"}
            body_read = message["type"] != "http.request" or not message.get("more_body", False)
            return message

        async def send_unless_timed_out(message: Message) -> None:
            if not timed_out:
                await send(message)

        await self.app(scope, receive_in_time, send_unless_timed_out)


async def _refuse(send: Send, status: int, detail: str) -> None:
    """A JSON error that closes the connection: the rest of the body is never read, so it cannot be reused."""
    payload = json.dumps({"detail": detail}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(payload)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": payload})


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", []):
        if name.lower() == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None  # the server rejects a malformed header; counting still applies
    return None


def _replay(body: bytes, receive: Receive) -> Receive:
    """Hand the buffered body over once, then defer to the server (e.g. to hear a disconnect)."""
    sent = False

    async def replayed() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replayed
