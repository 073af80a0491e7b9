"""Valid request bodies, and a way to break one field at a time.

A change is a dotted wire path (``clientRequest.recordingConfig.layoutConfig[2].alpha``) and a
value; the value :data:`DELETE` removes the field instead.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from orchestrator.krtc.enums import Action
from orchestrator.krtc.models import ApiRequest
from orchestrator.krtc.validation import FieldError, RequestValidationError, parse_request

EXAMPLES_FILE = Path(__file__).with_name("examples.json")

#: Remove the field instead of setting it.
DELETE: Any = object()

_STEP = re.compile(r"([^.\[\]]+)|\[(\d+)\]")

TC = "clientRequest.recordingConfig.transcodingConfig"


def examples() -> dict[str, Any]:
    """The source's example bodies (a fresh copy each time)."""
    data: dict[str, Any] = json.loads(EXAMPLES_FILE.read_text(encoding="utf-8"))
    return data


def region(x: float = 0.0, y: float = 0.0, w: float = 0.5, h: float = 0.5, **more: Any) -> dict:
    return {"x_axis": x, "y_axis": y, "width": w, "height": h, **more}


def start_body(**overrides: Any) -> dict[str, Any]:
    """A valid mix-mode start with a transcoding config."""
    body: dict[str, Any] = {
        "appId": "app1",
        "cname": "room1",
        "uid": "rec1",
        "mode": "mix",
        "clientRequest": {
            "recordingConfig": {
                "maxIdleTime": 30,
                "transcodingConfig": {"width": 360, "height": 640, "fps": 15, "bitrate": 500},
            },
            "recordingFileConfig": {"avFileType": ["hls"]},
        },
    }
    body.update(overrides)
    return body


def storage_config(**overrides: Any) -> dict[str, Any]:
    """A valid storageConfig; an override of :data:`DELETE` leaves that field out."""
    config = {
        "vendor": 4,
        "region": 0,
        "bucket": "recordings",
        "accessKey": "AKstorage",
        "secretKey": "storage-secret",
        **overrides,
    }
    return {k: v for k, v in config.items() if v is not DELETE}


def ref_body(**overrides: Any) -> dict[str, Any]:
    """appId/cname/sid/mode: a valid query or stop body."""
    return {"appId": "app1", "cname": "room1", "sid": "sid-1", "mode": "mix", **overrides}


def update_body(**overrides: Any) -> dict[str, Any]:
    return ref_body(
        clientRequest={
            "streamSubscribe": {
                "videoUidList": {"subscribeVideoUids": ["1"], "unSubscribeVideoUids": ["2"]},
                "audioUidList": {"subscribeAudioUids": ["3"], "unSubscribeAudioUids": ["4"]},
            }
        },
        **overrides,
    )


def layout_body(**overrides: Any) -> dict[str, Any]:
    return ref_body(
        uid="rec1",
        clientRequest={"mixedVideoLayout": 3, "layoutConfig": [region(uid="1")]},
        **overrides,
    )


def _steps(path: str) -> list[str | int]:
    return [name if name else int(index) for name, index in _STEP.findall(path)]


def changed(body: dict[str, Any], changes: Mapping[str, Any]) -> dict[str, Any]:
    """A deep copy of ``body`` with each ``path: value`` applied in order."""
    out = copy.deepcopy(body)
    for path, value in changes.items():
        *parents, last = _steps(path)
        node: Any = out
        for step in parents:
            node = node[step]
        if value is DELETE:
            del node[last]
        else:
            node[last] = copy.deepcopy(value)
    return out


def errors_of(action: Action, body: Any) -> list[FieldError]:
    """The field errors of ``body``; fails the test if the body is valid."""
    try:
        parse_request(action, body)
    except RequestValidationError as exc:
        return exc.errors
    raise AssertionError(f"expected {action.value} to reject {body!r}")


def only_error(action: Action, body: Any) -> FieldError:
    """The one field error of ``body`` (fails if there are none or several)."""
    errors = errors_of(action, body)
    assert len(errors) == 1, [str(e) for e in errors]
    return errors[0]


def assert_error(error: FieldError, path: str, words: tuple[str, ...]) -> None:
    """The error is at ``path`` and its message says every one of ``words``."""
    assert error.path == path, str(error)
    for word in words:
        assert word in error.message, f"{word!r} not in {error.message!r}"


def parse(action: Action, body: Any) -> ApiRequest:
    return parse_request(action, body)
