"""``/healthz`` (the process answers) and ``/readyz`` (Redis answers, a worker was seen)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool

from orchestrator.errors import OrchestratorError
from orchestrator.state import SessionStore
from orchestrator.state.heartbeat import WorkerHeartbeats
from orchestrator.web.errors import ApiError

__all__ = ["router", "WORKER_SEEN_WITHIN_S"]

#: A worker counts as alive when its heartbeat is at most this old (Redis' clock).
WORKER_SEEN_WITHIN_S = 60.0

router = APIRouter(tags=["health"])


@router.get("/healthz", summary="The process answers")
async def healthz() -> dict[str, str]:
    """Always 200 while the process serves."""
    return {"status": "ok"}


@router.get("/readyz", summary="Ready to take recordings")
async def readyz(request: Request) -> dict[str, Any]:
    """200 when Redis answers and a worker beat in the last minute; 503 with the reason."""
    store: SessionStore = request.app.state.store

    def check() -> list[str]:
        store.ping()
        beats = WorkerHeartbeats(store.redis, store.keys)
        return beats.seen(WORKER_SEEN_WITHIN_S)

    try:
        workers = await run_in_threadpool(check)
    except OrchestratorError as exc:
        raise ApiError(503, "not_ready", f"Redis: {exc}", headers={"Retry-After": "5"}) from None
    if not workers:
        raise ApiError(
            503,
            "not_ready",
            f"no worker seen in the last {WORKER_SEEN_WITHIN_S:g}s: jobs would wait",
            headers={"Retry-After": "5"},
        )
    return {"status": "ready", "workers": workers}
