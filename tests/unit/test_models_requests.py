"""Requests on a running recording (spec §5–§8): query, stop, update, update-layout."""

from __future__ import annotations

from typing import Any

import pytest

from orchestrator.krtc.enums import Action
from orchestrator.krtc.models import (
    REQUEST_MODELS,
    QueryRequest,
    StartRequest,
    StopRequest,
    UpdateLayoutRequest,
    UpdateRequest,
)
from tests.unit.data.bodies import (
    DELETE,
    assert_error,
    changed,
    errors_of,
    layout_body,
    only_error,
    parse,
    ref_body,
    region,
    update_body,
)

SS = "clientRequest.streamSubscribe"
LCR = "clientRequest"
LC = "clientRequest.layoutConfig"
ENUM = "must be one of"


def test_each_action_has_its_request_model() -> None:
    assert REQUEST_MODELS == {
        Action.START: StartRequest,
        Action.UPDATE: UpdateRequest,
        Action.QUERY: QueryRequest,
        Action.UPDATE_LAYOUT: UpdateLayoutRequest,
        Action.STOP: StopRequest,
    }
    for action, model in REQUEST_MODELS.items():
        assert model.action is action


# --- query and stop: appId, cname, sid, mode ----------------------------------------------------

REF_ACTIONS = [Action.QUERY, Action.STOP]

REF_VALID: list[dict[str, Any]] = [
    {},
    {"mode": "individual"},
    {"sid": "c4pl5e1kereqmo8pac40"},
]


@pytest.mark.parametrize("action", REF_ACTIONS)
@pytest.mark.parametrize("changes", REF_VALID)
def test_query_and_stop_bodies_are_sent_as_given(action: Action, changes: dict[str, Any]) -> None:
    body = changed(ref_body(), changes)
    request = parse(action, body)
    assert isinstance(request, REQUEST_MODELS[action])
    assert request.to_wire() == body


REF_INVALID: list[tuple[dict[str, Any], str, tuple[str, ...]]] = [
    ({"appId": DELETE}, "appId", ("appId is required",)),
    ({"cname": DELETE}, "cname", ("cname is required",)),
    ({"sid": DELETE}, "sid", ("sid is required",)),
    ({"mode": DELETE}, "mode", ("mode is required",)),
    ({"sid": ""}, "sid", ("must not be empty",)),
    ({"appId": 1234}, "appId", ("must be a string", "got 1234")),
    ({"mode": "mixed"}, "mode", (ENUM, '"individual"', '"mix"', 'got "mixed"')),
    ({"mode": 1}, "mode", (ENUM, "got 1")),
    ({"clientRequest": {}}, "clientRequest", ("not a field",)),
    ({"Sid": "s"}, "Sid", ("Sid is not a field", "spelling")),
]


@pytest.mark.parametrize("action", REF_ACTIONS)
@pytest.mark.parametrize(("changes", "path", "words"), REF_INVALID)
def test_query_and_stop_reject_each_broken_rule(
    action: Action, changes: dict[str, Any], path: str, words: tuple[str, ...]
) -> None:
    assert_error(only_error(action, changed(ref_body(), changes)), path, words)


def test_a_bare_query_lists_every_missing_field() -> None:
    errors = errors_of(Action.QUERY, {})
    assert [e.path for e in errors] == ["appId", "cname", "sid", "mode"]
    assert all(e.message.endswith("is required") for e in errors)


# --- update: streamSubscribe ----------------------------------------------------------------------

UPDATE_VALID: list[dict[str, Any]] = [
    {},
    {f"{SS}.videoUidList": DELETE},
    {f"{SS}.audioUidList": DELETE},
    {f"{SS}.videoUidList": {}, f"{SS}.audioUidList": DELETE},
    {f"{SS}.videoUidList.subscribeVideoUids": DELETE},
    {f"{SS}.audioUidList.unSubscribeAudioUids": ["4", "5", "6"]},
    {"mode": "individual"},
]


@pytest.mark.parametrize("changes", UPDATE_VALID)
def test_update_bodies_are_sent_as_given(changes: dict[str, Any]) -> None:
    body = changed(update_body(), changes)
    assert parse(Action.UPDATE, body).to_wire() == body


def test_update_uses_the_spec_wire_names() -> None:
    request = UpdateRequest.model_validate(
        {
            "app_id": "a",
            "cname": "c",
            "sid": "s",
            "mode": "mix",
            "client_request": {
                "stream_subscribe": {
                    "video_uid_list": {"un_subscribe_video_uids": ["2"]},
                    "audio_uid_list": {"subscribe_audio_uids": ["3"]},
                }
            },
        }
    )
    assert request.to_wire() == {
        "appId": "a",
        "cname": "c",
        "sid": "s",
        "mode": "mix",
        "clientRequest": {
            "streamSubscribe": {
                "videoUidList": {"unSubscribeVideoUids": ["2"]},
                "audioUidList": {"subscribeAudioUids": ["3"]},
            }
        },
    }


UPDATE_INVALID: list[tuple[dict[str, Any], str, tuple[str, ...]]] = [
    ({"clientRequest": DELETE}, "clientRequest", ("clientRequest is required",)),
    ({SS: DELETE}, SS, ("streamSubscribe is required",)),
    ({"sid": DELETE}, "sid", ("sid is required",)),
    (
        {f"{SS}.videoUidList.subscribeVideoUids": "1"},
        f"{SS}.videoUidList.subscribeVideoUids",
        ("must be a list",),
    ),
    (
        {f"{SS}.audioUidList.subscribeAudioUids": ["3", 4]},
        f"{SS}.audioUidList.subscribeAudioUids[1]",
        ("must be a string", "got 4"),
    ),
    (
        {f"{SS}.audioUidList.unSubscribeAudioUids": [""]},
        f"{SS}.audioUidList.unSubscribeAudioUids[0]",
        ("must not be empty",),
    ),
    (
        {f"{SS}.videoUidList.unsubscribeVideoUids": ["2"]},
        f"{SS}.videoUidList.unsubscribeVideoUids",
        ("unsubscribeVideoUids is not a field",),
    ),
    # An audio list in the video object is a mistake worth naming.
    (
        {f"{SS}.videoUidList.subscribeAudioUids": ["2"]},
        f"{SS}.videoUidList.subscribeAudioUids",
        ("not a field",),
    ),
    ({f"{SS}.audioUidList": []}, f"{SS}.audioUidList", ("must be an object",)),
]


@pytest.mark.parametrize(("changes", "path", "words"), UPDATE_INVALID)
def test_update_rejects_each_broken_rule(
    changes: dict[str, Any], path: str, words: tuple[str, ...]
) -> None:
    assert_error(only_error(Action.UPDATE, changed(update_body(), changes)), path, words)


# --- update-layout (spec D10) ---------------------------------------------------------------------

LAYOUT_VALID: list[dict[str, Any]] = [
    {},
    {f"{LCR}.mixedVideoLayout": 0, LC: DELETE},
    {f"{LCR}.mixedVideoLayout": 2, LC: DELETE},
    {f"{LCR}.backgroundColor": "#FF0000"},
    {f"{LCR}.backgroundImage": "https://x/bg.png"},
    {f"{LCR}.defaultUserBackgroundImage": "https://x/user.png"},
    {f"{LCR}.backgroundConfig": [{"uid": "1", "image_url": "https://x/1.png"}]},
    {LC: [region(w=0.05, h=0.05, uid=str(n)) for n in range(17)]},
    {LC: [region(x=0.5, y=0.5, alpha=0.5, render_mode=2)]},
]


@pytest.mark.parametrize("changes", LAYOUT_VALID)
def test_update_layout_bodies_are_sent_as_given(changes: dict[str, Any]) -> None:
    body = changed(layout_body(), changes)
    assert parse(Action.UPDATE_LAYOUT, body).to_wire() == body


LAYOUT_INVALID: list[tuple[dict[str, Any], str, tuple[str, ...]]] = [
    ({"sid": DELETE}, "sid", ("sid is required",)),
    ({"uid": DELETE}, "uid", ("uid is required",)),
    ({"appId": DELETE}, "appId", ("appId is required",)),
    ({LCR: DELETE}, LCR, ("clientRequest is required",)),
    (
        {f"{LCR}.mixedVideoLayout": DELETE, LC: DELETE},
        f"{LCR}.mixedVideoLayout",
        ("mixedVideoLayout is required",),
    ),
    ({f"{LCR}.mixedVideoLayout": 4}, f"{LCR}.mixedVideoLayout", (ENUM, "3 (custom)", "got 4")),
    ({f"{LCR}.mixedVideoLayout": "3"}, f"{LCR}.mixedVideoLayout", (ENUM, 'got "3"')),
    ({LC: DELETE}, LC, ("at least one region", "mixedVideoLayout is 3")),
    ({LC: []}, LC, ("at least one region", "mixedVideoLayout is 3")),
    ({"mode": "individual"}, "mode", ("must be mix", "individual recording", 'got "individual"')),
    ({f"{LCR}.backgroundColor": "#F00"}, f"{LCR}.backgroundColor", ('"#" followed by 6 hex',)),
    ({f"{LC}[0].alpha": 100}, f"{LC}[0].alpha", ("fraction in [0, 1]", "opaque", "got 100")),
    ({f"{LC}[0].x_axis": 1.2}, f"{LC}[0].x_axis", ("fraction of the canvas", "got 1.2")),
    ({f"{LC}[0].x_axis": 0.9}, f"{LC}[0].width", ("right edge", "x_axis + width = 1.4")),
    ({f"{LC}[0].render_mode": 3}, f"{LC}[0].render_mode", (ENUM, "1 (fill and crop)")),
    ({LC: [region(w=0.05, h=0.05)] * 18}, LC, ("at most 17",)),
    (
        {f"{LCR}.backgroundConfig": [{"uid": "1", "imageUrl": "https://x/1.png"}]},
        f"{LCR}.backgroundConfig[0].image_url",
        ("image_url is required",),
    ),
    ({f"{LCR}.backgroundImage": ""}, f"{LCR}.backgroundImage", ("must not be empty",)),
    ({f"{LC}[0].xAxis": 0.1}, f"{LC}[0].xAxis", ("xAxis is not a field",)),
    ({f"{LCR}.streamSubscribe": {}}, f"{LCR}.streamSubscribe", ("not a field",)),
]


@pytest.mark.parametrize(("changes", "path", "words"), LAYOUT_INVALID)
def test_update_layout_rejects_each_broken_rule(
    changes: dict[str, Any], path: str, words: tuple[str, ...]
) -> None:
    errors = errors_of(Action.UPDATE_LAYOUT, changed(layout_body(), changes))
    matching = [e for e in errors if e.path == path]
    assert matching, [str(e) for e in errors]
    assert_error(matching[0], path, words)
    # Only the imageUrl typo brings a second error: the real name is then missing.
    assert len(errors) == (2 if "backgroundConfig" in path else 1), [str(e) for e in errors]


def test_update_layout_reports_an_unknown_region_field_with_the_missing_one() -> None:
    body = changed(
        layout_body(), {f"{LC}[0]": {"xAxis": 0.1, "y_axis": 0, "width": 0.1, "height": 0.1}}
    )
    errors = errors_of(Action.UPDATE_LAYOUT, body)
    assert {e.path for e in errors} == {f"{LC}[0].x_axis", f"{LC}[0].xAxis"}


def test_update_layout_sends_uid_and_layout_with_wire_names() -> None:
    request = UpdateLayoutRequest.model_validate(
        {
            "app_id": "a",
            "cname": "c",
            "sid": "s",
            "uid": "u",
            "mode": "mix",
            "client_request": {
                "mixed_video_layout": 3,
                "background_color": "#000000",
                "layout_config": [{"x_axis": 0.1, "y_axis": 0.1, "width": 0.1, "height": 0.1}],
            },
        }
    )
    wire = request.to_wire()
    assert wire["uid"] == "u" and wire["sid"] == "s" and wire["appId"] == "a"
    assert wire["clientRequest"] == {
        "mixedVideoLayout": 3,
        "backgroundColor": "#000000",
        "layoutConfig": [{"x_axis": 0.1, "y_axis": 0.1, "width": 0.1, "height": 0.1}],
    }
