"""What the sandbox remembers of the requests it served: a bounded log and counters.

Nothing secret is ever recorded: an entry keeps the action, the answer and the identifiers of the
recording, and only the redacted body of a valid request (the storage ``secretKey`` masked). The
body of an invalid request is not kept at all, since its secret could not be located to mask it.
"""

from __future__ import annotations

import time
from collections import Counter, deque
from dataclasses import asdict, dataclass
from typing import Any

__all__ = ["Entry", "Journal"]


@dataclass
class Entry:
    """One request to ``/cloud``.

    Attributes:
        seq: a number that grows by one per request.
        time: Unix time of arrival.
        action: the ``x-action`` header (``None`` when absent).
        status: the HTTP status answered, ``None`` when the answer was lost on purpose.
        outcome: how it is counted: ok, bad_request, unauthorized, forbidden, not_found,
            conflict, injected_error, applied_then_error, applied_then_hang, applied_then_close.
        sid, app_id, cname, uid: the recording concerned, when known.
        reason: the error answer's reason.
        access_key: the access key of a verified signature.
        delay_ms: injected latency.
        body: the redacted body of a valid request.
    """

    seq: int
    time: float
    action: str | None
    status: int | None
    outcome: str
    sid: str | None = None
    app_id: str | None = None
    cname: str | None = None
    uid: str | None = None
    reason: str | None = None
    access_key: str | None = None
    delay_ms: float = 0.0
    body: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready, camelCase keys like the API's."""
        data = asdict(self)
        data["appId"] = data.pop("app_id")
        data["accessKey"] = data.pop("access_key")
        data["delayMs"] = data.pop("delay_ms")
        return data


class Journal:
    """The last ``size`` requests, and counts per action and outcome since the last reset."""

    def __init__(self, size: int) -> None:
        self._entries: deque[Entry] = deque(maxlen=max(1, size))
        self._seq = 0
        self._by_action: dict[str, Counter[str]] = {}
        self._by_status: Counter[str] = Counter()
        self.started_at = time.time()

    def clear(self) -> None:
        """Forget every entry and count."""
        self._entries.clear()
        self._by_action.clear()
        self._by_status.clear()
        self.started_at = time.time()

    def record(self, action: str | None, status: int | None, outcome: str, **fields: Any) -> Entry:
        """Log and count one request."""
        self._seq += 1
        entry = Entry(self._seq, time.time(), action, status, outcome, **fields)
        self._entries.append(entry)
        counts = self._by_action.get(action or "-")
        if counts is None:
            counts = self._by_action[action or "-"] = Counter()
        counts[outcome] += 1
        self._by_status["lost" if status is None else str(status)] += 1
        return entry

    def entries(self, limit: int | None = None) -> list[dict[str, Any]]:
        """The newest ``limit`` entries (all kept ones by default), oldest first."""
        items = list(self._entries)
        if limit is not None:
            items = items[-limit:] if limit > 0 else []
        return [e.to_dict() for e in items]

    def stats(self) -> dict[str, Any]:
        """``{"total", "byAction": {action: {outcome: n}}, "byStatus": {status: n}, ...}``."""
        return {
            "total": sum(self._by_status.values()),
            "byAction": {a: dict(c) for a, c in sorted(self._by_action.items())},
            "byStatus": dict(sorted(self._by_status.items())),
            "since": self.started_at,
        }
