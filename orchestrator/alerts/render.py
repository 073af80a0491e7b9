"""What every message says, whatever its format: a title and the same labelled facts.

The chat sinks lay these out in their own markup; the log sink prints them on one line.
"""

from __future__ import annotations

from datetime import UTC, datetime

from orchestrator.alerts.model import Alert, Severity

__all__ = ["EMOJI", "title", "facts", "when", "truncate", "truncate_utf8"]

#: A mark per severity for chat titles.
EMOJI = {Severity.CRITICAL: "🔴", Severity.WARNING: "🟠", Severity.INFO: "🔵"}

_MISSING = "-"


def when(at: float) -> str:
    """A unix time as ``2023-11-14 22:13:20 UTC``."""
    return datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def title(alert: Alert) -> str:
    """``[CRITICAL] KRTC recording exited abnormally`` (``reminder: `` in front for reminders)."""
    text = f"[{alert.severity.value.upper()}] KRTC {alert.kind.summary}"
    return f"reminder #{alert.reminder}: {text}" if alert.is_reminder else text


def facts(alert: Alert) -> list[tuple[str, str]]:
    """The labelled facts of an alert, in reading order (the reason is separate)."""
    rows = [
        ("Kind", alert.kind.value),
        ("Severity", alert.severity.value),
        ("Session", alert.session_id),
        ("App ID", alert.app_id or _MISSING),
        ("Channel", alert.cname or _MISSING),
        ("UID", alert.uid or _MISSING),
        ("SID", alert.sid or _MISSING),
        ("Server status", _MISSING if alert.server_status is None else str(alert.server_status)),
        ("Raised", when(alert.at)),
    ]
    if alert.is_reminder:
        rows.append(("First raised", when(alert.first_at)))
    return rows


def truncate(text: str, limit: int) -> str:
    """``text`` cut to at most ``limit`` characters, marked with ``…`` when cut."""
    return text if len(text) <= limit else text[: max(limit - 1, 0)] + "…"


def truncate_utf8(text: str, limit_bytes: int) -> str:
    """``text`` cut to at most ``limit_bytes`` bytes of UTF-8, never inside a character."""
    data = text.encode("utf-8")
    if len(data) <= limit_bytes:
        return text
    cut = data[: max(limit_bytes - 3, 0)].decode("utf-8", errors="ignore")
    return cut + "…"
