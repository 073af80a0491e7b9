"""Webhook URLs carry access tokens: they never reach a log (orchestrator/alerts/redact.py)."""

from __future__ import annotations

import logging

import pytest
import requests

from orchestrator.alerts import DeliveryPolicy, DingTalkSink, Dispatcher, RedactedUrl
from orchestrator.alerts.redact import is_secret_segment
from tests.unit.test_alerts_model import make_alert
from tests.unit.test_alerts_sinks import FakeSession, answer

DT_TOKEN = "b1946ac92492d2347c6235b4d2611184aaaa"
DINGTALK = f"https://oapi.dingtalk.com/robot/send?access_token={DT_TOKEN}"
WC_KEY = "693a91f6-7aaa-4bc4-97a0-0ec2sifa5aaa"
WECOM = f"https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key={WC_KEY}"
FS_TOKEN = "5f1e2d3c-aaaa-bbbb-cccc-0123456789ab"
FEISHU = f"https://open.feishu.cn/open-apis/bot/v2/hook/{FS_TOKEN}"
SLACK_TOKEN = "aBcDeFgHiJkLmNoPqRsTuVwX"
SLACK = f"https://hooks.slack.com/services/T024BE7LD/B024BE7LH/{SLACK_TOKEN}"


@pytest.mark.parametrize(
    ("url", "display", "secret"),
    [
        (DINGTALK, "https://oapi.dingtalk.com/robot/send?access_token=***", DT_TOKEN),
        (WECOM, "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=***", WC_KEY),
        (FEISHU, "https://open.feishu.cn/open-apis/bot/v2/hook/***", FS_TOKEN),
        (SLACK, "https://hooks.slack.com/services/***/***/***", SLACK_TOKEN),
        (
            "https://user:pw-123@hooks.example.com:8443/a?x=1#frag",
            "https://hooks.example.com:8443/a?x=***",
            "pw-123",
        ),
    ],
)
def test_the_display_form_hides_every_token(url: str, display: str, secret: str) -> None:
    redacted = RedactedUrl(url)

    assert redacted.display == display
    assert str(redacted) == display
    assert secret not in repr(redacted)


def test_scrub_masks_the_token_raw_and_percent_encoded() -> None:
    redacted = RedactedUrl("https://h/send?token=a/b+c%3Dd&x=")

    text = "failed: https://h/send?token=a/b+c%3Dd, or a%2Fb%2Bc%3Dd, or a/b+c=d"

    assert redacted.scrub(text) == "failed: https://h/send?token=***, or ***, or ***"


def test_harmless_path_segments_stay_readable() -> None:
    for segment in ("robot", "send", "v2", "hook", "open-apis", "cgi-bin", "services"):
        assert not is_secret_segment(segment)
    for segment in ("T024BE7LD", FS_TOKEN, "abcdefghijklmnop"):
        assert is_secret_segment(segment)


def test_a_failed_delivery_is_logged_without_the_token(caplog: pytest.LogCaptureFixture) -> None:
    # Given a robot whose endpoint refuses the connection, with the URL in the error text
    error = requests.ConnectionError(
        f"HTTPSConnectionPool: Max retries exceeded with url: {DINGTALK}"
    )
    sink = DingTalkSink(DINGTALK, session=FakeSession(error))  # type: ignore[arg-type]
    dispatcher = Dispatcher([sink], policy=DeliveryPolicy(max_attempts=2, base_s=0.0, max_s=0.0))

    # When an alert fails to be delivered twice
    with caplog.at_level(logging.DEBUG):
        delivered = dispatcher.deliver(sink, make_alert())

    # Then both the retry and the final failure are logged, without the token
    assert not delivered
    messages = [r.getMessage() for r in caplog.records]
    assert any("retrying" in m for m in messages)
    assert any("not delivered" in m and "access_token=***" in m for m in messages)
    assert DT_TOKEN not in caplog.text


def test_a_sink_bug_is_logged_without_the_token(caplog: pytest.LogCaptureFixture) -> None:
    class Buggy(DingTalkSink):
        def payload(self, alert):  # type: ignore[no-untyped-def]
            raise RuntimeError(f"cannot post to {DINGTALK}")

    sink = Buggy(DINGTALK, session=FakeSession())  # type: ignore[arg-type]

    with caplog.at_level(logging.ERROR):
        assert not Dispatcher([sink]).deliver(sink, make_alert())

    assert "RuntimeError" in caplog.text
    assert DT_TOKEN not in caplog.text


def test_urllib3_request_logs_do_not_show_the_token(caplog: pytest.LogCaptureFixture) -> None:
    DingTalkSink(WECOM.replace("qyapi", "x"), session=FakeSession())  # type: ignore[arg-type]
    logger = logging.getLogger("urllib3.connectionpool")

    with caplog.at_level(logging.DEBUG, logger="urllib3.connectionpool"):
        # The request line urllib3 logs for every call
        logger.debug(
            '%s://%s:%s "%s %s %s" %s %s',
            "https",
            "x",
            443,
            "POST",
            f"/cgi-bin/webhook/send?key={WC_KEY}",
            "HTTP/1.1",
            200,
            None,
        )

    assert WC_KEY not in caplog.text
    assert "key=***" in caplog.text


def test_the_answer_of_a_robot_is_scrubbed_too() -> None:
    session = FakeSession(answer(400, f"bad token {DT_TOKEN}".encode()))
    sink = DingTalkSink(DINGTALK, session=session)  # type: ignore[arg-type]

    with pytest.raises(Exception) as caught:
        sink.deliver(make_alert())

    assert DT_TOKEN not in str(caught.value)


def test_a_tiny_query_value_is_hidden_in_the_display_but_does_not_garble_texts() -> None:
    redacted = RedactedUrl("https://hooks.example.com/a?v=1&token=t0k3n-value")

    assert redacted.display == "https://hooks.example.com/a?v=***&token=***"
    assert redacted.scrub("attempt 1 of 3 t0k3n-value") == "attempt 1 of 3 ***"
