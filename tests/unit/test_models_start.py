"""CloudRecordingStart body (spec §4): every rule, with a body that passes and one that fails."""

from __future__ import annotations

import json
from typing import Any

import pytest

from orchestrator.krtc.enums import Action, Mode
from orchestrator.krtc.models import StartRequest
from tests.unit.data.bodies import (
    DELETE,
    TC,
    assert_error,
    changed,
    errors_of,
    only_error,
    parse,
    region,
    start_body,
    storage_config,
)

CR = "clientRequest"
RC = "clientRequest.recordingConfig"
LC = f"{TC}.layoutConfig"
SNAP = {"fileType": ["jpg"]}
PUSH = {"pushUrls": ["rtmp://live.example.com/app/stream"]}
ONE_OF_THREE = ("at most one of", "livePushConfig, snapshotConfig, storageConfig")
ENUM = "must be one of"
COLOUR = '"#" followed by 6 hex digits'


def _at(wire: Any, path: str) -> Any:
    node = wire
    for part in path.replace("]", "").replace("[", ".").split("."):
        node = node[int(part)] if part.isdigit() else node[part]
    return node


# (changes, the wire path to read back, the value expected there)
VALID: list[tuple[dict[str, Any], str, Any]] = [
    ({f"{RC}.maxIdleTime": 1}, f"{RC}.maxIdleTime", 1),
    ({f"{RC}.streamTypes": 0}, f"{RC}.streamTypes", 0),
    ({f"{RC}.streamTypes": 2}, f"{RC}.streamTypes", 2),
    ({f"{RC}.audioProfile": 0}, f"{RC}.audioProfile", 0),
    ({f"{RC}.audioProfile": 2}, f"{RC}.audioProfile", 2),
    ({f"{RC}.channelType": 1, f"{RC}.videoStreamType": 0}, f"{RC}.videoStreamType", 0),
    ({f"{RC}.unSubscribeVideoUids": ["4", "5"]}, f"{RC}.unSubscribeVideoUids", ["4", "5"]),
    ({f"{RC}.subscribeAudioUids": ["3"]}, f"{RC}.subscribeAudioUids", ["3"]),
    ({f"{TC}.audioChannels": 1}, f"{TC}.audioChannels", 1),
    ({f"{TC}.audioChannels": 5}, f"{TC}.audioChannels", 5),
    ({f"{TC}.videoCodecProfile": 66}, f"{TC}.videoCodecProfile", 66),
    ({f"{TC}.videoCodecProfile": 77}, f"{TC}.videoCodecProfile", 77),
    ({f"{TC}.videoCodecProfile": 100}, f"{TC}.videoCodecProfile", 100),
    ({f"{TC}.videoCodecType": 2}, f"{TC}.videoCodecType", 2),
    ({f"{TC}.audioCodecProfile": 1}, f"{TC}.audioCodecProfile", 1),
    ({f"{TC}.videoGop": 60}, f"{TC}.videoGop", 60),
    ({f"{TC}.audioSampleRate": 48000}, f"{TC}.audioSampleRate", 48000),
    ({f"{TC}.maxResolutionUid": "7"}, f"{TC}.maxResolutionUid", "7"),
    ({f"{TC}.backgroundColor": "#a1B2c3"}, f"{TC}.backgroundColor", "#a1B2c3"),
    ({f"{TC}.backgroundColor": "#000000"}, f"{TC}.backgroundColor", "#000000"),
    ({f"{TC}.mixedVideoLayout": 0}, f"{TC}.mixedVideoLayout", 0),
    ({f"{TC}.mixedVideoLayout": 3, LC: [region()]}, f"{LC}[0].width", 0.5),
    ({LC: [region(x=0.5, y=0.5)]}, f"{LC}[0].x_axis", 0.5),  # touches the corner: inside
    ({LC: [region(x=0, y=0, w=1, h=1)]}, f"{LC}[0].width", 1),  # integers are numbers too
    ({LC: [region(alpha=0)]}, f"{LC}[0].alpha", 0),
    ({LC: [region(alpha=1.0)]}, f"{LC}[0].alpha", 1.0),
    ({LC: [region(render_mode=2)]}, f"{LC}[0].render_mode", 2),
    ({LC: [region(w=0.05, h=0.05)] * 17}, f"{LC}[16].height", 0.05),
    (
        {f"{TC}.backgroundConfig": [{"uid": "1", "image_url": "https://x/1.png"}]},
        f"{TC}.backgroundConfig[0].image_url",
        "https://x/1.png",
    ),
    (
        {f"{CR}.recordingFileConfig.avFileType": ["mp4"]},
        f"{CR}.recordingFileConfig.avFileType",
        ["mp4"],
    ),
    (
        {f"{CR}.recordingFileConfig.avFileType": ["hls", "mp4"]},
        f"{CR}.recordingFileConfig.avFileType",
        ["hls", "mp4"],
    ),
    ({f"{CR}.livePushConfig": PUSH}, f"{CR}.livePushConfig.pushUrls", PUSH["pushUrls"]),
    ({f"{CR}.snapshotConfig": SNAP}, f"{CR}.snapshotConfig.fileType", ["jpg"]),
    (
        {f"{CR}.snapshotConfig": {"captureInterval": 5, **SNAP}},
        f"{CR}.snapshotConfig.captureInterval",
        5,
    ),
    (
        {f"{CR}.snapshotConfig": {"captureInterval": 3600, **SNAP}},
        f"{CR}.snapshotConfig.captureInterval",
        3600,
    ),
    ({f"{CR}.storageConfig": storage_config(vendor=0)}, f"{CR}.storageConfig.vendor", 0),
    ({f"{CR}.storageConfig": storage_config(vendor=4)}, f"{CR}.storageConfig.vendor", 4),
    (
        {f"{CR}.storageConfig": storage_config(filenamePrefix=["a", "b"])},
        f"{CR}.storageConfig.filenamePrefix",
        ["a", "b"],
    ),
    ({"mode": "individual", TC: DELETE}, "mode", "individual"),
]


@pytest.mark.parametrize(("changes", "path", "value"), VALID)
def test_valid_start_bodies_are_accepted_and_sent_as_given(
    changes: dict[str, Any], path: str, value: Any
) -> None:
    body = changed(start_body(), changes)
    wire = parse(Action.START, body).to_wire()
    assert _at(wire, path) == value
    assert wire == body


# (changes, expected error path, words the message must say)
INVALID: list[tuple[dict[str, Any], str, tuple[str, ...]]] = [
    # required fields
    ({"uid": DELETE}, "uid", ("uid is required",)),
    ({"mode": DELETE}, "mode", ("mode is required",)),
    ({"cname": DELETE}, "cname", ("cname is required",)),
    ({"appId": DELETE}, "appId", ("appId is required",)),
    ({CR: DELETE}, CR, ("clientRequest is required",)),
    ({RC: DELETE}, RC, ("recordingConfig is required",)),
    ({f"{CR}.recordingFileConfig": DELETE}, f"{CR}.recordingFileConfig", ("is required",)),
    (
        {f"{CR}.recordingFileConfig.avFileType": DELETE},
        f"{CR}.recordingFileConfig.avFileType",
        ("avFileType is required",),
    ),
    ({f"{TC}.width": DELETE}, f"{TC}.width", ("width is required",)),
    ({f"{TC}.height": DELETE}, f"{TC}.height", ("height is required",)),
    ({f"{TC}.fps": DELETE}, f"{TC}.fps", ("fps is required",)),
    ({f"{TC}.bitrate": DELETE}, f"{TC}.bitrate", ("bitrate is required",)),
    ({f"{CR}.livePushConfig": {}}, f"{CR}.livePushConfig.pushUrls", ("pushUrls is required",)),
    ({f"{CR}.snapshotConfig": {}}, f"{CR}.snapshotConfig.fileType", ("fileType is required",)),
    *[
        (
            {f"{CR}.storageConfig": storage_config(**{name: DELETE})},
            f"{CR}.storageConfig.{name}",
            (f"{name} is required",),
        )
        for name in ("vendor", "region", "bucket", "accessKey", "secretKey")
    ],
    *[
        ({LC: [{k: v for k, v in region().items() if k != name}]}, f"{LC}[0].{name}", ("required",))
        for name in ("x_axis", "y_axis", "width", "height")
    ],
    (
        {f"{TC}.backgroundConfig": [{"uid": "1"}]},
        f"{TC}.backgroundConfig[0].image_url",
        ("image_url is required",),
    ),
    ({"uid": ""}, "uid", ("must not be empty",)),
    ({"cname": "   "}, "cname", ("must not be empty",)),
    # enumerations
    ({"mode": "record"}, "mode", (ENUM, '"individual"', '"mix"', 'got "record"')),
    ({"mode": "MIX"}, "mode", (ENUM, 'got "MIX"')),
    (
        {f"{RC}.streamTypes": 3},
        f"{RC}.streamTypes",
        (ENUM, "0 (audio only)", "2 (audio and video)"),
    ),
    ({f"{RC}.audioProfile": 3}, f"{RC}.audioProfile", (ENUM, "0 (", "2 (", "got 3")),
    ({f"{TC}.videoCodecProfile": 101}, f"{TC}.videoCodecProfile", (ENUM, "66 (baseline)", "100")),
    ({f"{TC}.videoCodecType": 0}, f"{TC}.videoCodecType", (ENUM, "1 (h264)", "2 (h265)")),
    ({f"{TC}.audioCodecProfile": 2}, f"{TC}.audioCodecProfile", (ENUM, "0 (lc aac)", "1 (he aac)")),
    ({f"{TC}.mixedVideoLayout": 4}, f"{TC}.mixedVideoLayout", (ENUM, "3 (custom)", "got 4")),
    (
        {f"{CR}.storageConfig": storage_config(vendor=5)},
        f"{CR}.storageConfig.vendor",
        (ENUM, "0 (qiniu)", "4 (kingsoft cloud)", "got 5"),
    ),
    (
        {LC: [region(render_mode=0)]},
        f"{LC}[0].render_mode",
        (ENUM, "1 (fill and crop)", "2 (fit with bars)"),
    ),
    (
        {f"{CR}.recordingFileConfig.avFileType": ["flv"]},
        f"{CR}.recordingFileConfig.avFileType[0]",
        (ENUM, '"hls"', '"mp4"', 'got "flv"'),
    ),
    (
        {f"{CR}.snapshotConfig": {"fileType": ["png"]}},
        f"{CR}.snapshotConfig.fileType[0]",
        (ENUM, '"jpg"', 'got "png"'),
    ),
    (
        {f"{CR}.snapshotConfig": {"fileType": ["jpg", "jpg"]}},
        f"{CR}.snapshotConfig.fileType",
        ("at most 1 item",),
    ),
    (
        {f"{CR}.recordingFileConfig.avFileType": []},
        f"{CR}.recordingFileConfig.avFileType",
        ("must not be empty",),
    ),
    (
        {f"{CR}.recordingFileConfig.avFileType": ["hls", "mp4", "hls"]},
        f"{CR}.recordingFileConfig.avFileType",
        ("must not repeat",),
    ),
    # ranges
    ({f"{TC}.audioChannels": 0}, f"{TC}.audioChannels", ("[1, 5]", "got 0")),
    ({f"{TC}.audioChannels": 6}, f"{TC}.audioChannels", ("[1, 5]", "got 6")),
    (
        {f"{CR}.snapshotConfig": {"captureInterval": 4, **SNAP}},
        f"{CR}.snapshotConfig.captureInterval",
        ("[5, 3600]", "seconds", "got 4"),
    ),
    (
        {f"{CR}.snapshotConfig": {"captureInterval": 3601, **SNAP}},
        f"{CR}.snapshotConfig.captureInterval",
        ("[5, 3600]", "got 3601"),
    ),
    ({f"{RC}.maxIdleTime": 0}, f"{RC}.maxIdleTime", ("greater than 0", "got 0")),
    ({f"{RC}.maxIdleTime": -30}, f"{RC}.maxIdleTime", ("greater than 0", "got -30")),
    ({f"{TC}.width": 0}, f"{TC}.width", ("greater than 0",)),
    ({f"{TC}.height": -1}, f"{TC}.height", ("greater than 0",)),
    ({f"{TC}.fps": 0}, f"{TC}.fps", ("greater than 0",)),
    ({f"{TC}.bitrate": 0}, f"{TC}.bitrate", ("greater than 0",)),
    ({f"{TC}.videoGop": 0}, f"{TC}.videoGop", ("greater than 0",)),
    ({LC: [region(x=-0.1)]}, f"{LC}[0].x_axis", ("fraction of the canvas", "[0, 1]", "got -0.1")),
    ({LC: [region(y=1.5)]}, f"{LC}[0].y_axis", ("fraction of the canvas", "[0, 1]", "got 1.5")),
    ({LC: [region(w=2)]}, f"{LC}[0].width", ("fraction of the canvas", "got 2")),
    ({LC: [region(h=-1)]}, f"{LC}[0].height", ("fraction of the canvas", "got -1")),
    ({LC: [region(alpha=-0.5)]}, f"{LC}[0].alpha", ("fraction in [0, 1]", "opaque")),
    (
        {LC: [region(x=0.6, w=0.5)]},
        f"{LC}[0].width",
        ("right edge", "x_axis + width = 1.1", "at most 1"),
    ),
    (
        {LC: [region(), region(y=0.75, h=0.5)]},
        f"{LC}[1].height",
        ("bottom edge", "y_axis + height = 1.25", "at most 1"),
    ),
    ({LC: [region(w=0.05, h=0.05)] * 18}, LC, ("at most 17",)),
    # colours, URLs
    *[
        ({f"{TC}.backgroundColor": colour}, f"{TC}.backgroundColor", (COLOUR, f'got "{colour}"'))
        for colour in ("#FFF", "red", "000000", "#GGGGGG", "#0000000")
    ],
    *[
        (
            {f"{CR}.livePushConfig": {"pushUrls": [url]}},
            f"{CR}.livePushConfig.pushUrls[0]",
            ("rtmp://",),
        )
        for url in ("http://live.example.com/app/s", "rtmp://", "rtmps://live.example.com/a/s")
    ],
    (
        {f"{CR}.livePushConfig": {"pushUrls": []}},
        f"{CR}.livePushConfig.pushUrls",
        ("not be empty",),
    ),
    # at most one output
    (
        {f"{CR}.livePushConfig": PUSH, f"{CR}.snapshotConfig": SNAP},
        f"{CR}.snapshotConfig",
        ONE_OF_THREE,
    ),
    (
        {f"{CR}.livePushConfig": PUSH, f"{CR}.storageConfig": storage_config()},
        f"{CR}.storageConfig",
        ONE_OF_THREE,
    ),
    (
        {f"{CR}.snapshotConfig": SNAP, f"{CR}.storageConfig": storage_config()},
        f"{CR}.storageConfig",
        ONE_OF_THREE,
    ),
    (
        {
            f"{CR}.livePushConfig": PUSH,
            f"{CR}.snapshotConfig": SNAP,
            f"{CR}.storageConfig": storage_config(),
        },
        f"{CR}.snapshotConfig",
        ONE_OF_THREE,
    ),
    # mode rules
    ({"mode": "individual"}, TC, ("only allowed in mix mode",)),
    (
        {"mode": "individual", TC: DELETE, f"{RC}.audioProfile": 0},
        f"{RC}.audioProfile",
        ("cannot be set in individual mode",),
    ),
    ({f"{TC}.mixedVideoLayout": 3}, LC, ("at least one region", "mixedVideoLayout is 3")),
    ({f"{TC}.mixedVideoLayout": 3, LC: []}, LC, ("at least one region", "mixedVideoLayout is 3")),
    # strictness: never converted
    ({f"{RC}.maxIdleTime": "30"}, f"{RC}.maxIdleTime", ("must be an integer", 'got "30"')),
    ({f"{RC}.maxIdleTime": 1.5}, f"{RC}.maxIdleTime", ("must be an integer", "got 1.5")),
    ({f"{RC}.maxIdleTime": 30.0}, f"{RC}.maxIdleTime", ("must be an integer",)),
    ({f"{RC}.maxIdleTime": True}, f"{RC}.maxIdleTime", ("must be an integer", "got true")),
    ({f"{RC}.streamTypes": True}, f"{RC}.streamTypes", (ENUM, "got true")),
    ({f"{RC}.streamTypes": "2"}, f"{RC}.streamTypes", (ENUM, 'got "2"')),
    ({f"{RC}.streamTypes": 2.0}, f"{RC}.streamTypes", (ENUM,)),
    ({f"{RC}.channelType": "1"}, f"{RC}.channelType", ("must be an integer",)),
    (
        {f"{CR}.storageConfig": storage_config(region="0")},
        f"{CR}.storageConfig.region",
        ("integer",),
    ),
    ({LC: [region(x=True)]}, f"{LC}[0].x_axis", ("must be a number", "got true")),
    ({LC: [region(alpha="1")]}, f"{LC}[0].alpha", ("must be a number", 'got "1"')),
    ({"uid": 7}, "uid", ("must be a string", "got 7")),
    ({f"{RC}.subscribeVideoUids": "1"}, f"{RC}.subscribeVideoUids", ("must be a list",)),
    ({f"{RC}.subscribeVideoUids": [1]}, f"{RC}.subscribeVideoUids[0]", ("must be a string",)),
    ({TC: "yes"}, TC, ("must be an object",)),
    # unknown fields, named
    ({f"{RC}.maxIdletime": 30}, f"{RC}.maxIdletime", ("maxIdletime is not a field", "spelling")),
    ({"sid": "s"}, "sid", ("not a field",)),
    ({f"{TC}.bitRate": 500}, f"{TC}.bitRate", ("not a field",)),
    ({LC: [region(renderMode=1)]}, f"{LC}[0].renderMode", ("not a field",)),
]


@pytest.mark.parametrize(("changes", "path", "words"), INVALID)
def test_each_broken_rule_is_one_error_at_its_path(
    changes: dict[str, Any], path: str, words: tuple[str, ...]
) -> None:
    assert_error(only_error(Action.START, changed(start_body(), changes)), path, words)


def test_the_base_body_is_valid() -> None:
    # Every failing case above differs from this body by its changes only.
    assert isinstance(parse(Action.START, start_body()), StartRequest)


def test_minimal_body_is_sent_without_invented_defaults() -> None:
    body = changed(start_body(), {RC: {}})
    wire = parse(Action.START, body).to_wire()
    assert wire == body
    assert wire[CR]["recordingConfig"] == {}


def test_a_region_can_overflow_both_edges_at_once() -> None:
    errors = errors_of(Action.START, changed(start_body(), {LC: [region(x=0.7, y=0.7)]}))
    assert [e.path for e in errors] == [f"{LC}[0].width", f"{LC}[0].height"]
    assert "right edge" in errors[0].message and "bottom edge" in errors[1].message


def test_individual_mode_reports_transcoding_and_audio_profile_together() -> None:
    body = changed(start_body(), {"mode": "individual", f"{RC}.audioProfile": 1})
    errors = errors_of(Action.START, body)
    assert [e.path for e in errors] == [TC, f"{RC}.audioProfile"]


def test_transcoding_config_reports_every_missing_required_field() -> None:
    errors = errors_of(Action.START, changed(start_body(), {TC: {"mixedVideoLayout": 0}}))
    assert sorted(e.path for e in errors) == sorted(
        f"{TC}.{name}" for name in ("width", "height", "fps", "bitrate")
    )
    assert all(e.message.endswith("is required") for e in errors)


def test_misspelt_recording_file_config_is_accepted_and_sent_correctly() -> None:
    # spec D6: the source's table says "recodingFileConfig".
    body = start_body()
    body[CR]["recodingFileConfig"] = body[CR].pop("recordingFileConfig")
    wire = parse(Action.START, body).to_wire()
    assert wire[CR]["recordingFileConfig"] == {"avFileType": ["hls"]}
    assert "recodingFileConfig" not in wire[CR]


def test_both_spellings_at_once_is_an_error_naming_the_extra_one() -> None:
    body = start_body()
    body[CR]["recodingFileConfig"] = {"avFileType": ["mp4"]}
    assert_error(only_error(Action.START, body), f"{CR}.recodingFileConfig", ("not a field",))


def test_models_built_in_python_serialize_with_the_spec_wire_names() -> None:
    request = StartRequest.model_validate(
        {
            "uid": "rec1",
            "mode": Mode.MIX,
            "cname": "room1",
            "app_id": "app1",
            "client_request": {
                "recording_config": {
                    "max_idle_time": 60,
                    "un_subscribe_video_uids": ["9"],
                    "transcoding_config": {
                        "width": 640,
                        "height": 360,
                        "fps": 15,
                        "bitrate": 800,
                        "mixed_video_layout": 3,
                        "default_user_background_image": "https://x/bg.png",
                        "layout_config": [
                            {"x_axis": 0, "y_axis": 0, "width": 1, "height": 1, "render_mode": 2}
                        ],
                        "background_config": [{"uid": "9", "image_url": "https://x/9.png"}],
                    },
                },
                "recording_file_config": {"av_file_type": ["mp4"]},
                "storage_config": storage_config(filenamePrefix=["rec"]),
            },
        }
    )
    wire = request.to_wire()
    assert list(wire) == ["uid", "mode", "cname", "appId", "clientRequest"]
    assert set(wire[CR]) == {"recordingConfig", "recordingFileConfig", "storageConfig"}
    recording = wire[CR]["recordingConfig"]
    assert set(recording) == {"maxIdleTime", "unSubscribeVideoUids", "transcodingConfig"}
    transcoding = recording["transcodingConfig"]
    assert transcoding["mixedVideoLayout"] == 3
    assert transcoding["defaultUserBackgroundImage"] == "https://x/bg.png"
    assert set(transcoding["layoutConfig"][0]) == {
        "x_axis",
        "y_axis",
        "width",
        "height",
        "render_mode",
    }
    assert transcoding["backgroundConfig"] == [{"uid": "9", "image_url": "https://x/9.png"}]
    assert wire[CR]["recordingFileConfig"] == {"avFileType": ["mp4"]}
    assert wire[CR]["storageConfig"]["filenamePrefix"] == ["rec"]
    assert request.identity == ("app1", "room1", "rec1")


def test_wire_bytes_are_compact_json_of_the_wire_dict() -> None:
    request = parse(Action.START, start_body())
    raw = request.to_wire_bytes()
    assert json.loads(raw) == request.to_wire()
    assert b": " not in raw and b", " not in raw
