"""The arguments of the TRANSITION and REQUEST_STOP scripts, built from typed values.

Only the fields listed in :data:`MUTABLE_FIELDS` can be changed after creation; the identity,
mode, request and timestamps never change (``updated_at`` is set on every change).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from orchestrator.state.codec import encode_value, text
from orchestrator.state.session import Desired, Phase, Source

__all__ = [
    "MUTABLE_FIELDS",
    "describe_changes",
    "transition_args",
    "stop_args",
    "adopt_args",
    "hash_pairs",
]

#: The fields :meth:`SessionStore.transition` may set (besides ``phase``).
MUTABLE_FIELDS = frozenset({"sid", "desired", "last_status", "files", "last_error", "restarted_to"})

_FINISHED = sorted(p.value for p in Phase.finished())


def describe_changes(changes: Mapping[str, Any]) -> str:
    """``"set sid, files; clear last_error"`` (empty when nothing changes)."""
    set_names = [name for name, value in changes.items() if value is not None]
    cleared = [name for name, value in changes.items() if value is None]
    parts = []
    if set_names:
        parts.append("set " + ", ".join(set_names))
    if cleared:
        parts.append("clear " + ", ".join(cleared))
    return "; ".join(parts)


def transition_args(
    *,
    now: float,
    to: Phase | None,
    allowed_from: Iterable[Phase] | None,
    changes: Mapping[str, Any],
    entry: Mapping[str, Any] | None,
    history_limit: int,
    retention_s: int,
    incr: str | None = None,
    events: Mapping[str, Any] | None = None,
) -> str:
    """The JSON argument of the TRANSITION script (``incr``: a counter field to bump;
    ``events``: the event the change emits, see :mod:`orchestrator.state.events`).

    Raises:
        ValueError: a field cannot be changed, or ``allowed_from`` is empty.
    """
    unknown = set(changes) - MUTABLE_FIELDS
    if unknown:
        raise ValueError(
            f"cannot change {', '.join(sorted(unknown))}; changeable: "
            f"{', '.join(sorted(MUTABLE_FIELDS))}"
        )
    allowed = None if allowed_from is None else sorted({Phase(p).value for p in allowed_from})
    if allowed == []:
        raise ValueError("allowed_from is empty, so nothing could match; pass None for any phase")
    set_fields = {"updated_at": repr(now)}
    delete = []
    for name, value in changes.items():
        encoded = encode_value(name, value)
        if encoded is None:
            delete.append(name)
        else:
            set_fields[name] = encoded
    params: dict[str, Any] = {
        "allowed": allowed or [],
        "set": set_fields,
        "del": delete,
        "limit": history_limit,
        "retention": retention_s,
        "finished": _FINISHED,
    }
    if to is not None:
        params["to"] = Phase(to).value
    if entry is not None:
        params["entry"] = dict(entry)
    if incr is not None:
        params["incr"] = incr
    if events is not None:
        params["events"] = dict(events)
    return json.dumps(params)


def _change_params(
    *,
    now: float,
    source: Source,
    why: str,
    history_limit: int,
    retention_s: int,
    events: Mapping[str, Any] | None,
    **phases: str,
) -> str:
    """The JSON parameters the REQUEST_STOP and ADOPT_SID scripts share, with ``phases`` (the
    phase and desired values each script compares against)."""
    params: dict[str, Any] = {
        "now": repr(now),
        "at": now,
        "why": why,
        "source": Source(source).value,
        "limit": history_limit,
        "retention": retention_s,
        "finished": _FINISHED,
        **phases,
    }
    if events is not None:
        params["events"] = dict(events)
    return json.dumps(params)


def stop_args(
    *,
    now: float,
    source: Source,
    why: str,
    history_limit: int,
    retention_s: int,
    events: Mapping[str, Any] | None = None,
) -> str:
    """The JSON argument of the REQUEST_STOP script (``events``: that of a cancellation)."""
    return _change_params(
        now=now,
        source=source,
        why=why,
        history_limit=history_limit,
        retention_s=retention_s,
        events=events,
        pending=Phase.PENDING.value,
        stopped=Phase.STOPPED.value,
        desired=Desired.STOPPED.value,
    )


def adopt_args(
    *,
    sid: str,
    now: float,
    source: Source,
    why: str,
    history_limit: int,
    retention_s: int,
    events: Mapping[str, Any] | None = None,
) -> str:
    """The JSON argument of the ADOPT_SID script (``events``: that of a session now
    recording)."""
    return _change_params(
        now=now,
        source=source,
        why=why,
        history_limit=history_limit,
        retention_s=retention_s,
        events=events,
        sid=sid,
        recording=Phase.RECORDING.value,
        stopped=Desired.STOPPED.value,
    )


def hash_pairs(flat: Sequence[str | bytes]) -> dict[str, str]:
    """A flat ``HGETALL`` reply from a script (``[field, value, ...]``) as a dict."""
    items = [text(x) for x in flat]
    return dict(zip(items[::2], items[1::2], strict=True))
