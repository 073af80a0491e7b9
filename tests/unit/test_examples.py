"""The source document's own examples (tests/unit/data/examples.json) round-trip."""

from __future__ import annotations

import json

import pytest

from orchestrator.krtc.enums import Action, RecordingStatus
from orchestrator.krtc.errors import InvalidRequestError, error_for_response, parse_error_body
from orchestrator.krtc.models import QueryResponse
from tests.unit.data.bodies import errors_of, examples, parse

ROUND_TRIPS = [
    ("start", Action.START),
    ("update", Action.UPDATE),
    ("query", Action.QUERY),
    ("stop", Action.STOP),
]


@pytest.mark.parametrize(("name", "action"), ROUND_TRIPS)
def test_example_round_trips(name: str, action: Action) -> None:
    body = examples()[name]
    request = parse(action, body)
    assert request.action is action
    assert request.to_wire() == body
    assert json.loads(request.to_wire_bytes()) == body


def test_start_example_with_the_tables_spelling_is_sent_with_the_right_one() -> None:
    # spec D6: recodingFileConfig on input, recordingFileConfig on the wire.
    body = examples()["start"]
    client = body["clientRequest"]
    misspelt = dict(
        body,
        clientRequest={
            ("recodingFileConfig" if k == "recordingFileConfig" else k): v
            for k, v in client.items()
        },
    )
    assert "recordingFileConfig" not in misspelt["clientRequest"]
    assert parse(Action.START, misspelt).to_wire() == body


def test_start_example_keeps_its_storage_secret_out_of_the_redacted_view() -> None:
    request = parse(Action.START, examples()["start"])
    assert "your secret key" not in json.dumps(request.redacted())
    assert "your secret key" in request.to_wire_bytes().decode()


def test_the_literal_update_layout_example_lacks_the_sid() -> None:
    # spec D10: the source's example has no sid, but a layout update must name its recording.
    (error,) = errors_of(Action.UPDATE_LAYOUT, examples()["updateLayout"])
    assert error.path == "sid"
    assert error.message == "sid is required"


def test_the_update_layout_example_with_a_sid_round_trips() -> None:
    body = {**examples()["updateLayout"], "sid": "c4pl5e1kereqmo8pac40"}
    request = parse(Action.UPDATE_LAYOUT, body)
    assert request.to_wire() == body
    assert json.loads(request.to_wire_bytes()) == body


def test_the_query_response_example_parses() -> None:
    response = QueryResponse.model_validate(examples()["queryResponse"])
    assert response.sid == "c4pk53hkereoo61dcmk0"
    assert response.status == 8
    assert response.server_response is not None
    assert response.server_response.recording_status is RecordingStatus.EXITED
    assert response.server_response.file_list_mode == "json"
    assert response.server_response.slice_start_time == 0
    (only,) = response.files
    assert only.file_name == "c4pk53hkereoo61dcmk0_krtc2.m3u8"
    assert (only.track_type, only.uid, only.mixed_all_users) == ("audio_and_video", "0", True)
    assert response.to_json_dict() == examples()["queryResponse"]


def test_the_error_body_example_is_read_despite_its_unquoted_key() -> None:
    text = examples()["errorBody"]
    with pytest.raises(json.JSONDecodeError):
        json.loads(text)
    code, reason, _ = parse_error_body(text)
    assert (code, reason) == (400, "duplicate start")
    error = error_for_response(Action.START, 400, text)
    assert isinstance(error, InvalidRequestError)
    assert error.reason == "duplicate start"
