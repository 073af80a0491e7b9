"""Standard Webhooks signatures, and the README's receivers (Python, and Node when installed)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from orchestrator.errors import ConfigError
from orchestrator.events import Event, decode_secret, sign, signature_headers, verify

ROOT = Path(__file__).resolve().parents[2]
SECTION = (ROOT / "README.md").read_text(encoding="utf-8").split("## Lifecycle webhooks", 1)[1]
SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


def test_the_signature_matches_the_standard_webhooks_example() -> None:
    # The example of the Standard Webhooks specification (and its reference libraries).
    signature = sign(
        decode_secret(SECRET), "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, b'{"test": 2432232314}'
    )
    assert signature == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


@pytest.mark.parametrize(
    "secret", ["MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "whsec_not base64!", "whsec_"]
)
def test_a_malformed_secret_is_a_config_error_that_does_not_quote_it(secret: str) -> None:
    with pytest.raises(ConfigError) as caught:
        decode_secret(secret)
    assert secret not in str(caught.value) or secret == "whsec_"


def test_verify_accepts_its_own_headers_and_refuses_tampering_and_old_timestamps() -> None:
    body = b'{"type":"recording.started"}'
    headers = signature_headers(decode_secret(SECRET), "msg_1", body)
    assert verify(SECRET, headers, body)
    assert not verify(SECRET, headers, body + b" ")
    assert not verify(SECRET, {**headers, "webhook-id": "msg_2"}, body)
    assert not verify(SECRET, headers, body, now=time.time() + 3600)


def test_the_body_is_the_same_bytes_every_time_and_carries_no_request() -> None:
    record: dict[str, Any] = {
        "id": "msg_1",
        "type": "recording.stopped",
        "subject": "S1",
        "session_id": "S1",
        "at_ms": 1_700_000_000_123,
        "data": {"phase": "stopped", "files": '[{"filename":"a.m3u8"}]', "last_status": "8"},
    }
    event = Event.from_json(json.dumps(record))
    assert event.body() == event.body()
    payload = json.loads(event.body())
    assert payload == {
        "type": "recording.stopped",
        "timestamp": "2023-11-14T22:13:20.123Z",
        "data": {
            "session_id": "S1",
            "phase": "stopped",
            "files": [{"filename": "a.m3u8"}],
            "last_status": 8,
        },
    }


def _block(language: str) -> str:
    match = re.search(rf"```{language}\n(.*?)```", SECTION, flags=re.DOTALL)
    assert match, f"the README shows a {language} receiver"
    return match.group(1)


def _signed(body: bytes) -> dict[str, str]:
    return signature_headers(decode_secret(SECRET), "msg_readme", body)


def test_the_readme_python_receiver_is_short_and_verifies_a_signed_request(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    code = _block("python")
    assert len([line for line in code.splitlines() if line.strip()]) <= 15
    monkeypatch.setenv("KRTC_EVENTS_WEBHOOK_SECRET", SECRET)
    namespace: dict[str, Any] = {"__name__": "readme_receiver"}
    exec(compile(code, "README.md", "exec"), namespace)  # noqa: S102 (the README's own code)
    body = b'{"type":"recording.started","timestamp":"2026-01-01T00:00:00.000Z","data":{}}'
    headers = _signed(body)
    assert namespace["verified"](headers, body)
    assert not namespace["verified"](headers, body.replace(b"started", b"stopped"))
    assert not namespace["verified"]({**headers, "webhook-signature": "v1,AAAA"}, body)


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")
def test_the_readme_node_receiver_verifies_a_signed_request(tmp_path: Path) -> None:
    code = _block("js")
    assert len(code.strip().splitlines()) <= 15
    (tmp_path / "receiver.js").write_text(code, encoding="utf-8")
    body = '{"type":"recording.stopped","data":{"files":[]}}'
    headers = _signed(body.encode())
    check = (
        "const { verified } = require('./receiver.js');"
        "const [h, body] = [JSON.parse(process.argv[1]), Buffer.from(process.argv[2])];"
        "const bad = Buffer.from(process.argv[2] + ' ');"
        "console.log(JSON.stringify([verified(h, body), verified(h, bad)]));"
    )
    result = subprocess.run(
        ["node", "-e", check, json.dumps(headers), body],
        cwd=tmp_path,
        env={**os.environ, "KRTC_EVENTS_WEBHOOK_SECRET": SECRET},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == [True, False]
