"""Response bodies: lenient parsing that keeps unknown fields (spec D9), one view of fileList."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from orchestrator.krtc.enums import Action, RecordingStatus
from orchestrator.krtc.models import (
    RESPONSE_MODELS,
    FileInfo,
    QueryResponse,
    StartResponse,
    StopResponse,
    UpdateLayoutResponse,
    UpdateResponse,
)


def query(server_response: dict[str, Any] | None, **top: Any) -> QueryResponse:
    body: dict[str, Any] = {"sid": "sid-1", **top}
    if server_response is not None:
        body["serverResponse"] = server_response
    return QueryResponse.model_validate(body)


def test_each_action_has_its_response_model() -> None:
    assert RESPONSE_MODELS == {
        Action.START: StartResponse,
        Action.UPDATE: UpdateResponse,
        Action.QUERY: QueryResponse,
        Action.UPDATE_LAYOUT: UpdateLayoutResponse,
        Action.STOP: StopResponse,
    }
    for action, model in RESPONSE_MODELS.items():
        assert model.action is action


@pytest.mark.parametrize("model", list(RESPONSE_MODELS.values()))
def test_sid_responses_keep_unknown_fields(model: type[StartResponse]) -> None:
    parsed = model.model_validate({"sid": "abc", "requestId": "r-1", "extra": {"n": [1, 2]}})
    assert parsed.sid == "abc"
    assert parsed.model_extra == {"requestId": "r-1", "extra": {"n": [1, 2]}}
    assert parsed.to_json_dict() == {"sid": "abc", "requestId": "r-1", "extra": {"n": [1, 2]}}


@pytest.mark.parametrize("model", list(RESPONSE_MODELS.values()))
def test_a_response_that_is_not_an_object_is_an_error(model: type[StartResponse]) -> None:
    with pytest.raises(ValidationError):
        model.model_validate(["sid", "abc"])


def test_json_mode_file_list_is_a_list_of_file_infos() -> None:
    response = query(
        {
            "fileListMode": "json",
            "fileList": [
                {
                    "fileName": "a.m3u8",
                    "trackType": "audio",
                    "uid": "7",
                    "mixedAllUsers": False,
                    "isPlayable": True,
                    "sliceStartTime": 1_700_000_000_000,
                },
                {"fileName": "b.mp4", "trackType": "video", "uid": "8"},
            ],
            "status": 5,
        }
    )
    files = response.files
    assert [f.file_name for f in files] == ["a.m3u8", "b.mp4"]
    first = files[0]
    assert (first.track_type, first.uid, first.mixed_all_users, first.is_playable) == (
        "audio",
        "7",
        False,
        True,
    )
    assert first.slice_start_time == 1_700_000_000_000
    assert files[1].mixed_all_users is None


def test_string_mode_file_list_is_one_mixed_file() -> None:
    response = query({"fileListMode": "string", "fileList": "sid-1_room.m3u8", "status": 5})
    assert len(response.files) == 1
    only = response.files[0]
    assert (only.file_name, only.uid, only.mixed_all_users) == ("sid-1_room.m3u8", "0", True)


@pytest.mark.parametrize(
    "server_response",
    [
        {"status": 5},  # snapshotConfig set: neither fileListMode nor fileList
        {"fileListMode": "json", "fileList": [], "status": 5},
        {"fileListMode": "string", "fileList": "", "status": 1},
        None,
    ],
)
def test_no_files_is_an_empty_list(server_response: dict[str, Any] | None) -> None:
    assert query(server_response).files == []


def test_a_list_is_never_turned_into_a_file_name() -> None:
    # fileListMode and fileList disagree: the value's own type wins.
    response = query({"fileListMode": "string", "fileList": [{"fileName": "a.mp4"}]})
    assert [f.file_name for f in response.files] == ["a.mp4"]


def test_a_file_list_of_the_wrong_type_is_an_error() -> None:
    with pytest.raises(ValidationError):
        query({"fileListMode": "json", "fileList": 42})


@pytest.mark.parametrize("spelling", ["mixedAllUsers", "mixedAllUser"])
def test_both_spellings_of_mixed_all_users_are_read(spelling: str) -> None:
    info = FileInfo.model_validate({"fileName": "x", spelling: True})
    assert info.mixed_all_users is True
    assert info.model_extra == {}


def test_unknown_fields_are_kept_at_every_level() -> None:
    response = query(
        {
            "fileListMode": "json",
            "fileList": [{"fileName": "a", "trackType": "hologram", "sizeBytes": 10}],
            "status": 5,
            "region": "cn-beijing-6",
        },
        requestId="r-9",
    )
    assert response.model_extra == {"requestId": "r-9"}
    assert response.server_response is not None
    assert response.server_response.model_extra == {"region": "cn-beijing-6"}
    assert response.files[0].track_type == "hologram"
    assert response.files[0].model_extra == {"sizeBytes": 10}
    dumped = response.to_json_dict()
    assert dumped["requestId"] == "r-9"
    assert dumped["serverResponse"]["region"] == "cn-beijing-6"
    assert dumped["serverResponse"]["fileList"][0] == {
        "fileName": "a",
        "trackType": "hologram",
        "sizeBytes": 10,
    }


@pytest.mark.parametrize(
    ("status", "expected", "finished"),
    [
        (0, RecordingStatus.NOT_STARTED, False),
        (5, RecordingStatus.RECORDING, False),
        (7, RecordingStatus.COMPONENTS_STOPPED, False),
        (8, RecordingStatus.EXITED, True),
        (20, RecordingStatus.EXITED_ABNORMALLY, True),
    ],
)
def test_status_codes_are_read(status: int, expected: RecordingStatus, finished: bool) -> None:
    response = query({"status": status})
    assert response.status == status
    assert response.server_response is not None
    assert response.server_response.recording_status is expected
    assert expected.is_finished is finished


def test_an_unknown_status_is_kept_as_a_number_without_an_enum() -> None:
    response = query({"status": 42})
    assert response.status == 42
    assert response.server_response is not None
    assert response.server_response.recording_status is None


def test_missing_server_response_gives_no_status_and_no_files() -> None:
    response = QueryResponse.model_validate({})
    assert (response.sid, response.status, response.files) == (None, None, [])


def test_a_stop_response_may_carry_a_final_file_list() -> None:
    response = StopResponse.model_validate(
        {
            "sid": "s",
            "serverResponse": {"fileListMode": "string", "fileList": "s_room.m3u8"},
            "uploadingStatus": "uploaded",
        }
    )
    assert [f.file_name for f in response.files] == ["s_room.m3u8"]
    assert response.to_json_dict()["uploadingStatus"] == "uploaded"


def test_responses_parse_from_json_text() -> None:
    response = QueryResponse.model_validate_json(
        '{"sid":"s","serverResponse":{"fileListMode":"json",'
        '"fileList":[{"fileName":"a.mp4","mixedAllUser":true}],"status":20}}'
    )
    assert response.status == 20
    assert response.files[0].mixed_all_users is True
