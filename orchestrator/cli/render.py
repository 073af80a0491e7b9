"""Sessions and dead letters as text for people, and as JSON for scripts.

Only session and dead-letter data is ever rendered, and neither holds a secret by construction
(a start request names its storage profile; task arguments are session ids and update bodies).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, cast

from orchestrator.state import DeadLetter, Session

__all__ = [
    "session_json",
    "letter_json",
    "format_time",
    "format_error",
    "table",
    "render_session",
    "render_sessions",
    "render_letters",
]

_REASON_WIDTH = 60


def session_json(session: Session) -> dict[str, Any]:
    """The session as plain JSON data (history included when it was loaded)."""
    return cast(dict[str, Any], json.loads(session.model_dump_json()))


def letter_json(letter: DeadLetter) -> dict[str, Any]:
    """The dead letter as plain JSON data."""
    return cast(dict[str, Any], json.loads(letter.model_dump_json()))


def format_time(at: float, *, precise: bool = False) -> str:
    """Unix seconds as UTC time, ``2024-05-01 12:00:00Z`` (milliseconds when ``precise``)."""
    moment = datetime.fromtimestamp(at, UTC)
    shown = (
        moment.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] if precise else f"{moment:%Y-%m-%d %H:%M:%S}"
    )
    return shown + "Z"


def format_error(error: dict[str, Any] | None, *, width: int | None = None) -> str:
    """An error record (``{kind, status, code, reason}``) on one line."""
    if not error:
        return "-"
    head = " ".join(str(error[k]) for k in ("status", "kind") if error.get(k) is not None)
    reason = str(error.get("reason") or "")
    text = f"{head}: {reason}" if head and reason else head or reason
    if width is not None and len(text) > width:
        text = text[: width - 3] + "..."
    return text


def table(rows: Sequence[Sequence[object]], *, headers: Sequence[str] | None = None) -> str:
    """Left-aligned columns, two spaces apart; the last column is not padded."""
    cells = [[str(c) for c in row] for row in ([headers] if headers else []) + list(rows)]
    if not cells:
        return ""
    widths = [max(len(row[i]) for row in cells) for i in range(len(cells[0]) - 1)]
    lines = []
    for row in cells:
        padded = [cell.ljust(width) for cell, width in zip(row, widths, strict=False)]
        lines.append("  ".join([*padded, row[-1]]).rstrip())
    return "\n".join(lines)


def render_session(session: Session) -> str:
    """The session as a two-column table, then its history (oldest first) if loaded."""
    fields: list[tuple[str, object]] = [
        ("session", session.id),
        ("phase", session.phase.value),
        ("desired", session.desired.value),
        ("appId", session.app_id),
        ("cname", session.cname),
        ("uid", session.uid),
        ("mode", session.mode.value),
        ("sid", session.sid or "-"),
        ("last status", "-" if session.last_status is None else session.last_status),
        ("attempts", " ".join(f"{k}={v}" for k, v in sorted(session.attempts.items())) or "-"),
        ("last error", format_error(session.last_error)),
        ("created", format_time(session.created_at)),
        ("updated", format_time(session.updated_at)),
    ]
    optional: list[tuple[str, object]] = [
        ("idempotency key", session.idempotency_key),
        ("max duration", session.max_duration_s and f"{session.max_duration_s}s"),
        ("restarted from", session.restarted_from),
        ("restarted to", session.restarted_to),
    ]
    fields += [(name, value) for name, value in optional if value]
    fields += [("file", json.dumps(f, ensure_ascii=False)) for f in session.files]
    text = table(fields)
    if session.history:
        rows = [
            (format_time(h.at, precise=True), h.source.value, h.what, h.why)
            for h in session.history
        ]
        text += "\n\nhistory\n" + table(rows, headers=["AT", "SOURCE", "WHAT", "WHY"])
    return text


def render_sessions(sessions: Sequence[Session]) -> str:
    """One line per session, newest first as given."""
    rows = [
        (
            s.id,
            s.phase.value,
            s.app_id,
            s.cname,
            s.uid,
            s.sid or "-",
            format_time(s.created_at),
            format_error(s.last_error, width=_REASON_WIDTH),
        )
        for s in sessions
    ]
    headers = ["ID", "PHASE", "APPID", "CNAME", "UID", "SID", "CREATED", "LAST ERROR"]
    return table(rows, headers=headers)


def render_letters(letters: Sequence[DeadLetter]) -> str:
    """One line per dead letter, newest first as given."""
    rows = [
        (
            x.id,
            format_time(x.failed_at),
            x.action,
            x.session_id,
            x.attempts,
            len(x.replays),
            format_error(x.error, width=_REASON_WIDTH),
        )
        for x in letters
    ]
    headers = ["ID", "FAILED", "ACTION", "SESSION", "ATTEMPTS", "REPLAYS", "ERROR"]
    return table(rows, headers=headers)
