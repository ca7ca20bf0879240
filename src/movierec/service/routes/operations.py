"""What operators and the kubelet ask: GET /healthz, /readyz, /metrics."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST

from movierec.service.routes import on_store
from movierec.service.schemas import Ready
from movierec.service.strict import StrictRoute

router = APIRouter(route_class=StrictRoute, tags=["operations"])


@router.get("/healthz")
async def healthz():
    """The process is alive (no dependency checked)."""
    return {"status": "ok"}


@router.get("/readyz", response_model=Ready, responses={503: {"model": Ready}})
async def readyz(request: Request):
    """Ready when the store is reachable and both collections hold data."""
    status = await on_store(request, "status", lambda s: s.status())
    body = Ready(
        status="ready" if status.ready else "not ready",
        store=request.app.state.store.kind,
        users=status.users,
        movies=status.movies,
        version=status.version,
        dataset=status.meta.dataset if status.meta else None,
        detail=status.detail or None,
        cluster=status.cluster,
    ).model_dump()
    return JSONResponse(body, status_code=200 if status.ready else 503)


@router.get("/metrics", response_class=PlainTextResponse)
async def prometheus(request: Request):
    return PlainTextResponse(await request.app.state.metrics.exposition(request.app.state.store),
                             media_type=CONTENT_TYPE_LATEST)
