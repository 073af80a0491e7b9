"""How a :class:`Session` is laid out in its Redis hash, and its history entries in their list.

Every hash value is a string: enums by value, numbers in decimal, ``files``, ``last_error`` and
``request`` as compact JSON. ``None`` is stored as an absent field (an empty string also reads
as ``None``). A flag (``restart_on_failure``) is ``"1"`` when set and absent when not, so that
hashes written before it existed read as unset. Attempt counters are one field per action,
``attempts:<action>``, so that ``HINCRBY`` can bump them atomically. Fields this version does
not know are ignored on reading, so that a newer writer does not break an older reader.

The ``schema`` field holds the layout's version (:mod:`orchestrator.state.schema`); a hash of a
higher version than this code knows is refused (:class:`NewerSchemaError`), never guessed at.
Errors name the field that does not decode and the problem, never the stored value.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from enum import Enum
from typing import Any

from pydantic import ValidationError

from orchestrator.state.errors import CorruptSessionError, NewerSchemaError
from orchestrator.state.jsontext import sorted_text
from orchestrator.state.schema import SCHEMA_FIELD, SCHEMA_VERSION, schema_of
from orchestrator.state.session import HistoryEntry, Session

__all__ = [
    "ATTEMPTS_FIELD_PREFIX",
    "attempts_field",
    "encode_value",
    "session_to_fields",
    "session_to_hash",
    "session_from_hash",
    "history_from_list",
    "text",
]

ATTEMPTS_FIELD_PREFIX = "attempts:"
_JSON_FIELDS = frozenset({"files", "last_error", "request"})
_NOT_STORED = frozenset({"history", "attempts"})
#: Boolean fields: stored as "1" when true, absent when false.
_FLAG_FIELDS = frozenset({"restart_on_failure"})
#: The compact, key-sorted JSON of the JSON fields.
_JSON_TEXT = sorted_text
#: The stored fields of a session in hash order, each with whether a text value is stored as
#: it is (every field but the JSON ones and the flags).
_STORED_FIELDS = tuple(
    (name, name not in _JSON_FIELDS and name not in _FLAG_FIELDS)
    for name in Session.model_fields
    if name not in _NOT_STORED
)
_SCHEMA_TEXT = str(SCHEMA_VERSION)
#: The enum types of the stored fields (``mode``, ``desired``, ``phase``): stored by value.
_ENUM_TYPES = frozenset(
    field.annotation
    for field in Session.model_fields.values()
    if isinstance(field.annotation, type) and issubclass(field.annotation, Enum)
)
#: The JSON text of an empty JSON field value (``files`` of a new session is ``[]``).
_EMPTY_JSON: dict[type, str] = {list: "[]", dict: "{}"}
#: The hash fields read into a :class:`Session` (not its history or attempts: see above).
#: Looked up once: ``Session.model_fields`` is a property that builds its answer on each use.
_READ_FIELDS = frozenset(Session.model_fields) - _NOT_STORED


def attempts_field(action: str) -> str:
    """The hash field that counts the attempts of one action."""
    return ATTEMPTS_FIELD_PREFIX + action


def text(value: str | bytes) -> str:
    """A Redis reply as text, whether or not the client decodes responses."""
    return value.decode() if isinstance(value, bytes) else value


def encode_value(name: str, value: Any) -> str | None:
    """The hash value of one field, or ``None`` when the field is to be absent.

    Args:
        name: the :class:`Session` attribute.
        value: its value.
    """
    if value is None:
        return None
    if name in _FLAG_FIELDS:
        if not isinstance(value, bool):
            raise TypeError(f"{name}: a flag is a boolean, got {type(value).__name__}")
        return "1" if value else None
    if name in _JSON_FIELDS:
        return _JSON_TEXT(value)
    if isinstance(value, Enum):
        return str(value.value)
    if isinstance(value, bool):
        raise TypeError(f"{name}: booleans are not stored in a session hash")
    if isinstance(value, float):
        return repr(value)
    return str(value)


def session_to_hash(session: Session) -> dict[str, str]:
    """The hash fields of a session (without its history), with the schema version."""
    fields = session_to_fields(session)
    return dict(zip(fields[::2], fields[1::2], strict=True))


def session_to_fields(session: Session) -> list[str]:
    """:func:`session_to_hash` as ``HSET`` takes it: field, value, field, value... in hash order.

    The values are :func:`encode_value`'s; the usual ones (text, numbers, the enums, an empty
    JSON field) are written here without its checks.
    """
    fields = [SCHEMA_FIELD, _SCHEMA_TEXT]
    values = session.__dict__
    for name, plain in _STORED_FIELDS:
        value = values[name]
        if value is None:
            continue
        kind = type(value)
        if plain:
            if kind is str:
                fields += (name, value)
                continue
            if kind is float:
                fields += (name, repr(value))
                continue
            if kind is int:
                fields += (name, str(value))
                continue
            if kind in _ENUM_TYPES:
                # str(value.value), without the property lookup of Enum.value.
                fields += (name, str(value._value_))
                continue
        elif not value and kind in _EMPTY_JSON:
            fields += (name, _EMPTY_JSON[kind])
            continue
        encoded = encode_value(name, value)
        if encoded is not None:
            fields += (name, encoded)
    for action, count in session.attempts.items():
        fields += (attempts_field(action), str(count))
    return fields


def session_from_hash(
    session_id: str,
    raw: Mapping[str, str] | Mapping[bytes, bytes] | Mapping[str | bytes, str | bytes],
    history: list[HistoryEntry] | None = None,
) -> Session:
    """Decode a hash read with ``HGETALL``.

    Args:
        session_id: the id, for error messages.
        raw: the hash (non-empty).
        history: the history to attach, if it was read.

    Raises:
        NewerSchemaError: the hash was written by a newer version (schema above ours).
        CorruptSessionError: a value does not decode.
    """
    data: dict[str, Any] = {}
    attempts: dict[str, int] = {}
    field = "(field name)"
    try:
        fields = {key if type(key) is str else text(key): value for key, value in raw.items()}
        field = SCHEMA_FIELD
        stored_schema = fields.get(SCHEMA_FIELD)
        schema = schema_of(None if stored_schema is None else text(stored_schema))
        if schema > SCHEMA_VERSION:
            raise NewerSchemaError(session_id, schema, SCHEMA_VERSION)
        for name, value in fields.items():
            field = name
            val = value if type(value) is str else text(value)
            if name.startswith(ATTEMPTS_FIELD_PREFIX):
                attempts[name[len(ATTEMPTS_FIELD_PREFIX) :]] = int(val)
            elif name not in _READ_FIELDS or val == "":
                continue
            elif name in _JSON_FIELDS:
                data[name] = json.loads(val)
            else:
                data[name] = val
        return Session(**data, attempts=attempts, history=history or [])
    except (ValueError, TypeError, ValidationError) as exc:
        raise CorruptSessionError(session_id, _short(exc, field)) from exc


def history_from_list(session_id: str, raw: Iterable[str | bytes]) -> list[HistoryEntry]:
    """Decode history entries read with ``LRANGE`` (oldest first).

    Raises:
        CorruptSessionError: an entry does not decode.
    """
    try:
        return [HistoryEntry.model_validate_json(text(item)) for item in raw]
    except ValidationError as exc:
        raise CorruptSessionError(session_id, f"history entry: {_short(exc)}") from exc


def _short(exc: Exception, field: str = "") -> str:
    """What does not decode, without the stored value (it may hold anything)."""
    if isinstance(exc, ValidationError):
        # A pydantic message describes what was expected; the input is only in "input".
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        return f"{where}: {first['msg']} ({exc.error_count()} error(s))"
    if isinstance(exc, json.JSONDecodeError):
        return f"{field}: not valid JSON ({exc.msg} at character {exc.pos})"
    if isinstance(exc, UnicodeDecodeError):
        return f"{field}: not UTF-8 text"
    if field == SCHEMA_FIELD:
        return str(exc)
    if field.startswith(ATTEMPTS_FIELD_PREFIX):
        return f"{field}: not an integer"
    return f"{field}: {type(exc).__name__}"
