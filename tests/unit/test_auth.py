"""KOP signatures: cross-checked against botocore's independent SigV4 implementation."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials as BotoCredentials
from pydantic import SecretStr

from orchestrator.krtc.auth import KopAuth, redact_authorization
from orchestrator.krtc.client import build_request
from orchestrator.krtc.models import QueryRequest, StartRequest
from orchestrator.settings import Credentials

AK = "AKLTcrosscheck"
SK = "cross-check-secret-value"
FIXED = dt.datetime(2026, 3, 14, 15, 9, 26, tzinfo=dt.UTC)
URL = "https://krtc.api.ksyun.com/cloud"


def _signed(request: QueryRequest | StartRequest, when: dt.datetime = FIXED):
    auth = KopAuth(
        Credentials(AK, SecretStr(SK)), region="cn-beijing-6", service="krtc", clock=lambda: when
    )
    return build_request(URL, request, auth)


def _botocore_signature(prepared, region: str = "cn-beijing-6", service: str = "krtc") -> str:
    """Sign the same request with botocore and return its Authorization header."""
    signed_names = ["content-type", "x-action", "x-version", "x-amz-content-sha256"]
    req = AWSRequest(
        method="POST",
        url=URL,
        data=prepared.body,
        headers={name: prepared.headers[name] for name in signed_names},
    )
    signer = SigV4Auth(BotoCredentials(AK, SK), service, region)
    # Give botocore the same timestamp instead of its own clock.
    req.context["timestamp"] = prepared.headers["x-amz-date"]
    req.headers["X-Amz-Date"] = prepared.headers["x-amz-date"]
    canonical = signer.canonical_request(req)
    string_to_sign = signer.string_to_sign(req, canonical)
    signature = signer.signature(string_to_sign, req)
    headers = signer.signed_headers(signer.headers_to_sign(req))
    return (
        f"AWS4-HMAC-SHA256 Credential={signer.scope(req)}, "
        f"SignedHeaders={headers}, Signature={signature}"
    )


QUERY = QueryRequest.model_validate(
    {"appId": "lee1234", "cname": "krtc2", "sid": "c4pl5e1kereqmo8pac40", "mode": "mix"}
)
START = StartRequest.model_validate(
    {
        "appId": "lee1234",
        "cname": "频道-2",  # non-ASCII: the signed bytes are UTF-8, as sent
        "uid": "xxx",
        "mode": "mix",
        "clientRequest": {
            "recordingConfig": {"maxIdleTime": 30},
            "recordingFileConfig": {"avFileType": ["hls"]},
        },
    }
)


@pytest.mark.parametrize("request_model", [QUERY, START], ids=["query", "start-utf8"])
def test_signature_matches_botocore(request_model) -> None:
    prepared = _signed(request_model)
    assert prepared.headers["Authorization"] == _botocore_signature(prepared)


def test_signature_differs_from_botocore_with_another_region() -> None:
    # Given the same request, when botocore signs for another region, then the signatures
    # differ: the cross-check above would catch a wrong region or service.
    prepared = _signed(QUERY)
    assert prepared.headers["Authorization"] != _botocore_signature(
        prepared, region="cn-shanghai-2"
    )


def test_signed_headers_cover_the_action_and_version() -> None:
    auth_header = _signed(QUERY).headers["Authorization"]
    signed = auth_header.split("SignedHeaders=")[1].split(",")[0].split(";")
    assert {"host", "x-amz-date", "content-type", "x-action", "x-version"} <= set(signed)


def test_signed_body_is_the_sent_body() -> None:
    prepared = _signed(START)
    assert prepared.body == START.to_wire_bytes()
    assert json.loads(prepared.body)["cname"] == "频道-2"


def test_clock_is_injected_and_date_scopes_the_key() -> None:
    day1 = _signed(QUERY, FIXED)
    day2 = _signed(QUERY, FIXED + dt.timedelta(days=1))
    assert day1.headers["x-amz-date"] == "20260314T150926Z"
    assert "/20260314/cn-beijing-6/krtc/aws4_request" in day1.headers["Authorization"]
    assert "/20260315/" in day2.headers["Authorization"]
    assert day2.headers["Authorization"] == _botocore_signature(day2)


def test_same_signer_across_days_stays_correct() -> None:
    # One KopAuth serving requests on both sides of midnight signs each with its own day's key.
    now = [FIXED]
    auth = KopAuth(
        Credentials(AK, SecretStr(SK)), region="cn-beijing-6", service="krtc", clock=lambda: now[0]
    )
    first = build_request(URL, QUERY, auth)
    now[0] = FIXED + dt.timedelta(days=1)
    second = build_request(URL, QUERY, auth)
    assert first.headers["Authorization"] == _botocore_signature(first)
    assert second.headers["Authorization"] == _botocore_signature(second)


def test_secret_is_not_kept_or_shown_by_the_signer() -> None:
    auth = KopAuth(
        Credentials(AK, SecretStr(SK)), region="cn-beijing-6", service="krtc", clock=lambda: FIXED
    )
    build_request(URL, QUERY, auth)
    assert SK not in repr(auth)
    assert all(SK not in repr(vars(signer)) for signer in auth._signers.values())


def test_redact_authorization_hides_only_the_signature() -> None:
    header = _signed(QUERY).headers["Authorization"]
    redacted = redact_authorization(header)
    assert redacted.startswith(f"AWS4-HMAC-SHA256 Credential={AK}/")
    assert header.rsplit("=", 1)[1] not in redacted
    assert redacted.endswith("Signature=<redacted>")


@pytest.mark.parametrize(
    "url",
    [
        "https://krtc.api.ksyun.com/cloud",
        "https://krtc.api.ksyun.com:443/cloud",
        "http://127.0.0.1:8080/cloud",
        "http://127.0.0.1:80/cloud",
        "https://krtc.example:8443/v1/./cloud/",
        "https://krtc.example/cloud?b=2&a=1&a=0&empty=&sp%20ace=x~y",
        "https://krtc.example",
    ],
)
def test_signature_over_other_urls_matches_botocore(url: str) -> None:
    # sign() on plain values: other hosts, ports, paths and query strings than the endpoint's.
    auth = KopAuth(
        Credentials(AK, SecretStr(SK)), region="cn-beijing-6", service="krtc", clock=lambda: FIXED
    )
    body = QUERY.to_wire_bytes()
    given = {"content-type": "application/json", "x-action": "CloudRecordingQuery"}
    headers = auth.sign("POST", url, {**given, "x-version": "v1", "Date": "stale"}, body)
    assert "Date" not in headers
    req = AWSRequest(
        method="POST",
        url=url,
        data=body,
        headers={
            **given,
            "x-version": "v1",
            "x-amz-content-sha256": headers["x-amz-content-sha256"],
        },
    )
    signer = SigV4Auth(BotoCredentials(AK, SK), "krtc", "cn-beijing-6")
    req.context["timestamp"] = headers["x-amz-date"]
    req.headers["X-Amz-Date"] = headers["x-amz-date"]
    canonical = signer.canonical_request(req)
    signature = signer.signature(signer.string_to_sign(req, canonical), req)
    names = signer.signed_headers(signer.headers_to_sign(req))
    assert headers["Authorization"] == (
        f"AWS4-HMAC-SHA256 Credential={signer.scope(req)}, "
        f"SignedHeaders={names}, Signature={signature}"
    )
    assert headers["Host"] == signer.headers_to_sign(req)["host"]
