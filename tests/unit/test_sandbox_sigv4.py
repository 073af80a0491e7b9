"""The sandbox's SigV4 verifier, against signatures made by botocore at a fixed time."""

from __future__ import annotations

import calendar
import datetime as dt

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from orchestrator.sandbox.sigv4 import (
    SignatureError,
    SigV4Verifier,
    parse_amz_date,
    parse_authorization,
)

SECRET = "unit-secret"
AMZ_DATE = "20240102T030405Z"
SIGNED_AT = float(calendar.timegm((2024, 1, 2, 3, 4, 5, 0, 0, 0)))
BODY = b'{"appId":"a","cname":"c","sid":"s","mode":"mix"}'


def signed_headers(*, secret: str = SECRET, query: str = "") -> dict[str, str]:
    request = AWSRequest(
        method="POST",
        url=f"http://sandbox.test:8090/cloud{'?' + query if query else ''}",
        data=BODY,
        headers={
            "content-type": "application/json;charset=UTF-8",
            "x-action": "CloudRecordingQuery",
            "x-version": "v1",
        },
    )
    request.context["timestamp"] = AMZ_DATE
    auth = SigV4Auth(Credentials("AK", secret), "krtc", "cn-beijing-6")
    # botocore stamps the current time; pin it so the signature is reproducible.
    auth._timestamp = lambda: AMZ_DATE  # type: ignore[method-assign]
    request.headers["X-Amz-Date"] = AMZ_DATE
    canonical = auth.canonical_request(request)
    signature = auth.signature(auth.string_to_sign(request, canonical), request)
    headers = {k.lower(): v for k, v in request.headers.items()}
    headers["host"] = "sandbox.test:8090"
    headers["authorization"] = (
        f"AWS4-HMAC-SHA256 Credential=AK/{AMZ_DATE[:8]}/cn-beijing-6/krtc/aws4_request, "
        f"SignedHeaders={auth.signed_headers(auth.headers_to_sign(request))}, "
        f"Signature={signature}"
    )
    return headers


def verifier(now: float = SIGNED_AT) -> SigV4Verifier:
    return SigV4Verifier({"AK": SECRET}, region="cn-beijing-6", service="krtc", clock=lambda: now)


def test_botocore_signature_verifies() -> None:
    assert verifier().verify("POST", "/cloud", "", signed_headers(), BODY) == "AK"


def test_query_string_is_part_of_the_signature() -> None:
    headers = signed_headers(query="b=2&a=1")

    assert verifier().verify("POST", "/cloud", "b=2&a=1", headers, BODY) == "AK"
    with pytest.raises(SignatureError, match="does not match"):
        verifier().verify("POST", "/cloud", "a=1", headers, BODY)


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (lambda h, b: (h, b + b" "), "signature does not match"),
        (lambda h, b: ({**h, "x-action": "CloudRecordingStop"}, b), "signature does not match"),
        (lambda h, b: ({k: v for k, v in h.items() if k != "x-version"}, b), "missing from"),
        (lambda h, b: ({**h, "x-amz-date": "2024-01-02"}, b), "yyyymmddThhmmssZ"),
        (lambda h, b: ({**h, "x-amz-date": "20240102T030406Z"}, b), "signature does not match"),
    ],
)
def test_tampering_is_refused(change: object, reason: str) -> None:
    headers, body = change(signed_headers(), BODY)  # type: ignore[operator]

    with pytest.raises(SignatureError, match=reason):
        verifier().verify("POST", "/cloud", "", headers, body)


def test_wrong_secret_is_refused() -> None:
    with pytest.raises(SignatureError, match="does not match"):
        verifier().verify("POST", "/cloud", "", signed_headers(secret="other"), BODY)


@pytest.mark.parametrize(("offset", "ok"), [(-299, True), (299, True), (-301, False), (301, False)])
def test_clock_skew_allowance(offset: float, ok: bool) -> None:
    v = verifier(now=SIGNED_AT + offset)
    if ok:
        assert v.verify("POST", "/cloud", "", signed_headers(), BODY) == "AK"
    else:
        with pytest.raises(SignatureError, match="too skewed"):
            v.verify("POST", "/cloud", "", signed_headers(), BODY)


@pytest.mark.parametrize(
    ("header", "reason"),
    [
        ("Bearer x", "unsupported signature algorithm"),
        ("AWS4-HMAC-SHA256 Credential=AK/20240102/r/s/aws4_request", "no SignedHeaders, Signature"),
        (
            "AWS4-HMAC-SHA256 Credential=AK/20240102, SignedHeaders=host, Signature=00",
            "Credential must be",
        ),
    ],
)
def test_malformed_authorization(header: str, reason: str) -> None:
    with pytest.raises(SignatureError, match=reason):
        parse_authorization(header)


def test_amz_date_parsing() -> None:
    assert parse_amz_date(AMZ_DATE) == SIGNED_AT
    assert dt.datetime.fromtimestamp(SIGNED_AT, dt.UTC).hour == 3
    with pytest.raises(SignatureError, match="not a valid time"):
        parse_amz_date("20241340T000000Z")


def test_repr_never_shows_the_secret() -> None:
    assert SECRET not in repr(verifier())
