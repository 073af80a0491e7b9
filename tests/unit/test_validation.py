"""Field errors: JSON paths, plain words, several at once, and secrets never echoed."""

from __future__ import annotations

import json
from typing import Any

import pytest

from orchestrator.errors import OrchestratorError
from orchestrator.krtc.enums import Action
from orchestrator.krtc.models import QueryRequest, StartRequest
from orchestrator.krtc.validation import (
    FieldError,
    RequestValidationError,
    format_path,
    parse_request,
    validate_model,
)
from tests.conftest import SENTINEL_STORAGE_SECRET as SECRET
from tests.unit.data.bodies import (
    TC,
    changed,
    ref_body,
    region,
    start_body,
    storage_config,
)

LC = f"{TC}.layoutConfig"
STORAGE = "clientRequest.storageConfig"


def rejection(action: Action, data: Any) -> RequestValidationError:
    with pytest.raises(RequestValidationError) as info:
        parse_request(action, data)
    return info.value


@pytest.mark.parametrize(
    ("loc", "path"),
    [
        ((), "(body)"),
        (("appId",), "appId"),
        (("clientRequest", "layoutConfig", 2, "alpha"), "clientRequest.layoutConfig[2].alpha"),
        (("pushUrls", 0), "pushUrls[0]"),
        ((0, "x_axis"), "[0].x_axis"),
    ],
)
def test_paths_are_json_paths(loc: tuple[str | int, ...], path: str) -> None:
    assert format_path(loc) == path


def test_the_documented_example_message_exactly() -> None:
    regions = [region(w=0.2, h=0.2), region(w=0.2, h=0.2), region(w=0.2, h=0.2, alpha=100)]
    body = changed(start_body(), {f"{TC}.mixedVideoLayout": 3, LC: regions})
    error = rejection(Action.START, body)
    assert [str(e) for e in error.errors] == [
        "clientRequest.recordingConfig.transcodingConfig.layoutConfig[2].alpha: "
        "alpha is a fraction in [0, 1] (1.0 = opaque), got 100"
    ]
    assert str(error) == (
        "invalid CloudRecordingStart request: 1 error\n"
        "  clientRequest.recordingConfig.transcodingConfig.layoutConfig[2].alpha: "
        "alpha is a fraction in [0, 1] (1.0 = opaque), got 100"
    )
    # The same region with an opaque alpha of 1.0 passes.
    fixed = changed(body, {f"{LC}[2].alpha": 1.0})
    assert parse_request(Action.START, fixed).to_wire() == fixed


def test_several_errors_are_reported_at_once() -> None:
    body = changed(
        start_body(),
        {
            "mode": "both",
            "clientRequest.recordingConfig.maxIdleTime": 0,
            f"{TC}.audioChannels": 9,
            f"{TC}.backgroundColor": "black",
            "clientRequest.recordingFileConfig.avFileType": ["avi"],
        },
    )
    error = rejection(Action.START, body)
    expected = {
        "mode": "must be one of",
        "clientRequest.recordingConfig.maxIdleTime": "greater than 0",
        f"{TC}.audioChannels": "[1, 5]",
        f"{TC}.backgroundColor": "6 hex digits",
        "clientRequest.recordingFileConfig.avFileType[0]": "must be one of",
    }
    assert {e.path: e for e in error.errors}.keys() == expected.keys()
    for e in error.errors:
        assert expected[e.path] in e.message
        assert f"  {e}" in str(error)
    assert str(error).startswith("invalid CloudRecordingStart request: 5 errors\n")


def test_a_cross_field_rule_and_field_errors_are_reported_together() -> None:
    body = changed(
        start_body(),
        {
            "clientRequest.livePushConfig": {"pushUrls": ["rtmp://h/a/s"]},
            "clientRequest.snapshotConfig": {"fileType": ["jpg"]},
            "uid": "",
            "cname": 5,
        },
    )
    paths = [e.path for e in rejection(Action.START, body).errors]
    assert set(paths) == {"uid", "cname", "clientRequest.snapshotConfig"}


def test_field_error_shapes() -> None:
    error = FieldError("clientRequest.sid", "sid is required")
    assert str(error) == "clientRequest.sid: sid is required"
    assert error.to_dict() == {"path": "clientRequest.sid", "message": "sid is required"}


def test_request_validation_error_is_a_value_error_with_a_subject() -> None:
    error = rejection(Action.QUERY, ref_body(sid=""))
    assert isinstance(error, ValueError) and isinstance(error, OrchestratorError)
    assert error.subject == "CloudRecordingQuery request"
    assert [e.path for e in error.errors] == ["sid"]


def test_json_text_and_bytes_are_validated_too() -> None:
    text = json.dumps(ref_body())
    assert parse_request(Action.QUERY, text).to_wire() == ref_body()
    assert parse_request(Action.STOP, text.encode()).to_wire() == ref_body()
    bad = json.dumps(ref_body(mode="mixx"))
    assert [e.path for e in rejection(Action.QUERY, bad).errors] == ["mode"]


def test_json_text_is_strict_too() -> None:
    text = json.dumps(changed(start_body(), {"clientRequest.recordingConfig.maxIdleTime": "30"}))
    (error,) = rejection(Action.START, text).errors
    assert error.path == "clientRequest.recordingConfig.maxIdleTime"
    assert "must be an integer" in error.message


def test_invalid_json_is_one_error_about_the_body() -> None:
    error = rejection(Action.QUERY, '{"appId": "a",')
    assert [e.path for e in error.errors] == ["(body)"]
    assert "not valid JSON" in error.errors[0].message


def test_validate_model_names_the_model_by_default() -> None:
    with pytest.raises(RequestValidationError) as info:
        validate_model(QueryRequest, {})
    assert info.value.subject == "QueryRequest"
    assert validate_model(QueryRequest, ref_body()).sid == "sid-1"


# --- secrets ------------------------------------------------------------------------------------


def assert_secret_absent(error: RequestValidationError) -> None:
    assert SECRET not in str(error)
    assert SECRET not in repr(error)
    assert all(SECRET not in str(arg) for arg in error.args)
    for field_error in error.errors:
        assert SECRET not in str(field_error)
        assert SECRET not in json.dumps(field_error.to_dict())
    # pydantic's own error (whose text echoes input) is not chained on.
    assert error.__cause__ is None and error.__context__ is None


@pytest.mark.parametrize("wrong", [[SECRET], {"value": SECRET}, 12345])
def test_a_secret_key_of_the_wrong_type_is_not_echoed(wrong: Any) -> None:
    body = changed(start_body(), {STORAGE: storage_config(secretKey=wrong)})
    error = rejection(Action.START, body)
    assert_secret_absent(error)
    (field_error,) = error.errors
    assert field_error.path == f"{STORAGE}.secretKey"
    assert "must be a string" in field_error.message
    assert "got" not in field_error.message


def test_a_non_secret_field_of_the_wrong_type_is_echoed() -> None:
    # The counterpart: only secrets are hidden.
    body = changed(start_body(), {STORAGE: storage_config(accessKey=["AK-visible"])})
    (field_error,) = rejection(Action.START, body).errors
    assert field_error.path == f"{STORAGE}.accessKey"
    assert 'got ["AK-visible"]' in field_error.message


def test_an_empty_secret_key_is_an_error() -> None:
    body = changed(start_body(), {STORAGE: storage_config(secretKey="")})
    (field_error,) = rejection(Action.START, body).errors
    assert field_error.path == f"{STORAGE}.secretKey"
    assert "must not be empty" in field_error.message


def test_a_valid_secret_is_not_echoed_by_other_errors() -> None:
    body = changed(
        start_body(),
        {STORAGE: storage_config(secretKey=SECRET, vendor=9), "clientRequest.snapshotConfig": {}},
    )
    assert_secret_absent(rejection(Action.START, body))
    assert_secret_absent(rejection(Action.START, json.dumps(body)))


def test_a_misspelt_secret_key_field_is_not_echoed() -> None:
    body = changed(start_body(), {STORAGE: storage_config()})
    body["clientRequest"]["storageConfig"]["SecretKey"] = SECRET
    error = rejection(Action.START, body)
    assert_secret_absent(error)
    assert f"{STORAGE}.SecretKey" in [e.path for e in error.errors]


@pytest.mark.parametrize(
    "text",
    [
        '{"appId": "a", "clientRequest": {"storageConfig": {"secretKey": "' + SECRET + '"',
        '{"appId": "a", "secretKey": "' + SECRET + '" "cname": "c"}',
        '{"appId": "a", "secretKey": ' + SECRET + "}",
        '{"appId": "a", "secretKey": "' + SECRET + '\\x"}',
    ],
)
def test_invalid_json_holding_a_secret_does_not_echo_it(text: str) -> None:
    error = rejection(Action.START, text)
    assert_secret_absent(error)
    assert [e.path for e in error.errors] == ["(body)"]


def secret_request() -> StartRequest:
    body = changed(start_body(), {STORAGE: storage_config(secretKey=SECRET)})
    request = parse_request(Action.START, body)
    assert isinstance(request, StartRequest)
    return request


def test_the_secret_is_masked_for_display() -> None:
    request = secret_request()
    assert SECRET not in repr(request)
    assert SECRET not in str(request)
    assert SECRET not in json.dumps(request.redacted())
    assert SECRET not in request.model_dump_json()
    assert request.redacted()["clientRequest"]["storageConfig"]["secretKey"] == "**********"


def test_the_secret_is_revealed_only_on_the_wire() -> None:
    request = secret_request()
    assert request.to_wire()["clientRequest"]["storageConfig"]["secretKey"] == SECRET
    assert SECRET.encode() in request.to_wire_bytes()
    # The redacted view differs from the wire only by the secret.
    wire = request.to_wire()
    wire["clientRequest"]["storageConfig"]["secretKey"] = "**********"
    assert wire == request.redacted()
