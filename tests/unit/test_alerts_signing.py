"""Webhook signatures (orchestrator/alerts/signing.py): what a receiver checks."""

from __future__ import annotations

import hashlib
import hmac
import re
from pathlib import Path

import pytest

from orchestrator.alerts.signing import (
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    sign,
    signature_headers,
    verify,
)

SECRET = "whsec-test"
BODY = '{"kind": "lost", "reason": "录制丢失"}'.encode()
NOW = 1_700_000_000


def test_the_signature_is_hmac_sha256_of_timestamp_dot_body_in_hex() -> None:
    expected = hmac.new(SECRET.encode(), b"1700000000." + BODY, hashlib.sha256).hexdigest()

    assert sign(SECRET, NOW, BODY) == "sha256=" + expected


def test_headers_carry_the_timestamp_and_a_sha256_signature() -> None:
    headers = signature_headers(SECRET, BODY, now=NOW + 0.9)

    assert headers[TIMESTAMP_HEADER] == "1700000000"
    assert re.fullmatch(r"sha256=[0-9a-f]{64}", headers[SIGNATURE_HEADER])


def test_a_fresh_signature_verifies() -> None:
    headers = signature_headers(SECRET, BODY, now=NOW)

    assert verify(SECRET, BODY, headers[TIMESTAMP_HEADER], headers[SIGNATURE_HEADER], now=NOW + 10)


def test_a_changed_body_does_not_verify() -> None:
    headers = signature_headers(SECRET, BODY, now=NOW)

    assert not verify(
        SECRET, BODY + b" ", headers[TIMESTAMP_HEADER], headers[SIGNATURE_HEADER], now=NOW
    )


def test_another_secret_does_not_verify() -> None:
    headers = signature_headers(SECRET, BODY, now=NOW)

    assert not verify("other", BODY, headers[TIMESTAMP_HEADER], headers[SIGNATURE_HEADER], now=NOW)


def test_a_replayed_body_with_a_new_timestamp_does_not_verify() -> None:
    old = signature_headers(SECRET, BODY, now=NOW)

    assert not verify(SECRET, BODY, str(NOW + 3600), old[SIGNATURE_HEADER], now=NOW + 3600)


def test_a_stale_or_future_timestamp_does_not_verify() -> None:
    headers = signature_headers(SECRET, BODY, now=NOW)
    ts, sig = headers[TIMESTAMP_HEADER], headers[SIGNATURE_HEADER]

    assert not verify(SECRET, BODY, ts, sig, now=NOW + 301)
    assert not verify(SECRET, BODY, ts, sig, now=NOW - 301)
    assert verify(SECRET, BODY, ts, sig, now=NOW + 301, tolerance_s=600)


def test_missing_or_malformed_headers_do_not_verify() -> None:
    sig = sign(SECRET, NOW, BODY)

    assert not verify(SECRET, BODY, None, sig, now=NOW)
    assert not verify(SECRET, BODY, str(NOW), None, now=NOW)
    assert not verify(SECRET, BODY, "-1", sig, now=NOW)
    assert not verify(SECRET, BODY, "17e8", sig, now=NOW)
    assert not verify(SECRET, BODY, str(NOW), sig.removeprefix("sha256="), now=NOW)


def test_the_receiver_snippet_in_the_docs_verifies_our_signatures(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    doc = (Path(__file__).resolve().parents[2] / "docs" / "alerts.md").read_text(encoding="utf-8")
    snippets = [s for s in re.findall(r"```python\n(.*?)```", doc, re.S) if "is_authentic" in s]
    assert len(snippets) == 1
    monkeypatch.setenv("KRTC_ALERT_WEBHOOK_SECRET", SECRET)
    namespace: dict[str, object] = {"__name__": "docs_snippet"}
    exec(snippets[0], namespace)
    is_authentic = namespace["is_authentic"]
    assert callable(is_authentic)

    headers = signature_headers(SECRET, BODY)
    ts, sig = headers[TIMESTAMP_HEADER], headers[SIGNATURE_HEADER]

    assert is_authentic(BODY, ts, sig)
    assert not is_authentic(BODY + b"x", ts, sig)
    assert not is_authentic(BODY, str(int(ts) - 3600), sign(SECRET, int(ts) - 3600, BODY))
