"""Errors of the KRTC API, and the one function that maps a response to them (spec §3, D4, D5).

::

    OrchestratorError
    └── KrtcApiError                    action, status, code, reason, body; .retryable
        ├── PermanentError              never retried
        │   ├── InvalidRequestError     400: the server rejected the parameters
        │   └── AuthError               401/403: key pair, App ID permission, or clock skew
        ├── NotFoundError               404: no such recording (sid)
        ├── ConflictError               409: a recording already runs for (appId, cname, uid)
        └── TransientError              retried with backoff
            ├── ServerError             500/502/503/504, or a 200 that is not a valid answer
            ├── RateLimitedError        429 (.retry_after_s from Retry-After)
            └── TransportError          timeout or connection failure (.maybe_applied)

A message never contains a secret: errors carry the server's reason and status, nothing we sent.
"""

from __future__ import annotations

import json
import re
from typing import Any

from orchestrator.errors import OrchestratorError
from orchestrator.krtc.enums import Action

__all__ = [
    "KrtcApiError",
    "PermanentError",
    "InvalidRequestError",
    "AuthError",
    "NotFoundError",
    "ConflictError",
    "TransientError",
    "ServerError",
    "RateLimitedError",
    "TransportError",
    "error_for_response",
    "parse_error_body",
]

_MAX_BODY_CHARS = 2000


class KrtcApiError(OrchestratorError):
    """The API did not carry out an action.

    Attributes:
        action: the action called.
        status: the HTTP status (``None`` when no response arrived).
        code: the ``code`` of the error body (or the status when the body had none).
        reason: the server's ``reason``, or a description of what went wrong.
        body: the raw response text, cut to 2,000 characters.
        request_id: the server's request id header, when it sent one.
    """

    #: How the CLI and dashboards name this kind of error.
    kind = "api_error"
    #: Whether trying the same call again may succeed.
    retryable = False

    def __init__(
        self,
        action: Action,
        reason: str,
        *,
        status: int | None = None,
        code: int | None = None,
        body: str | None = None,
        request_id: str | None = None,
    ) -> None:
        self.action = action
        self.status = status
        self.code = code if code is not None else status
        self.reason = reason
        self.body = body[:_MAX_BODY_CHARS] if body else body
        self.request_id = request_id
        super().__init__(self._message())

    def _message(self) -> str:
        where = f"HTTP {self.status}" if self.status is not None else "no response"
        code = f", code {self.code}" if self.code not in (None, self.status) else ""
        return f"{self.action.value} failed ({where}{code}): {self.reason}{self.hint()}"

    def hint(self) -> str:
        """What to do about it, appended to the message; empty when there is nothing to say."""
        return ""

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(action={self.action.value!r}, status={self.status!r}, "
            f"code={self.code!r}, request_id={self.request_id!r})"
        )

    def to_dict(self) -> dict[str, Any]:
        """``{"kind", "status", "code", "reason"}``: what the CLI prints, safe to log."""
        return {"kind": self.kind, "status": self.status, "code": self.code, "reason": self.reason}


class PermanentError(KrtcApiError):
    kind = "permanent"


class InvalidRequestError(PermanentError):
    kind = "invalid_request"


class AuthError(PermanentError):
    kind = "auth"

    def hint(self) -> str:
        if self.status == 401:
            return (
                " (check that this App ID has cloud recording enabled, that KRTC_ACCESS_KEY and "
                "KRTC_SECRET_KEY are right, and that this machine's clock is correct)"
            )
        return (
            " (check KRTC_ACCESS_KEY/KRTC_SECRET_KEY, KRTC_REGION/KRTC_SERVICE, and this machine's "
            "clock: a signature more than a few minutes off is refused)"
        )


class NotFoundError(KrtcApiError):
    kind = "not_found"


class ConflictError(KrtcApiError):
    """409 on start: a recording already runs for this (appId, cname, uid) (spec D12).

    Attributes:
        sid: the running recording's sid, when the server's body names one.
    """

    kind = "conflict"

    def __init__(self, action: Action, reason: str, *, sid: str | None = None, **kw: Any) -> None:
        self.sid = sid
        super().__init__(action, reason, **kw)


class TransientError(KrtcApiError):
    kind = "transient"
    retryable = True


class ServerError(TransientError):
    kind = "server_error"


class RateLimitedError(TransientError):
    kind = "rate_limited"

    def __init__(
        self, action: Action, reason: str, *, retry_after_s: float | None = None, **kw: Any
    ):
        self.retry_after_s = retry_after_s
        super().__init__(action, reason, **kw)


class TransportError(TransientError):
    """No answer: a timeout or a failed connection.

    Attributes:
        maybe_applied: the request may have reached the server and taken effect (a read timeout or
            a dropped connection after sending), so a retried start may meet a 409.
    """

    kind = "transport"

    def __init__(self, action: Action, reason: str, *, maybe_applied: bool) -> None:
        self.maybe_applied = maybe_applied
        super().__init__(action, reason)


_LOOSE_CODE = re.compile(r'"?code"?\s*:\s*(-?\d+)')
_LOOSE_REASON = re.compile(r'"?reason"?\s*:\s*"((?:[^"\\]|\\.)*)"')


def parse_error_body(text: str) -> tuple[int | None, str | None, dict[str, Any]]:
    """``(code, reason, fields)`` of an error body, leniently (spec D4).

    The source's own example, ``{"code": 400, reason: "duplicate start"}``, is not JSON;
    its code and reason are still found. A body that says nothing useful gives ``(None, None, {})``.
    """
    try:
        data = json.loads(text)
    except ValueError:
        data = None
    if isinstance(data, dict):
        code = data.get("code")
        reason = data.get("reason", data.get("message"))
        return (
            code if isinstance(code, int) and not isinstance(code, bool) else None,
            str(reason) if reason is not None else None,
            data,
        )
    code_match = _LOOSE_CODE.search(text)
    reason_match = _LOOSE_REASON.search(text)
    return (
        int(code_match.group(1)) if code_match else None,
        reason_match.group(1) if reason_match else None,
        {},
    )


def _retry_after(value: str | None) -> float | None:
    try:
        return max(0.0, float(value)) if value else None
    except ValueError:
        return None


def error_for_response(
    action: Action, status: int, text: str, headers: dict[str, str] | None = None
) -> KrtcApiError | None:
    """The error a response stands for, or ``None`` when it is a success.

    The single place that maps HTTP status and body ``code`` to an error class. A 200 whose body
    carries a non-zero ``code`` is an error with that code (spec D5).
    """
    headers = {k.lower(): v for k, v in (headers or {}).items()}
    code, reason, fields = parse_error_body(text) if text else (None, None, {})
    effective = status
    if 200 <= status < 300:
        if not code:
            return None
        effective = code
    kw: dict[str, Any] = {
        "status": status,
        "code": code if code is not None else status,
        "body": text,
        "request_id": headers.get("x-kss-request-id") or headers.get("x-request-id"),
    }
    why = reason or (text.strip()[:200] if text and not fields else "") or f"HTTP {effective}"
    if effective == 400:
        return InvalidRequestError(action, why, **kw)
    if effective in (401, 403):
        return AuthError(action, why, **kw)
    if effective == 404:
        return NotFoundError(action, why, **kw)
    if effective == 409:
        sid = fields.get("sid")
        return ConflictError(action, why, sid=sid if isinstance(sid, str) and sid else None, **kw)
    if effective == 429:
        return RateLimitedError(
            action, why, retry_after_s=_retry_after(headers.get("retry-after")), **kw
        )
    if effective >= 500:
        return ServerError(action, why, **kw)
    return PermanentError(action, why, **kw)
