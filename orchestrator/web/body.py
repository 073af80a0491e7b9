"""Reading a request's JSON body: bounded in size, an object, parsed once."""

from __future__ import annotations

import json
from typing import Any

from fastapi import Request

from orchestrator.web.errors import ApiError

__all__ = ["MAX_BODY_BYTES", "json_object"]

#: The largest request body accepted (a start request is a few kilobytes).
MAX_BODY_BYTES = 64 * 1024


async def json_object(request: Request) -> dict[str, Any]:
    """The body as a JSON object.

    Raises:
        ApiError: 413 when larger than :data:`MAX_BODY_BYTES`; 400 when not a JSON object.
    """
    raw = await request.body()
    if len(raw) > MAX_BODY_BYTES:
        raise ApiError(413, "too_large", f"the body is larger than {MAX_BODY_BYTES} bytes")
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise ApiError(400, "malformed_json", "the body is not valid JSON") from None
    if not isinstance(data, dict):
        raise ApiError(400, "malformed_json", "the body must be a JSON object")
    return data
