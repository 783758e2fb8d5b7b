"""Liveness plus store reachability; the one route that never needs the API key."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from app.api.deps import StoreDep
from app.schemas import HealthOut

router = APIRouter(tags=["health"])


@router.get(
    "/health",
    response_model=HealthOut,
    responses={503: {"model": HealthOut, "description": "Up, but the store is unreachable"}},
)
def health(store: StoreDep) -> JSONResponse:
    """200 when the store answers, 503 otherwise, so compose healthchecks see a dead database."""
    reachable = store.ping()
    body = HealthOut(status="ok" if reachable else "degraded", store=reachable)
    return JSONResponse(status_code=200 if reachable else 503, content=body.model_dump())


