"""The error answers of the simulated API: ``{"code": <status>, "reason": "..."}`` (spec §3)."""

from __future__ import annotations

from typing import Any

__all__ = ["SandboxApiError", "NotFound", "Conflict", "BadRequest", "error_body"]


class SandboxApiError(Exception):
    """An answer other than 200 from the simulated API.

    Attributes:
        status: the HTTP status, also sent as the body's ``code``.
        reason: the body's ``reason``.
        extra: more fields of the body (e.g. the running ``sid`` of a 409, when enabled).
        outcome: the label this answer is counted under in the stats.
    """

    outcome = "error"

    def __init__(self, status: int, reason: str, **extra: Any) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.extra = extra

    def body(self) -> dict[str, Any]:
        """The JSON body of the answer."""
        return error_body(self.status, self.reason, **self.extra)


class BadRequest(SandboxApiError):
    """400: invalid parameters."""

    outcome = "bad_request"

    def __init__(self, reason: str) -> None:
        super().__init__(400, reason)


class NotFound(SandboxApiError):
    """404: no such task (sid)."""

    outcome = "not_found"

    def __init__(self, reason: str) -> None:
        super().__init__(404, reason)


class Conflict(SandboxApiError):
    """409: a recording already runs for this (appId, cname, uid)."""

    outcome = "conflict"

    def __init__(self, reason: str, *, sid: str | None = None) -> None:
        super().__init__(409, reason, **({"sid": sid} if sid else {}))


def error_body(status: int, reason: str, **extra: Any) -> dict[str, Any]:
    """``{"code": status, "reason": reason, **extra}``."""
    return {"code": status, "reason": reason, **extra}
