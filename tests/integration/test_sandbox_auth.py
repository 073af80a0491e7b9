"""Sandbox: SigV4 verification (403 and why), the App ID allow-list (401), no secret echoed."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac

import pytest
import requests
from pydantic import SecretStr

from orchestrator.krtc import errors as e
from orchestrator.krtc.client import KrtcClient, PreparedCall
from orchestrator.krtc.enums import Action
from orchestrator.krtc.validation import parse_request
from orchestrator.sandbox.sigv4 import derive_signing_key
from tests.conftest import SENTINEL_SECRET, SENTINEL_STORAGE_SECRET, TEST_ACCESS_KEY
from tests.integration.sandbox_fixture import SandboxHandle

pytestmark = pytest.mark.integration

QUERY_BODY = {"appId": "app1", "cname": "room", "sid": "c4pl5e1kereqmo8pac40", "mode": "mix"}
START_BODY = {
    "appId": "app1",
    "cname": "room",
    "uid": "rec-1",
    "mode": "mix",
    "clientRequest": {
        "recordingConfig": {"maxIdleTime": 30},
        "recordingFileConfig": {"avFileType": ["hls"]},
        "storageConfig": {
            "vendor": 4,
            "region": 0,
            "bucket": "b",
            "accessKey": "storage-ak",
            "secretKey": SENTINEL_STORAGE_SECRET,
        },
    },
}


def _send(prepared: PreparedCall) -> requests.Response:
    """Send a prepared call as it is (altered after signing), with another HTTP client."""
    return requests.request(
        prepared.method,
        prepared.url,
        data=prepared.body,
        headers=dict(prepared.headers),
        timeout=5,
    )


def _reason(response: requests.Response) -> str:
    body = response.json()
    assert body["code"] == response.status_code
    reason: str = body["reason"]
    return reason


def test_botocore_signature_is_accepted(sandbox: SandboxHandle) -> None:
    response = sandbox.post("CloudRecordingStart", START_BODY)

    assert response.status_code == 200, response.text
    assert len(response.json()["sid"]) == 20


def test_project_client_signature_is_accepted(sandbox: SandboxHandle) -> None:
    with KrtcClient(sandbox.settings()) as client:
        sid = client.start(START_BODY).sid

    assert sid is not None
    assert [r["accessKey"] for r in sandbox.requests()] == [TEST_ACCESS_KEY]


def test_missing_signature_is_403(sandbox: SandboxHandle) -> None:
    response = sandbox.post("CloudRecordingQuery", QUERY_BODY, sign=False)

    assert response.status_code == 403
    assert "missing Authorization" in _reason(response)


def test_wrong_secret_is_403_and_never_echoed(sandbox: SandboxHandle) -> None:
    wrong = "not-the-" + SENTINEL_SECRET
    response = sandbox.post("CloudRecordingQuery", QUERY_BODY, secret_key=wrong)

    assert response.status_code == 403
    assert "signature does not match" in _reason(response)
    assert SENTINEL_SECRET not in response.text


def test_wrong_secret_through_the_client_is_an_auth_error(sandbox: SandboxHandle) -> None:
    settings = sandbox.settings(secret_key=SecretStr("wrong-secret"))
    with KrtcClient(settings) as client, pytest.raises(e.AuthError) as info:
        client.query(QUERY_BODY)

    assert info.value.status == 403
    assert "signature does not match" in info.value.reason


def test_unknown_access_key_is_403(sandbox: SandboxHandle) -> None:
    response = sandbox.post("CloudRecordingQuery", QUERY_BODY, access_key="AKUNKNOWN")

    assert response.status_code == 403
    assert "unknown access key 'AKUNKNOWN'" in _reason(response)


def test_wrong_scope_is_403(sandbox: SandboxHandle) -> None:
    response = sandbox.post("CloudRecordingQuery", QUERY_BODY, region="us-east-1")

    assert response.status_code == 403
    assert "credential scope" in _reason(response)


@pytest.mark.parametrize("minutes", [-10, 10])
def test_skewed_clock_is_403_with_a_reason(sandbox: SandboxHandle, minutes: int) -> None:
    skewed = dt.datetime.now(dt.UTC) + dt.timedelta(minutes=minutes)
    with KrtcClient(sandbox.settings(), clock=lambda: skewed) as client:
        with pytest.raises(e.AuthError) as info:
            client.query(QUERY_BODY)

    assert info.value.status == 403
    assert "too skewed" in info.value.reason
    assert ("ahead of" if minutes > 0 else "behind") in info.value.reason


def test_small_skew_within_the_allowance_is_accepted(sandbox: SandboxHandle) -> None:
    skewed = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=2)
    with KrtcClient(sandbox.settings(), clock=lambda: skewed) as client:
        assert client.start(START_BODY).sid


def test_body_altered_after_signing_is_403(sandbox: SandboxHandle) -> None:
    with KrtcClient(sandbox.settings()) as client:
        prepared = client.prepare(parse_request(Action.QUERY, QUERY_BODY))
    prepared.body = b'{"appId":"app1","cname":"other","sid":"c4pl5e1kereqmo8pac40","mode":"mix"}'
    prepared.headers["Content-Length"] = str(len(prepared.body))
    response = _send(prepared)

    assert response.status_code == 403
    # The client signs x-amz-content-sha256, the hash of the body it sent.
    assert "does not match the SHA-256 of the body" in _reason(response)


def test_action_header_altered_after_signing_is_403(sandbox: SandboxHandle) -> None:
    with KrtcClient(sandbox.settings()) as client:
        prepared = client.prepare(parse_request(Action.QUERY, QUERY_BODY))
    prepared.headers["x-action"] = "CloudRecordingStop"
    response = _send(prepared)

    assert response.status_code == 403


def test_unsigned_action_header_is_refused(sandbox: SandboxHandle) -> None:
    # A request that signs only host and x-amz-date: the action could be changed in transit.
    now = dt.datetime.now(dt.UTC)
    amz_date = now.strftime("%Y%m%dT%H%M%SZ")
    day = amz_date[:8]
    body = b"{}"
    host = sandbox.url.split("/")[2]
    canonical = "\n".join(
        [
            "POST",
            "/cloud",
            "",
            f"host:{host}\nx-amz-date:{amz_date}\n",
            "host;x-amz-date",
            hashlib.sha256(body).hexdigest(),
        ]
    )
    scope = f"{day}/cn-beijing-6/krtc/aws4_request"
    to_sign = "\n".join(
        ["AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(canonical.encode()).hexdigest()]
    )
    key = derive_signing_key(SENTINEL_SECRET, day, "cn-beijing-6", "krtc")
    signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    headers = {
        "x-amz-date": amz_date,
        "x-action": "CloudRecordingQuery",
        "x-version": "v1",
        "content-type": "application/json",
        "authorization": f"AWS4-HMAC-SHA256 Credential={TEST_ACCESS_KEY}/{scope}, "
        f"SignedHeaders=host;x-amz-date, Signature={signature}",
    }
    response = requests.post(sandbox.url, data=body, headers=headers, timeout=5)

    assert response.status_code == 403
    assert "must be signed" in _reason(response)
    assert "x-action" in _reason(response)


def test_malformed_authorization_is_403(sandbox: SandboxHandle) -> None:
    response = requests.post(
        sandbox.url,
        data=b"{}",
        headers={"authorization": "Basic dXNlcjpwYXNz", "x-action": "CloudRecordingQuery"},
        timeout=5,
    )

    assert response.status_code == 403
    assert "AWS4-HMAC-SHA256" in _reason(response)


def test_app_id_outside_the_allow_list_is_401(sandbox: SandboxHandle) -> None:
    sandbox.configure(allow_app_ids=["app1"])
    with KrtcClient(sandbox.settings()) as client:
        assert client.start(START_BODY).sid
        with pytest.raises(e.AuthError) as info:
            client.start({**START_BODY, "appId": "app2"})

    assert info.value.status == 401
    assert "app2" in info.value.reason
    assert "permission" in info.value.reason
    assert sandbox.recordings(appId="app2") == []


def test_signature_is_checked_before_the_allow_list(sandbox: SandboxHandle) -> None:
    sandbox.configure(allow_app_ids=["someone-else"])
    response = sandbox.post("CloudRecordingQuery", QUERY_BODY, secret_key="wrong")

    assert response.status_code == 403


def test_no_answer_or_log_contains_a_secret(sandbox: SandboxHandle) -> None:
    # Given a mix of accepted and refused requests carrying both secrets
    responses = [
        sandbox.post("CloudRecordingStart", START_BODY),
        sandbox.post("CloudRecordingStart", START_BODY),  # 409
        sandbox.post("CloudRecordingStart", {**START_BODY, "mode": "bogus"}),  # 400
        sandbox.post("CloudRecordingStart", START_BODY, secret_key="x"),  # 403
        sandbox.post("CloudRecordingStart", b"{not json " + SENTINEL_STORAGE_SECRET.encode()),
    ]
    # Then no answer, and nothing the control API shows, contains either secret
    texts = [r.text for r in responses]
    texts += [
        requests.get(f"{sandbox.control_url}/{path}", timeout=5).text
        for path in ("", "recordings", "requests", "stats", "config", "faults")
    ]
    assert [r.status_code for r in responses] == [200, 409, 400, 403, 400]
    for text in texts:
        assert SENTINEL_SECRET not in text
        assert SENTINEL_STORAGE_SECRET not in text
