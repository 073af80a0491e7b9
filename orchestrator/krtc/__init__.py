"""The KRTC cloud-recording API: models, signing, client, errors.

This package knows nothing of Celery or Redis.
"""

from __future__ import annotations

from orchestrator.krtc.auth import KopAuth
from orchestrator.krtc.client import KrtcClient
from orchestrator.krtc.enums import Action, Mode, RecordingStatus
from orchestrator.krtc.errors import (
    AuthError,
    ConflictError,
    InvalidRequestError,
    KrtcApiError,
    NotFoundError,
    PermanentError,
    RateLimitedError,
    ServerError,
    TransientError,
    TransportError,
)
from orchestrator.krtc.validation import FieldError, RequestValidationError, parse_request

__all__ = [
    "Action",
    "AuthError",
    "ConflictError",
    "FieldError",
    "InvalidRequestError",
    "KopAuth",
    "KrtcApiError",
    "KrtcClient",
    "Mode",
    "NotFoundError",
    "PermanentError",
    "RateLimitedError",
    "RecordingStatus",
    "RequestValidationError",
    "ServerError",
    "TransientError",
    "TransportError",
    "parse_request",
]
