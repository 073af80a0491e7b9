"""Sandbox: the five actions, statuses over time, identity rules (409, 404) and query answers."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from orchestrator.krtc import errors as e
from orchestrator.krtc.client import KrtcClient
from tests.integration.sandbox_fixture import SandboxHandle

pytestmark = pytest.mark.integration

APP, CNAME = "app1", "room-1"


def start_body(
    *,
    uid: str = "rec-1",
    mode: str = "mix",
    av: list[str] | None = None,
    cname: str = CNAME,
    **config: Any,
) -> dict[str, Any]:
    client_request: dict[str, Any] = {
        "recordingConfig": {"maxIdleTime": 30, **config.pop("recording", {})},
        "recordingFileConfig": {"avFileType": av or ["hls"]},
    }
    client_request.update(config)
    return {"appId": APP, "cname": cname, "uid": uid, "mode": mode, "clientRequest": client_request}


def ref(sid: str, mode: str = "mix", cname: str = CNAME) -> dict[str, str]:
    return {"appId": APP, "cname": cname, "sid": sid, "mode": mode}


@pytest.fixture
def client(sandbox: SandboxHandle) -> Iterator[KrtcClient]:
    with KrtcClient(sandbox.settings()) as c:
        yield c


@pytest.fixture
def slow(sandbox: SandboxHandle) -> SandboxHandle:
    """Long timings, moved through with the sandbox clock: statuses are then exact."""
    sandbox.configure(start_duration_s=10.0, stop_duration_s=10.0)
    return sandbox


# Start and statuses ----------------------------------------------------------------------------


def test_sid_has_the_servers_shape(client: KrtcClient) -> None:
    sids = {client.start(start_body(uid=f"u{i}")).sid for i in range(5)}

    assert len(sids) == 5
    for sid in sids:
        assert sid is not None and re.fullmatch(r"[0-9a-z]{20}", sid)


def test_status_moves_0_to_5_over_the_start_duration(
    slow: SandboxHandle, client: KrtcClient
) -> None:
    sid = client.start(start_body()).sid
    assert sid
    seen = [client.query(ref(sid)).status]
    for _ in range(5):
        slow.advance(2.0)
        seen.append(client.query(ref(sid)).status)

    assert seen == [0, 1, 2, 3, 4, 5]


def test_status_reaches_5_in_real_time(sandbox: SandboxHandle, client: KrtcClient) -> None:
    # The test sandbox reaches 5 after 0.2 s.
    sid = client.start(start_body()).sid
    assert sid
    first = client.query(ref(sid)).status
    time.sleep(0.25)

    assert first is not None and first < 5
    assert client.query(ref(sid)).status == 5


def test_stop_moves_6_7_8(slow: SandboxHandle, client: KrtcClient) -> None:
    sid = client.start(start_body()).sid
    assert sid
    slow.advance(10.0)
    stopped = client.stop(ref(sid))
    seen = [stopped.status, client.query(ref(sid)).status]
    slow.advance(6.0)
    seen.append(client.query(ref(sid)).status)
    slow.advance(6.0)
    seen.append(client.query(ref(sid)).status)

    assert stopped.sid == sid
    assert seen == [6, 6, 7, 8]


def test_second_stop_while_stopping_is_accepted(slow: SandboxHandle, client: KrtcClient) -> None:
    sid = client.start(start_body()).sid
    assert sid
    client.stop(ref(sid))
    slow.advance(6.0)

    assert client.stop(ref(sid)).status == 7


def test_duplicate_start_of_an_active_recording_is_409(client: KrtcClient) -> None:
    client.start(start_body())
    with pytest.raises(e.ConflictError) as info:
        client.start(start_body())

    assert info.value.status == 409
    assert info.value.reason == "duplicate start"
    assert info.value.sid is None  # the running sid is not named by default


def test_409_names_the_sid_when_configured(sandbox: SandboxHandle, client: KrtcClient) -> None:
    sandbox.configure(conflict_sid_in_body=True)
    sid = client.start(start_body()).sid
    with pytest.raises(e.ConflictError) as info:
        client.start(start_body())

    assert info.value.sid == sid


def test_other_uid_or_channel_is_not_a_duplicate(client: KrtcClient) -> None:
    client.start(start_body())

    assert client.start(start_body(uid="rec-2")).sid
    assert client.start(start_body(cname="room-2")).sid


def test_same_uid_may_start_again_after_its_recording_ended(
    sandbox: SandboxHandle, client: KrtcClient
) -> None:
    first = client.start(start_body()).sid
    assert first
    client.stop(ref(first))
    with pytest.raises(e.ConflictError):
        client.start(start_body())  # still stopping (6/7): active
    sandbox.advance(0.2)

    second = client.start(start_body()).sid
    assert second and second != first
    assert client.query(ref(first)).status == 8


# 404 and 400 ---------------------------------------------------------------------------------


def test_unknown_sid_is_404_for_every_action(client: KrtcClient) -> None:
    unknown = ref("00000000000000000000")
    update = {**unknown, "clientRequest": {"streamSubscribe": {}}}
    layout = {**unknown, "uid": "rec-1", "clientRequest": {"mixedVideoLayout": 1}}
    for call, body in (
        (client.query, unknown),
        (client.stop, unknown),
        (client.update, update),
        (client.update_layout, layout),
    ):
        with pytest.raises(e.NotFoundError) as info:
            call(body)  # type: ignore[operator]
        assert info.value.status == 404


def test_sid_of_another_channel_is_404(client: KrtcClient) -> None:
    sid = client.start(start_body()).sid
    assert sid
    with pytest.raises(e.NotFoundError):
        client.query(ref(sid, cname="elsewhere"))


def test_update_layout_and_stop_of_an_ended_recording_are_404(
    sandbox: SandboxHandle, client: KrtcClient
) -> None:
    sid = client.start(start_body()).sid
    assert sid
    client.stop(ref(sid))
    sandbox.advance(0.2)
    update = {**ref(sid), "clientRequest": {"streamSubscribe": {}}}
    layout = {**ref(sid), "uid": "rec-1", "clientRequest": {"mixedVideoLayout": 1}}

    assert client.query(ref(sid)).status == 8
    for call, body in ((client.stop, ref(sid)), (client.update, update)):
        with pytest.raises(e.NotFoundError, match="has ended"):
            call(body)  # type: ignore[operator]
    with pytest.raises(e.NotFoundError):
        client.update_layout(layout)


def test_query_answers_8_for_the_retention_time_then_404(
    sandbox: SandboxHandle, client: KrtcClient
) -> None:
    sandbox.configure(retention_s=30.0)
    sid = client.start(start_body()).sid
    assert sid
    client.stop(ref(sid))
    sandbox.advance(0.2)
    assert client.query(ref(sid)).status == 8
    sandbox.advance(29.0)
    assert client.query(ref(sid)).status == 8
    sandbox.advance(2.0)

    with pytest.raises(e.NotFoundError):
        client.query(ref(sid))
    assert sandbox.recordings() == []


def test_update_layout_of_an_individual_recording_is_400(client: KrtcClient) -> None:
    sid = client.start(start_body(mode="individual")).sid
    assert sid
    # The body says mix (so the client sends it); the recording is individual.
    layout = {**ref(sid), "uid": "rec-1", "clientRequest": {"mixedVideoLayout": 1}}
    with pytest.raises(e.InvalidRequestError) as info:
        client.update_layout(layout)

    assert info.value.status == 400
    assert "individual" in info.value.reason


def test_update_layout_saying_individual_is_400_from_the_field_rules(
    sandbox: SandboxHandle,
) -> None:
    body = {**ref("c4pl5e1kereqmo8pac40", "individual"), "uid": "u"}
    body["clientRequest"] = {"mixedVideoLayout": 1}
    response = sandbox.post("CloudRecordingUpdateLayout", body)

    assert response.status_code == 400
    assert response.json()["reason"].startswith("invalid parameters: mode:")


def test_update_layout_of_a_mix_recording_is_kept(
    sandbox: SandboxHandle, client: KrtcClient
) -> None:
    sid = client.start(start_body()).sid
    assert sid
    layout = {**ref(sid), "uid": "rec-1", "clientRequest": {"mixedVideoLayout": 2}}

    assert client.update_layout(layout).sid == sid
    assert sandbox.recording(sid)["layout"] == {"mixedVideoLayout": 2}


@pytest.mark.parametrize(
    ("body", "action", "reason"),
    [
        (b"{not json", "CloudRecordingQuery", "not valid JSON"),
        (b"[1, 2]", "CloudRecordingQuery", "must be a JSON object"),
        (b"\xff\xfe", "CloudRecordingQuery", "not valid JSON"),
        (None, "CloudRecordingPause", "unknown action 'CloudRecordingPause'"),
        (
            {"appId": APP, "cname": CNAME, "mode": "mix"},
            "CloudRecordingQuery",
            "sid: sid is required",
        ),
        (
            {"appId": APP, "cname": CNAME, "sid": "x", "mode": "mixed"},
            "CloudRecordingQuery",
            "mode:",
        ),
    ],
)
def test_bad_requests_are_400_with_a_reason(
    sandbox: SandboxHandle, body: Any, action: str | None, reason: str
) -> None:
    response = sandbox.post(action, body if body is not None else ref("x"))

    assert response.status_code == 400
    assert response.json()["code"] == 400
    assert reason in response.json()["reason"]


def test_wrong_version_is_400(sandbox: SandboxHandle) -> None:
    response = sandbox.post("CloudRecordingQuery", ref("x"), headers={"x-version": "v2"})

    assert response.status_code == 400
    assert "x-version" in response.json()["reason"]


def test_invalid_start_fields_are_400_with_every_field_named(sandbox: SandboxHandle) -> None:
    body = start_body(recording={"maxIdleTime": 0, "streamTypes": 7})
    body["clientRequest"]["snapshotConfig"] = {"captureInterval": 1, "fileType": ["jpg"]}

    response = sandbox.post("CloudRecordingStart", body)

    reason = response.json()["reason"]
    assert response.status_code == 400
    assert "maxIdleTime" in reason
    assert "captureInterval" in reason
    assert "streamTypes" in reason
    assert sandbox.recordings() == []


def test_mode_rules_of_the_shared_models_are_400(sandbox: SandboxHandle) -> None:
    response = sandbox.post(
        "CloudRecordingStart", start_body(mode="individual", recording={"audioProfile": 1})
    )

    assert response.status_code == 400
    assert "audioProfile" in response.json()["reason"]


def test_missing_action_header_is_refused_as_unsigned(sandbox: SandboxHandle) -> None:
    # spec D3: x-action must be signed, so a request without it fails the signature check.
    response = sandbox.post(None, ref("x"))

    assert response.status_code == 403
    assert "x-action" in response.json()["reason"]


def test_get_on_cloud_is_405_json(sandbox: SandboxHandle) -> None:
    response = requests.get(sandbox.url, timeout=5)

    assert response.status_code == 405
    assert response.json()["code"] == 405


# Query answers (spec §6) ------------------------------------------------------------------------


def test_mix_hls_answers_a_string_file_list(sandbox: SandboxHandle, client: KrtcClient) -> None:
    sid = client.start(start_body()).sid
    assert sid
    before = sandbox.post("CloudRecordingQuery", ref(sid)).json()["serverResponse"]
    sandbox.advance(0.2)

    after = sandbox.post("CloudRecordingQuery", ref(sid)).json()["serverResponse"]

    assert before == {"fileListMode": "string", "fileList": "", "status": 0, "sliceStartTime": 0}
    assert after["fileListMode"] == "string"
    assert after["fileList"] == f"{sid}_{CNAME}.m3u8"
    assert after["status"] == 5
    assert abs(after["sliceStartTime"] - time.time() * 1000) < 60_000  # Unix ms
    assert [f.file_name for f in client.query(ref(sid)).files] == [f"{sid}_{CNAME}.m3u8"]


def test_mix_hls_and_mp4_answers_a_json_list(sandbox: SandboxHandle, client: KrtcClient) -> None:
    sid = client.start(start_body(av=["hls", "mp4"])).sid
    assert sid
    sandbox.advance(0.2)

    answer = sandbox.post("CloudRecordingQuery", ref(sid)).json()["serverResponse"]

    assert answer["fileListMode"] == "json"
    items = answer["fileList"]
    assert [i["fileName"].rsplit(".", 1)[1] for i in items] == ["m3u8", "mp4"]
    for item in items:
        assert item["uid"] == "0"
        assert item["trackType"] == "audio_and_video"
        assert item["mixedAllUsers"] is True
        assert item["sliceStartTime"] == answer["sliceStartTime"] > 0
    assert [i["isPlayable"] for i in items] == [True, False]  # mp4 once finished
    typed = client.query(ref(sid)).files
    assert {f.uid for f in typed} == {"0"}


def test_mix_audio_only_is_an_audio_track(sandbox: SandboxHandle, client: KrtcClient) -> None:
    sid = client.start(start_body(av=["mp4"], recording={"streamTypes": 0})).sid
    assert sid
    sandbox.advance(0.2)

    items = client.query(ref(sid)).files
    assert [f.track_type for f in items] == ["audio"]


def test_individual_mode_lists_audio_and_video_per_user(
    sandbox: SandboxHandle, client: KrtcClient
) -> None:
    sandbox.set_users(APP, CNAME, ["alice", "bob"])
    sid = client.start(start_body(mode="individual")).sid
    assert sid
    sandbox.advance(0.2)

    answer = sandbox.post("CloudRecordingQuery", ref(sid, "individual")).json()
    files = answer["serverResponse"]["fileList"]

    assert answer["serverResponse"]["fileListMode"] == "json"
    assert sorted((f["uid"], f["trackType"]) for f in files) == [
        ("alice", "audio"),
        ("alice", "video"),
        ("bob", "audio"),
        ("bob", "video"),
    ]
    assert all(f["mixedAllUsers"] is False for f in files)


def test_individual_mode_honours_subscriptions_and_updates(
    sandbox: SandboxHandle, client: KrtcClient
) -> None:
    sandbox.set_users(APP, CNAME, ["alice", "bob"])
    body = start_body(mode="individual", recording={"unSubscribeVideoUids": ["bob"]})
    sid = client.start(body).sid
    assert sid
    sandbox.advance(0.2)
    tracks = {(f.uid, f.track_type) for f in client.query(ref(sid, "individual")).files}
    assert tracks == {("alice", "audio"), ("alice", "video"), ("bob", "audio")}

    update = {
        **ref(sid, "individual"),
        "clientRequest": {"streamSubscribe": {"audioUidList": {"subscribeAudioUids": ["bob"]}}},
    }
    assert client.update(update).sid == sid
    tracks = {(f.uid, f.track_type) for f in client.query(ref(sid, "individual")).files}
    assert tracks == {("alice", "video"), ("bob", "audio")}


def test_snapshot_recording_has_no_file_list(sandbox: SandboxHandle, client: KrtcClient) -> None:
    body = start_body(snapshotConfig={"captureInterval": 5, "fileType": ["jpg"]})
    sid = client.start(body).sid
    assert sid
    sandbox.advance(0.2)

    answer = sandbox.post("CloudRecordingQuery", ref(sid)).json()["serverResponse"]

    assert "fileList" not in answer
    assert "fileListMode" not in answer
    assert answer["status"] == 5


def test_storage_prefix_is_the_files_folder(sandbox: SandboxHandle, client: KrtcClient) -> None:
    storage = {
        "vendor": 4,
        "region": 0,
        "bucket": "b",
        "accessKey": "ak",
        "secretKey": "sk",
        "filenamePrefix": ["rec", "2024"],
    }
    sid = client.start(start_body(storageConfig=storage)).sid
    assert sid
    sandbox.advance(0.2)

    assert client.query(ref(sid)).files[0].file_name == f"rec/2024/{sid}_{CNAME}.m3u8"


# maxIdleTime ---------------------------------------------------------------------------------


def test_recording_in_an_empty_channel_exits_after_max_idle_time(
    sandbox: SandboxHandle, client: KrtcClient
) -> None:
    sandbox.set_users(APP, CNAME, [])
    sid = client.start(start_body(recording={"maxIdleTime": 5})).sid
    assert sid
    sandbox.advance(4.0)
    assert client.query(ref(sid)).status == 5
    sandbox.advance(1.5)

    assert client.query(ref(sid)).status == 8
    assert sandbox.recording(sid)["endReason"] == "idle"
    assert client.start(start_body()).sid  # the uid is free again


def test_users_in_the_channel_keep_the_recording_alive(
    sandbox: SandboxHandle, client: KrtcClient
) -> None:
    # Given a recording whose channel has a user
    sandbox.set_users(APP, CNAME, ["alice"])
    sid = client.start(start_body(recording={"maxIdleTime": 5})).sid
    assert sid
    sandbox.advance(60.0)
    assert client.query(ref(sid)).status == 5
    # When the user leaves, the idle clock starts
    sandbox.set_users(APP, CNAME, [])
    sandbox.advance(3.0)
    # And someone joining before maxIdleTime resets it
    sandbox.set_users(APP, CNAME, ["bob"])
    sandbox.set_users(APP, CNAME, [])
    sandbox.advance(3.0)
    assert client.query(ref(sid)).status == 5
    sandbox.advance(2.5)

    # Then it exits maxIdleTime after the channel last became empty
    assert client.query(ref(sid)).status == 8
