"""One error shape for every 4xx ({"detail": "...", "errors"?: [...]}) and its OpenAPI description.

Validation errors become one readable sentence naming each bad field; the engine's UserError and
SpecError become 422 with their own message, never a 500.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from app.schemas import ErrorBody
from indexer.errors import UserError
from indexer.spec import SpecError

log = logging.getLogger(__name__)

_DESCRIPTIONS = {
    400: "Malformed request",
    401: "Missing or wrong X-API-Key (only when the server has an API key)",
    404: "Unknown id, or nothing to serve yet",
    409: "The index is recorded but its files cannot be opened (missing or failing their checksum)",
    413: "Request body over the server's max_body_bytes",
    422: "Invalid input; `detail` names the field and the problem",
    503: "The store is unreachable",
}


def error_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """`responses=` for a route or router: documents the error body of each status code."""
    return {code: {"model": ErrorBody, "description": _DESCRIPTIONS[code]} for code in codes}


def _where(loc: tuple[Any, ...]) -> str:
    parts = [str(p) for p in loc]
    if parts and parts[0] == "body":
        parts = parts[1:]
    return ".".join(parts) or "body"


def _sentence(error: Any) -> str:
    loc = tuple(error.get("loc", ()))
    if error.get("type") == "json_invalid":  # loc is ("body", character position)
        reason = (error.get("ctx") or {}).get("error", "")
        where = f" at character {loc[1]}" if len(loc) > 1 else ""
        return f"body: not valid JSON{where}{f' ({reason})' if reason else ''}"
    return f"{_where(loc)}: {error.get('msg', '')}"


def _validation_handler(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    problems = [
        {"loc": [p if isinstance(p, int) else str(p) for p in e.get("loc", ())],
         "msg": str(e.get("msg", "")), "type": str(e.get("type", ""))}
        for e in exc.errors()
    ]
    detail = "invalid request: " + "; ".join(_sentence(e) for e in exc.errors())
    return JSONResponse(status_code=status.HTTP_422_UNPROCESSABLE_CONTENT,
                        content={"detail": detail, "errors": problems})


def _user_error_handler(request: Request, exc: Exception) -> JSONResponse:
    log.info("%s %s: %s", request.method, request.url.path, exc)
    return JSONResponse(status_code=status.HTTP_422_UNPROCESSABLE_CONTENT, content={"detail": str(exc)})


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, _validation_handler)
    app.add_exception_handler(UserError, _user_error_handler)
    app.add_exception_handler(SpecError, _user_error_handler)
