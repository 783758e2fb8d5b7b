"""One error shape for every 4xx and 503 ({"detail": "...", "errors"?: [...]}) and its OpenAPI description.

Validation errors become one readable sentence naming each bad field; the engine's UserError and
SpecError become 422 with their own message, never a 500; a store that cannot be reached is 503.
Every piece of the input echoed back is clipped and only the first problems are listed, so a hostile
body cannot make a huge response.
"""

from __future__ import annotations

import logging
from typing import Any

import sqlalchemy as sa
from fastapi import FastAPI, Request, status
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match, Mount

from app.schemas import ErrorBody
from indexer.common.errors import UserError
from indexer.engine.spec import MAX_REPORTED_PROBLEMS, clip, summarize_problems
from indexer.model.strict import error_message

log = logging.getLogger(__name__)

MAX_DETAIL_CHARS = 4000  # an engine message is bounded already; this guards against one that is not
MAX_LOC_PARTS = 16

_DESCRIPTIONS = {
    400: "Malformed request",
    401: "Missing or wrong X-API-Key (only when the server has an API key)",
    404: "Unknown id, or nothing to serve yet",
    409: "Conflicts with the resource's state: an index whose files cannot be opened (missing or failing "
    "their checksum), a cancel of a finished experiment, or a compare of one that has not succeeded",
    413: "Request body over the server's max_body_bytes",
    422: "Invalid input; `detail` names the field and the problem",
    503: "The store is unreachable or busy: retry later",
}

# The database cannot be reached (refused, dropped, timed out, locked): the client may retry; any
# other database error is a bug and stays a 500.
STORE_UNAVAILABLE = (sa.exc.OperationalError, sa.exc.InterfaceError, sa.exc.TimeoutError)

_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


def error_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """`responses=` for a route or router: documents the error body of each status code."""
    return {code: {"model": ErrorBody, "description": _DESCRIPTIONS[code]} for code in codes}


def _loc(error: Any) -> list[str | int]:
    """The error's location with every key clipped: a key can be any string the client sent."""
    loc = list(error.get("loc", ()))[:MAX_LOC_PARTS]
    return [p if isinstance(p, int) else clip(str(p)) for p in loc]


def _where(loc: list[str | int]) -> str:
    parts = [str(p) for p in loc]
    if parts and parts[0] == "body":
        parts = parts[1:]
    return clip(".".join(parts)) or "body"


def _sentence(error: Any) -> str:
    loc = _loc(error)
    if error.get("type") == "json_invalid":  # loc is ("body", character position)
        reason = clip(str((error.get("ctx") or {}).get("error", "")))
        where = f" at character {loc[1]}" if len(loc) > 1 else ""
        return f"body: not valid JSON{where}{f' ({reason})' if reason else ''}"
    return f"{_where(loc)}: {error_message(error)}"


def _problem(error: Any) -> dict[str, Any]:
    return {"loc": _loc(error), "msg": clip(str(error.get("msg", ""))), "type": clip(str(error.get("type", "")))}


def _validation_handler(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = exc.errors()
    shown = errors[:MAX_REPORTED_PROBLEMS]  # only these are looked at: the work stays small for any body
    detail = "invalid request: " + summarize_problems([_sentence(e) for e in shown], len(errors))
    return JSONResponse(status_code=status.HTTP_422_UNPROCESSABLE_CONTENT,
                        content={"detail": detail, "errors": [_problem(e) for e in shown]})


def _user_error_handler(request: Request, exc: Exception) -> JSONResponse:
    detail = clip(str(exc), MAX_DETAIL_CHARS)
    log.info("%s %s: %s", request.method, request.url.path, detail)
    return JSONResponse(status_code=status.HTTP_422_UNPROCESSABLE_CONTENT, content={"detail": detail})


STORE_RETRY_AFTER_SECONDS = 5  # a store restart or a busy SQLite lock usually clears within seconds


def _store_unavailable_handler(request: Request, exc: Exception) -> JSONResponse:
    # the driver's message names the database host: logged, never sent
    log.warning("%s %s: store unavailable: %s", request.method, request.url.path, clip(str(exc).split("\n", 1)[0]))
    return JSONResponse(status_code=status.HTTP_503_SERVICE_UNAVAILABLE,
                        content={"detail": "the store is unreachable or busy: retry later"},
                        headers={"Retry-After": str(STORE_RETRY_AFTER_SECONDS)})


async def _unparsable_body_handler(request: Request, exc: Exception) -> Response:
    """FastAPI answers 400 to a JSON body it cannot decode (not UTF-8) or that nests past Python's
    recursion limit: the same 422 as any other body that is not valid JSON. Other 400s are FastAPI's."""
    assert isinstance(exc, StarletteHTTPException)
    cause = exc.__cause__
    if not isinstance(cause, UnicodeDecodeError | RecursionError):
        return await http_exception_handler(request, exc)
    reason = "not UTF-8" if isinstance(cause, UnicodeDecodeError) else "nested too deeply"
    error = {"type": "json_invalid", "loc": ("body",), "msg": "JSON decode error", "ctx": {"error": reason}}
    return _validation_handler(request, RequestValidationError([error]))


def _method_not_allowed_handler(request: Request, exc: Exception) -> JSONResponse:
    """405 with every method the path takes in `Allow`: Starlette names only those of the first route
    that matched, and FastAPI makes one route per method. The router is asked for each method in turn;
    a mount takes any method, so a 405 from inside one (the docs' static files) keeps its own headers."""
    assert isinstance(exc, StarletteHTTPException)
    routes = [route for route in request.app.router.routes if not isinstance(route, Mount)]
    allowed = [method for method in _METHODS
               if any(route.matches({**request.scope, "method": method})[0] is Match.FULL for route in routes)]
    return JSONResponse(status_code=status.HTTP_405_METHOD_NOT_ALLOWED, content={"detail": "Method Not Allowed"},
                        headers={"Allow": ", ".join(allowed)} if allowed else exc.headers)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, _validation_handler)
    app.add_exception_handler(status.HTTP_400_BAD_REQUEST, _unparsable_body_handler)
    app.add_exception_handler(status.HTTP_405_METHOD_NOT_ALLOWED, _method_not_allowed_handler)
    for error in STORE_UNAVAILABLE:
        app.add_exception_handler(error, _store_unavailable_handler)
    app.add_exception_handler(UserError, _user_error_handler)
