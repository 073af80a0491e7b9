"""The FastAPI application of ``krtc-rec serve``: routes, authentication, limits, access log."""

from __future__ import annotations

import logging
import re
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request, Response

from orchestrator.async_producer import AsyncRecorder
from orchestrator.schedule import Scheduler
from orchestrator.settings import Settings
from orchestrator.state import SessionStore
from orchestrator.web import health, recordings, schedules
from orchestrator.web.auth import TokenAuth, parse_tokens
from orchestrator.web.body import MAX_BODY_BYTES
from orchestrator.web.docs import ASSETS_PATH, install_docs
from orchestrator.web.errors import ApiError, error_response, install_error_handlers

__all__ = ["MAX_BODY_BYTES", "PUBLIC_PATHS", "create_app"]

#: Paths that need no token: liveness, readiness and the API's own description (and the files
#: of its page, under ``ASSETS_PATH``).
PUBLIC_PATHS = frozenset({"/healthz", "/readyz", "/openapi.json", "/docs", "/docs/oauth2-redirect"})

access_log = logging.getLogger("orchestrator.web.access")
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


def create_app(
    settings: Settings, *, recorder: AsyncRecorder | None = None, tokens: list[str] | None = None
) -> FastAPI:
    """The HTTP API over ``recorder`` (default: one built from ``settings``).

    Args:
        settings: the configuration (``KRTC_API_TOKENS``, Redis).
        recorder: the async producer the endpoints call (closed when the app shuts down).
        tokens: the accepted bearer tokens (default: ``KRTC_API_TOKENS``); empty: no auth.
    """
    if tokens is None:
        secret = settings.api_tokens
        tokens = parse_tokens(secret.get_secret_value() if secret is not None else None)
    auth = TokenAuth(tokens)
    producer = recorder or AsyncRecorder(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        await producer.close()

    app = FastAPI(
        title="KRTC recording orchestrator",
        version="1",
        description=(
            "Start, stop and follow cloud recordings through the orchestrator's queue. "
            "Authenticate with `Authorization: Bearer <token>` (KRTC_API_TOKENS). Every error "
            'is `{"error": {"code", "message", "fields"}}`.'
        ),
        redoc_url=None,
        docs_url=None,
        lifespan=lifespan,
    )
    app.state.recorder = producer
    # Paging (a cursor over the sorted set) and readiness read through the sync store, in a
    # thread (orchestrator.state.pages); everything else is awaited on redis.asyncio.
    app.state.store = SessionStore.from_settings(settings)
    app.state.scheduler = Scheduler(settings)
    install_error_handlers(app)
    install_docs(app)
    app.include_router(recordings.router)
    app.include_router(schedules.router)
    app.include_router(health.router)

    @app.middleware("http")
    async def guard(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        given = request.headers.get("x-request-id", "")
        request_id = given if _REQUEST_ID.match(given) else uuid.uuid4().hex
        started = time.monotonic()
        response = await _guarded(request, call_next, auth)
        response.headers["X-Request-Id"] = request_id
        # Never the query string, a header or a body: tokens and request bodies stay out.
        access_log.info(
            "%s %s %s %d %.1fms",
            request_id,
            request.method,
            request.url.path,
            response.status_code,
            (time.monotonic() - started) * 1000,
        )
        return response

    return app


def _is_public(path: str) -> bool:
    return path in PUBLIC_PATHS or path.startswith(ASSETS_PATH + "/")


async def _guarded(
    request: Request, call_next: Callable[[Request], Awaitable[Response]], auth: TokenAuth
) -> Response:
    if not _is_public(request.url.path) and not auth.allows(request.headers.get("authorization")):
        return error_response(
            ApiError(
                401,
                "unauthorized",
                "a valid Authorization: Bearer <token> header is required",
                headers={"WWW-Authenticate": "Bearer"},
            )
        )
    length = request.headers.get("content-length", "")
    if length.isdigit() and int(length) > MAX_BODY_BYTES:
        return error_response(
            ApiError(413, "too_large", f"the body is larger than {MAX_BODY_BYTES} bytes")
        )
    return await call_next(request)
