"""Mapping an HTTP response to an error (spec §3, D4, D5)."""

from __future__ import annotations

import pytest

from orchestrator.krtc.enums import Action
from orchestrator.krtc.errors import (
    AuthError,
    ConflictError,
    InvalidRequestError,
    KrtcApiError,
    NotFoundError,
    PermanentError,
    RateLimitedError,
    ServerError,
    TransientError,
    TransportError,
    error_for_response,
    parse_error_body,
)

A = Action.START


def mapped(status: int, text: str = "", headers: dict[str, str] | None = None) -> KrtcApiError:
    error = error_for_response(A, status, text, headers)
    assert error is not None, f"HTTP {status} {text!r} was taken for a success"
    return error


@pytest.mark.parametrize(
    "text",
    ['{"sid": "abc"}', '{"code": 0, "sid": "abc"}', "", '{"sid": "abc", "reason": "fine"}'],
)
def test_a_200_without_an_error_code_is_a_success(text: str) -> None:
    assert error_for_response(A, 200, text) is None


@pytest.mark.parametrize(
    ("code", "kind"),
    [
        (400, InvalidRequestError),
        (401, AuthError),
        (404, NotFoundError),
        (409, ConflictError),
        (500, ServerError),
    ],
)
def test_a_200_with_a_non_zero_code_is_that_error(code: int, kind: type[KrtcApiError]) -> None:
    # spec D5
    error = mapped(200, f'{{"code": {code}, "reason": "said so"}}')
    assert type(error) is kind
    assert (error.status, error.code, error.reason) == (200, code, "said so")
    assert f"code {code}" in str(error)


# (status, body, class, retryable, kind)
TABLE: list[tuple[int, str, type[KrtcApiError], bool, str]] = [
    (400, '{"code": 400, "reason": "bad cname"}', InvalidRequestError, False, "invalid_request"),
    (401, '{"code": 401, "reason": "no permission"}', AuthError, False, "auth"),
    (403, '{"code": 403, "reason": "forbidden"}', AuthError, False, "auth"),
    (404, '{"code": 404, "reason": "task not found"}', NotFoundError, False, "not_found"),
    (409, '{"code": 409, "reason": "already started"}', ConflictError, False, "conflict"),
    (429, '{"code": 429, "reason": "slow down"}', RateLimitedError, True, "rate_limited"),
    (500, '{"code": 500, "reason": "internal"}', ServerError, True, "server_error"),
    (502, "", ServerError, True, "server_error"),
    (503, "", ServerError, True, "server_error"),
    (504, "", ServerError, True, "server_error"),
    (405, "", PermanentError, False, "permanent"),
    (418, '{"reason": "teapot"}', PermanentError, False, "permanent"),
    (422, "", PermanentError, False, "permanent"),
]


@pytest.mark.parametrize(("status", "text", "cls", "retryable", "kind"), TABLE)
def test_status_maps_to_its_error(
    status: int, text: str, cls: type[KrtcApiError], retryable: bool, kind: str
) -> None:
    error = mapped(status, text)
    assert type(error) is cls
    assert error.retryable is retryable
    assert isinstance(error, TransientError) is retryable
    assert error.status == status and error.code == status
    assert error.action is A
    assert error.to_dict()["kind"] == kind
    assert A.value in str(error) and f"HTTP {status}" in str(error)


def test_to_dict_has_kind_status_code_reason() -> None:
    error = mapped(400, '{"code": 400, "reason": "bad cname"}')
    assert error.to_dict() == {
        "kind": "invalid_request",
        "status": 400,
        "code": 400,
        "reason": "bad cname",
    }


def test_permanent_errors_are_permanent_and_not_found_is_not_transient() -> None:
    assert isinstance(mapped(400), PermanentError)
    assert isinstance(mapped(403), PermanentError)
    assert not isinstance(mapped(404), (PermanentError, TransientError))
    assert not mapped(404).retryable


@pytest.mark.parametrize("status", [401, 403])
def test_auth_errors_hint_at_the_keys_and_the_clock(status: int) -> None:
    message = str(mapped(status, '{"reason": "signature mismatch"}'))
    assert "signature mismatch" in message
    assert "clock" in message
    assert "KRTC_SECRET_KEY" in message


def test_other_errors_carry_no_auth_hint() -> None:
    assert "clock" not in str(mapped(400, '{"reason": "bad"}'))


def test_conflict_carries_the_sid_of_the_running_recording() -> None:
    error = mapped(409, '{"code": 409, "reason": "already", "sid": "c4pl5e1kereqmo8pac40"}')
    assert isinstance(error, ConflictError)
    assert error.sid == "c4pl5e1kereqmo8pac40"


@pytest.mark.parametrize(
    "text", ['{"code": 409, "reason": "already"}', '{"sid": ""}', '{"sid": 7}', "conflict"]
)
def test_conflict_without_a_usable_sid(text: str) -> None:
    error = mapped(409, text)
    assert isinstance(error, ConflictError)
    assert error.sid is None


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"Retry-After": "7"}, 7.0),
        ({"retry-after": "2.5"}, 2.5),
        ({"RETRY-AFTER": "-3"}, 0.0),
        ({"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"}, None),
        ({}, None),
        (None, None),
    ],
)
def test_rate_limited_reads_retry_after(
    headers: dict[str, str] | None, expected: float | None
) -> None:
    error = mapped(429, "", headers)
    assert isinstance(error, RateLimitedError)
    assert error.retryable
    assert error.retry_after_s == expected


def test_the_sources_malformed_error_body_is_read() -> None:
    text = '{"code": 400, reason: "duplicate start"}'
    assert parse_error_body(text) == (400, "duplicate start", {})
    error = mapped(400, text)
    assert isinstance(error, InvalidRequestError)
    assert (error.code, error.reason) == (400, "duplicate start")
    assert error.body == text


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('{"code": 404, "reason": "task not found"}', (404, "task not found")),
        ('{"code": 500, "message": "boom"}', (500, "boom")),
        ('{"code": true}', (None, None)),
        ('{"code": "400"}', (None, None)),
        ("[1, 2]", (None, None)),
        ("", (None, None)),
        ("<html>Bad Gateway</html>", (None, None)),
        ('code: 503 reason: "upstream"', (503, "upstream")),
    ],
)
def test_parse_error_body(text: str, expected: tuple[int | None, str | None]) -> None:
    code, reason, _ = parse_error_body(text)
    assert (code, reason) == expected


def test_parse_error_body_returns_the_fields_of_a_json_body() -> None:
    assert parse_error_body('{"code": 409, "sid": "s"}')[2] == {"code": 409, "sid": "s"}


def test_a_non_json_body_is_the_reason() -> None:
    error = mapped(502, "<html>Bad Gateway</html>")
    assert isinstance(error, ServerError)
    assert error.reason == "<html>Bad Gateway</html>"
    assert error.code == 502
    assert "Bad Gateway" in str(error)


def test_an_empty_body_gives_the_status_as_reason() -> None:
    error = mapped(503, "")
    assert error.reason == "HTTP 503"
    assert error.to_dict() == {
        "kind": "server_error",
        "status": 503,
        "code": 503,
        "reason": "HTTP 503",
    }


def test_a_json_body_without_reason_does_not_become_the_reason() -> None:
    error = mapped(404, '{"code": 404}')
    assert error.reason == "HTTP 404"


def test_a_long_body_is_cut() -> None:
    error = mapped(500, "x" * 5000)
    assert error.body is not None and len(error.body) == 2000
    assert len(error.reason) <= 200


def test_the_request_id_header_is_kept() -> None:
    error = mapped(500, "", {"X-KSS-Request-Id": "req-42"})
    assert error.request_id == "req-42"
    assert "req-42" in repr(error)


def test_transport_errors_are_transient() -> None:
    error = TransportError(A, "read timed out", maybe_applied=True)
    assert error.retryable and error.maybe_applied
    assert error.status is None
    assert "no response" in str(error)
    assert error.to_dict() == {
        "kind": "transport",
        "status": None,
        "code": None,
        "reason": "read timed out",
    }
