"""Alert delivery to a real local HTTP receiver: every sink's request, the HMAC, retries after a
500, and a hung receiver that does not hold up raise_alert (orchestrator/alerts/)."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from pydantic import SecretStr

from orchestrator.alerts import Alerter, DeliveryPolicy, verify
from orchestrator.settings import Settings
from orchestrator.state import SessionStore
from tests.conftest import SENTINEL_SECRET, SENTINEL_STORAGE_SECRET

pytestmark = pytest.mark.integration

HMAC_SECRET = "whsec-integration-5c1d"
FAST = DeliveryPolicy(max_attempts=4, base_s=0.01, max_s=0.05)


@dataclass
class Request:
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> dict[str, Any]:
        return dict(json.loads(self.body))


@dataclass
class Receiver:
    """A local webhook receiver: records every POST and answers from a per-path script."""

    base_url: str = ""
    requests: list[Request] = field(default_factory=list)
    #: path -> answers in order (status, body); the last one repeats. Default 200 ``{}``.
    script: dict[str, list[tuple[int, bytes]]] = field(default_factory=dict)
    #: Paths whose requests hang until ``release`` is set.
    hang: set[str] = field(default_factory=set)
    release: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)
    arrived: threading.Condition = field(default_factory=threading.Condition)

    def url(self, path: str) -> str:
        return self.base_url + path

    def answer(self, path: str) -> tuple[int, bytes]:
        with self.lock:
            answers = self.script.get(path.split("?")[0], [(200, b"{}")])
            return answers.pop(0) if len(answers) > 1 else answers[0]

    def wait_for(self, count: int, timeout_s: float = 5.0) -> list[Request]:
        with self.arrived:
            self.arrived.wait_for(lambda: len(self.requests) >= count, timeout_s)
            return list(self.requests)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    state = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (the http.server API)
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            with state.arrived:
                state.requests.append(Request(self.path, dict(self.headers), body))
                state.arrived.notify_all()
            if self.path.split("?")[0] in state.hang:
                state.release.wait(10)
            status, answer = state.answer(self.path)
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    state.base_url = f"http://127.0.0.1:{server.server_port}"
    yield state
    state.release.set()
    server.shutdown()
    server.server_close()
    thread.join(5)


@pytest.fixture
def make_alerter(store: SessionStore) -> Iterator[Callable[..., Alerter]]:
    made: list[Alerter] = []

    def make(settings: Settings, **options: Any) -> Alerter:
        options.setdefault("policy", FAST)
        alerter = Alerter.from_settings(settings, store, **options)
        made.append(alerter)
        return alerter

    yield make
    for alerter in made:
        alerter.close(5)


def test_the_webhook_receives_the_alert_signed(
    receiver: Receiver, make_alerter: Callable[..., Alerter]
) -> None:
    settings = Settings(
        alert_webhook_url=SecretStr(receiver.url("/krtc/alerts")),
        alert_webhook_secret=SecretStr(HMAC_SECRET),
    )
    alerter = make_alerter(settings)

    alert = alerter.raise_alert("abnormal_exit", "s-1", "status 20", app_id="app", sid="sid-1")

    assert alert is not None
    (request,) = receiver.wait_for(1)
    assert request.path == "/krtc/alerts"
    assert request.headers["Content-Type"].startswith("application/json")
    assert request.headers["X-KRTC-Alert-Id"] == alert.id
    assert verify(
        HMAC_SECRET,
        request.body,
        request.headers["X-KRTC-Timestamp"],
        request.headers["X-KRTC-Signature"],
    )
    assert not verify(
        "wrong-secret",
        request.body,
        request.headers["X-KRTC-Timestamp"],
        request.headers["X-KRTC-Signature"],
    )
    body = request.json()
    assert body["type"] == "krtc.alert"
    assert (body["kind"], body["severity"], body["session_id"]) == (
        "abnormal_exit",
        "critical",
        "s-1",
    )
    assert (body["app_id"], body["sid"], body["reason"]) == ("app", "sid-1", "status 20")


def test_a_500_is_retried_until_the_receiver_accepts(
    receiver: Receiver, make_alerter: Callable[..., Alerter]
) -> None:
    # Given a receiver that fails twice, then accepts
    receiver.script["/hook"] = [(500, b"oops"), (503, b"busy"), (200, b"{}")]
    settings = Settings(
        alert_webhook_url=SecretStr(receiver.url("/hook")),
        alert_webhook_secret=SecretStr(HMAC_SECRET),
    )
    alerter = make_alerter(settings)

    # When an alert is raised
    alert = alerter.raise_alert("lost", "s-1", "404 from query")

    # Then it arrives three times, the same alert id, each attempt signed on its own
    assert alert is not None
    assert alerter.flush(5)
    requests = receiver.wait_for(3)
    assert len(requests) == 3
    assert {r.headers["X-KRTC-Alert-Id"] for r in requests} == {alert.id}
    for r in requests:
        assert verify(
            HMAC_SECRET, r.body, r.headers["X-KRTC-Timestamp"], r.headers["X-KRTC-Signature"]
        )


def test_a_permanent_refusal_is_not_retried(
    receiver: Receiver, make_alerter: Callable[..., Alerter], caplog: pytest.LogCaptureFixture
) -> None:
    receiver.script["/hook"] = [(404, b"no such hook")]
    alerter = make_alerter(Settings(alert_webhook_url=SecretStr(receiver.url("/hook"))))

    with caplog.at_level(logging.ERROR, logger="orchestrator.alerts.delivery"):
        alerter.raise_alert("lost", "s-1", "404 from query")
        assert alerter.flush(5)

    assert len(receiver.requests) == 1
    assert "HTTP 404" in caplog.text


def test_a_hung_receiver_does_not_block_raise_alert(
    receiver: Receiver, make_alerter: Callable[..., Alerter]
) -> None:
    # Given a webhook that never answers, and a Slack that does
    receiver.hang.add("/hung")
    settings = Settings(
        alert_webhook_url=SecretStr(receiver.url("/hung")),
        alert_slack_url=SecretStr(receiver.url("/services/T0000/B0000/slacktoken0123456789")),
    )
    alerter = make_alerter(settings)
    alerter.raise_alert("stuck", "warm-up", "first request opens the connections")
    receiver.wait_for(2)

    # When alerts are raised while the webhook's delivery hangs
    durations = []
    for n in range(5):
        started = time.perf_counter()
        alert = alerter.raise_alert("abnormal_exit", f"s-{n}", "status 20")
        durations.append(time.perf_counter() - started)
        assert alert is not None

    # Then each raise returns at once, and the other sink still gets every alert
    # (the hung delivery lasts seconds; 0.25 s leaves room for a loaded machine)
    assert max(durations) < 0.25, durations
    slack = [r for r in receiver.wait_for(7) if r.path.startswith("/services/")]
    assert len(slack) == 6
    receiver.release.set()


def test_every_chat_sink_receives_its_own_format_and_no_secret(
    receiver: Receiver, make_alerter: Callable[..., Alerter], store: SessionStore
) -> None:
    # Given every sink configured, and an error text that quotes the secrets
    settings = Settings(
        secret_key=SecretStr(SENTINEL_SECRET),
        alert_webhook_url=SecretStr(receiver.url("/generic")),
        alert_webhook_secret=SecretStr(HMAC_SECRET),
        alert_dingtalk_url=SecretStr(receiver.url("/robot/send?access_token=dingtoken0123456789")),
        alert_feishu_url=SecretStr(receiver.url("/open-apis/bot/v2/hook/feishu-0123-4567-89ab")),
        alert_wecom_url=SecretStr(receiver.url("/cgi-bin/webhook/send?key=wecomkey0123456789")),
        alert_slack_url=SecretStr(receiver.url("/services/T0000/B0000/slacktoken0123456789")),
    )
    alerter = make_alerter(settings, secrets=[SENTINEL_STORAGE_SECRET])
    secrets = (SENTINEL_SECRET, SENTINEL_STORAGE_SECRET, HMAC_SECRET, "dingtoken0123456789")
    reason = "start failed: " + " ".join(secrets)

    # When one alert is raised
    alerter.raise_alert("start_failed", "s-1", reason, app_id="app", cname="room", uid="7")

    # Then each receiver got its message shape, and no body holds a secret
    by_path = {r.path.split("?")[0]: r for r in receiver.wait_for(5)}
    assert by_path["/generic"].json()["kind"] == "start_failed"
    assert by_path["/robot/send"].json()["msgtype"] == "markdown"
    assert (
        by_path["/open-apis/bot/v2/hook/feishu-0123-4567-89ab"].json()["msg_type"] == "interactive"
    )
    assert by_path["/cgi-bin/webhook/send"].json()["msgtype"] == "markdown"
    assert "blocks" in by_path["/services/T0000/B0000/slacktoken0123456789"].json()
    for request in by_path.values():
        text = request.body.decode("utf-8")
        for secret in secrets:
            assert secret not in text, (request.path, secret)
        assert "7" in text and "room" in text


def test_failed_chat_deliveries_are_logged_without_tokens(
    receiver: Receiver, make_alerter: Callable[..., Alerter], caplog: pytest.LogCaptureFixture
) -> None:
    receiver.script["/robot/send"] = [
        (200, b'{"errcode":310000,"errmsg":"keywords not in content"}')
    ]
    receiver.script["/cgi-bin/webhook/send"] = [(500, b"busy")]
    settings = Settings(
        alert_dingtalk_url=SecretStr(receiver.url("/robot/send?access_token=dingtoken0123456789")),
        alert_wecom_url=SecretStr(receiver.url("/cgi-bin/webhook/send?key=wecomkey0123456789")),
    )
    alerter = make_alerter(settings)

    with caplog.at_level(logging.DEBUG):
        alerter.raise_alert("orphaned", "s-1", "409 without sid")
        assert alerter.flush(5)

    assert "errcode 310000" in caplog.text
    assert "HTTP 500" in caplog.text
    assert "access_token=***" in caplog.text and "key=***" in caplog.text
    assert "dingtoken0123456789" not in caplog.text
    assert "wecomkey0123456789" not in caplog.text
