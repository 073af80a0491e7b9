"""One error body for every failure: ``{"error": {"code", "message", "fields"}}``.

``code`` is a stable word a client can branch on; ``message`` is for people; ``fields`` lists
``{"path", "message"}`` per broken field of invalid input (empty otherwise). Extra members say
more where it helps (``stored`` on a 503: whether anything was kept).
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError as FastApiValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from orchestrator.errors import OrchestratorError
from orchestrator.krtc.validation import FieldError, RequestValidationError
from orchestrator.producer import SessionFinishedError
from orchestrator.schedule.errors import ScheduleConflictError, ScheduleNotFoundError
from orchestrator.state import (
    IdempotencyKeyReusedError,
    SessionNotFoundError,
    StateUnavailableError,
    StoredNotQueuedError,
)

__all__ = ["ApiError", "error_response", "install_error_handlers", "RETRY_AFTER_S"]

#: Seconds a client is told to wait after a 503.
RETRY_AFTER_S = 5


class ApiError(Exception):
    """An error answer: status, code and message (and field errors, headers, extra members)."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        fields: list[FieldError] | None = None,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.fields = fields or []
        self.headers = headers or {}
        self.extra = extra


def error_response(error: ApiError) -> JSONResponse:
    """The JSON answer of ``error``."""
    body: dict[str, Any] = {
        "code": error.code,
        "message": error.message,
        "fields": [f.to_dict() for f in error.fields],
        **error.extra,
    }
    return JSONResponse({"error": body}, status_code=error.status, headers=error.headers)


def api_error(exc: OrchestratorError) -> ApiError:
    """The answer to an error of the producer API."""
    if isinstance(exc, RequestValidationError):
        return ApiError(
            422, "invalid_request", "the request breaks the API contract", fields=exc.errors
        )
    if isinstance(exc, SessionNotFoundError | ScheduleNotFoundError):
        return ApiError(404, "not_found", str(exc))
    if isinstance(exc, ScheduleConflictError):
        return ApiError(409, "conflict", str(exc))
    if isinstance(exc, SessionFinishedError):
        return ApiError(409, "finished", str(exc), phase=exc.session.phase.value)
    if isinstance(exc, IdempotencyKeyReusedError):
        return ApiError(409, "idempotency_key_reused", str(exc))
    if isinstance(exc, StateUnavailableError):
        stored = isinstance(exc, StoredNotQueuedError)
        message = (
            f"{exc} (it is stored: do not send it again)"
            if stored
            else "Redis is unreachable: nothing was stored; send the request again later"
        )
        return ApiError(
            503,
            "unavailable",
            message,
            headers={"Retry-After": str(RETRY_AFTER_S)},
            stored=stored,
        )
    return ApiError(500, "internal", f"{type(exc).__name__}: {exc}")


def install_error_handlers(app: FastAPI) -> None:
    """Answer every error with the one error body."""

    async def on_api_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, ApiError)
        return error_response(exc)

    async def on_orchestrator_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, OrchestratorError)
        return error_response(api_error(exc))

    async def on_validation(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, FastApiValidationError)
        fields = [
            FieldError(".".join(str(p) for p in e.get("loc", ())[1:]) or "request", e["msg"])
            for e in exc.errors()
        ]
        return error_response(ApiError(422, "invalid_request", "invalid parameters", fields=fields))

    async def on_http(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return error_response(ApiError(exc.status_code, code, str(exc.detail)))

    app.add_exception_handler(ApiError, on_api_error)
    app.add_exception_handler(OrchestratorError, on_orchestrator_error)
    app.add_exception_handler(FastApiValidationError, on_validation)
    app.add_exception_handler(StarletteHTTPException, on_http)
