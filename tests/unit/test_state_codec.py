"""The layout of a session in its Redis hash (orchestrator/state/codec.py)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from orchestrator.errors import OrchestratorError, StateError
from orchestrator.krtc.enums import Mode
from orchestrator.state import (
    SCHEMA_VERSION,
    CorruptSessionError,
    Desired,
    HistoryEntry,
    NewerSchemaError,
    Phase,
    Session,
    Source,
)
from orchestrator.state.codec import (
    attempts_field,
    encode_value,
    history_from_list,
    session_from_hash,
    session_to_fields,
    session_to_hash,
)

SID = "01HZZZZZZZZZZZZZZZZZZZZZZZ"


def minimal(**changes: Any) -> Session:
    fields: dict[str, Any] = {
        "id": SID,
        "app_id": "lee1234",
        "cname": "room:1",
        "uid": "recorder",
        "mode": Mode.MIX,
        "created_at": 1700000000.123456,
        "updated_at": 1700000001.5,
    }
    fields.update(changes)
    return Session(**fields)


def full() -> Session:
    return minimal(
        sid="c4pl5e1kereqmo8pac40",
        desired=Desired.STOPPED,
        phase=Phase.STOPPING,
        last_status=5,
        files=[{"fileName": "a.m3u8", "trackType": "audio_and_video", "sliceStartTime": 17}],
        attempts={"CloudRecordingStart": 3, "CloudRecordingStop": 1},
        last_error={"kind": "server", "status": 500, "code": None, "reason": "boom", "at": 1.25},
        idempotency_key="web-req-42",
        max_duration_s=3600,
        request={"cname": "room:1", "clientRequest": {"storageConfig": {"profile": "rec"}}},
        restarted_from="01HAAAAAAAAAAAAAAAAAAAAAAA",
        restarted_to="01HBBBBBBBBBBBBBBBBBBBBBBB",
    )


def valid_hash() -> dict[str, str]:
    return session_to_hash(full())


# -- round trips ---------------------------------------------------------------------------------


def test_a_session_with_every_field_set_survives_a_round_trip() -> None:
    session = full()

    assert session_from_hash(SID, session_to_hash(session)) == session


def test_a_minimal_session_survives_a_round_trip_and_stores_no_empty_fields() -> None:
    session = minimal()

    stored = session_to_hash(session)

    assert session_from_hash(SID, stored) == session
    for absent in ("sid", "last_status", "last_error", "idempotency_key", "max_duration_s"):
        assert absent not in stored
    assert not any(name.startswith("attempts") for name in stored)


def test_every_hash_value_is_text_with_enums_by_value() -> None:
    stored = session_to_hash(full())

    assert all(isinstance(v, str) for v in stored.values())
    assert stored["phase"] == "stopping"
    assert stored["desired"] == "stopped"
    assert stored["mode"] == "mix"
    assert stored["last_status"] == "5"
    assert stored["max_duration_s"] == "3600"


def test_json_fields_are_compact_and_keep_non_ascii_text() -> None:
    session = minimal(request={"b": 1, "a": "säal"}, files=[{"x": 1}])

    stored = session_to_hash(session)

    assert stored["request"] == '{"a":"säal","b":1}'
    assert stored["files"] == '[{"x":1}]'
    assert session_from_hash(SID, stored).request == {"a": "säal", "b": 1}


ENCODED_SESSIONS = [
    minimal(),
    full(),
    minimal(restart_on_failure=True, max_restarts=0, sid="", files=[]),
    minimal(last_error={}, request={}, files=[], phase=Phase.FAILED, desired=Desired.STOPPED),
    minimal(mode=Mode.INDIVIDUAL, phase=Phase.ORPHANED, last_status=0, max_duration_s=1),
]
ENCODED_IDS = ["minimal", "full", "flags", "empty-json", "other-enums"]


@pytest.mark.parametrize("session", ENCODED_SESSIONS, ids=ENCODED_IDS)
def test_the_hash_is_encode_value_of_each_stored_field_in_field_order(session: Session) -> None:
    # session_to_hash skips encode_value for text, numbers, enums and empty JSON values; the
    # result must be the same.
    expected = {"schema": str(SCHEMA_VERSION)}
    for name in Session.model_fields:
        if name in ("history", "attempts"):
            continue
        encoded = encode_value(name, getattr(session, name))
        if encoded is not None:
            expected[name] = encoded
    for action, count in session.attempts.items():
        expected[attempts_field(action)] = str(count)

    stored = session_to_hash(session)

    assert list(stored.items()) == list(expected.items())


@pytest.mark.parametrize("session", ENCODED_SESSIONS, ids=ENCODED_IDS)
def test_the_fields_are_the_hash_flattened_in_its_order(session: Session) -> None:
    fields = session_to_fields(session)

    assert fields == [part for pair in session_to_hash(session).items() for part in pair]
    assert all(type(part) is str for part in fields)


def test_timestamps_keep_full_float_precision() -> None:
    session = minimal(created_at=1712345678.987654, updated_at=0.1 + 0.2)

    decoded = session_from_hash(SID, session_to_hash(session))

    assert decoded.created_at == 1712345678.987654
    assert decoded.updated_at == 0.1 + 0.2


def test_attempts_are_one_counter_field_per_action() -> None:
    stored = session_to_hash(full())

    assert stored[attempts_field("CloudRecordingStart")] == "3"
    assert stored["attempts:CloudRecordingStop"] == "1"
    assert "attempts" not in stored


def test_history_is_not_stored_in_the_hash_but_attached_on_reading() -> None:
    entry = HistoryEntry(at=1.5, what="created", why="start requested", source=Source.PRODUCER)
    session = minimal(history=[entry])

    stored = session_to_hash(session)

    assert "history" not in stored
    assert session_from_hash(SID, stored).history == []
    assert session_from_hash(SID, stored, [entry]).history == [entry]


def test_a_hash_read_as_bytes_decodes_like_text() -> None:
    stored = session_to_hash(full())
    raw = {k.encode(): v.encode() for k, v in stored.items()}

    assert session_from_hash(SID, raw) == full()


def test_unknown_fields_from_a_newer_writer_are_ignored() -> None:
    stored = valid_hash() | {"priority": "7", "history": "[]"}

    assert session_from_hash(SID, stored) == full()


def test_an_empty_value_reads_as_absent() -> None:
    stored = valid_hash() | {"sid": "", "last_error": "", "restarted_to": ""}

    decoded = session_from_hash(SID, stored)

    assert decoded.sid is None
    assert decoded.last_error is None
    assert decoded.restarted_to is None


def test_booleans_are_refused_rather_than_stored_ambiguously() -> None:
    with pytest.raises(TypeError, match="last_status"):
        encode_value("last_status", True)


def test_none_means_absent() -> None:
    assert encode_value("sid", None) is None
    assert encode_value("files", None) is None


# -- corrupt data --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("files", "[{not json"),
        ("last_error", "{"),
        ("request", "nul"),
        ("phase", "dancing"),
        ("desired", "maybe"),
        ("mode", "stereo"),
        ("last_status", "five"),
        ("created_at", "yesterday"),
        ("max_duration_s", "1.5h"),
        ("attempts:CloudRecordingStart", "three"),
        ("files", '{"not": "a list"}'),
    ],
)
def test_a_value_that_does_not_decode_is_a_corrupt_session(field: str, value: str) -> None:
    stored = valid_hash() | {field: value}

    with pytest.raises(CorruptSessionError) as info:
        session_from_hash(SID, stored)

    assert info.value.session_id == SID
    assert SID in str(info.value)
    assert isinstance(info.value.__cause__, ValueError | TypeError)


@pytest.mark.parametrize("missing", ["app_id", "cname", "uid", "mode", "created_at", "id"])
def test_a_missing_required_field_is_a_corrupt_session(missing: str) -> None:
    stored = valid_hash()
    del stored[missing]

    with pytest.raises(CorruptSessionError, match=missing):
        session_from_hash(SID, stored)


def test_corrupt_session_error_belongs_to_the_state_branch() -> None:
    error = CorruptSessionError(SID, "phase: bad")

    assert isinstance(error, StateError)
    assert isinstance(error, OrchestratorError)
    assert str(error) == f"stored recording session {SID!r} is corrupt: phase: bad"


def test_history_entries_decode_oldest_first() -> None:
    raw = [
        json.dumps({"at": 1.0, "what": "created", "why": "", "source": "producer"}),
        json.dumps({"at": 2.0, "what": "phase pending -> starting", "source": "task", "x": 1}),
    ]

    entries = history_from_list(SID, raw)

    assert [e.what for e in entries] == ["created", "phase pending -> starting"]
    assert entries[1].source is Source.TASK
    assert entries[1].why == ""


def test_history_entries_read_as_bytes_decode() -> None:
    raw = [b'{"at": 1, "what": "created", "source": "poll"}']

    assert history_from_list(SID, raw)[0].source is Source.POLL


@pytest.mark.parametrize(
    "bad",
    [
        "not json",
        '{"at": 1, "what": "x"}',
        '{"at": 1, "what": "x", "source": "robot"}',
        '{"at": "noon", "what": "x", "source": "task"}',
    ],
)
def test_a_history_entry_that_does_not_decode_is_corruption(bad: str) -> None:
    good = '{"at": 1, "what": "created", "source": "producer"}'

    with pytest.raises(CorruptSessionError, match="history entry") as info:
        history_from_list(SID, [good, bad])

    assert info.value.session_id == SID


# -- schema version ------------------------------------------------------------------------------


def test_the_schema_version_is_written_with_every_session() -> None:
    assert session_to_hash(minimal())["schema"] == str(SCHEMA_VERSION)


def test_a_hash_without_a_schema_is_version_1_and_decodes() -> None:
    stored = valid_hash()
    del stored["schema"]

    assert session_from_hash(SID, stored) == full()


def test_a_hash_of_a_newer_schema_is_refused_not_guessed_at() -> None:
    stored = valid_hash() | {"schema": str(SCHEMA_VERSION + 98)}

    with pytest.raises(NewerSchemaError) as info:
        session_from_hash(SID, stored)

    error = info.value
    assert isinstance(error, CorruptSessionError), "handled like a corrupt record"
    assert (error.session_id, error.schema, error.known) == (SID, SCHEMA_VERSION + 98, 1)
    assert str(error).startswith(f"stored recording session {SID!r} is from a newer version")


@pytest.mark.parametrize("value", ["two", "-1", "0", "1.0", "\u0661"])
def test_a_schema_that_is_not_a_positive_integer_is_corruption(value: str) -> None:
    with pytest.raises(CorruptSessionError, match="schema: not a positive integer") as info:
        session_from_hash(SID, valid_hash() | {"schema": value})

    assert not isinstance(info.value, NewerSchemaError)


@pytest.mark.parametrize(
    ("field", "value", "named"),
    [
        ("attempts:stop", "SeCrEt-42", "attempts:stop: not an integer"),
        ("files", "[SeCrEt-42", "files: not valid JSON"),
        ("created_at", "SeCrEt-42", "created_at: Input should be a valid number"),
        ("mode", "SeCrEt-42", "mode: Input should be 'individual' or 'mix'"),
    ],
)
def test_a_corrupt_field_is_named_without_its_stored_value(
    field: str, value: str, named: str
) -> None:
    with pytest.raises(CorruptSessionError) as info:
        session_from_hash(SID, valid_hash() | {field: value})

    assert named in info.value.detail
    assert "SeCrEt" not in str(info.value)
