"""Message formats of each sink and how they read the receiver's answer
(orchestrator/alerts/sinks/). No network: the HTTP session is a recording fake."""

from __future__ import annotations

import json
from typing import Any

import pytest
import requests

from orchestrator.alerts import (
    Alert,
    AlertKind,
    DeliveryError,
    DingTalkSink,
    FeishuSink,
    Severity,
    SlackSink,
    WebhookSink,
    WeComSink,
    sinks_from_settings,
)
from orchestrator.alerts.signing import verify
from orchestrator.alerts.sinks.wecom import CONTENT_LIMIT_BYTES
from orchestrator.errors import ConfigError
from orchestrator.settings import Settings
from tests.unit.test_alerts_model import make_alert


def answer(status: int = 200, body: bytes = b"", headers: dict[str, str] | None = None) -> Any:
    response = requests.Response()
    response.status_code = status
    response._content = body
    response._content_consumed = True
    response.encoding = "utf-8"
    response.headers.update(headers or {})
    return response


class FakeSession:
    """Records each POST and answers from a list (the last answer repeats)."""

    def __init__(self, *answers: Any) -> None:
        self.answers = list(answers) or [answer(200, b"ok")]
        self.posts: list[dict[str, Any]] = []

    def post(self, url: str, **kwargs: Any) -> Any:
        self.posts.append({"url": url, **kwargs})
        item = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if isinstance(item, BaseException):
            raise item
        return item

    def close(self) -> None:
        pass

    def body(self, index: int = -1) -> dict[str, Any]:
        return dict(json.loads(self.posts[index]["data"]))


def deliver(sink_cls: type, url: str, alert: Alert, *answers: Any, **options: Any) -> FakeSession:
    session = FakeSession(*answers)
    sink = sink_cls(url, session=session, **options)
    sink.deliver(alert)
    return session


# --- DingTalk ------------------------------------------------------------------------------

DINGTALK = "https://oapi.dingtalk.com/robot/send?access_token=dt0123456789abcdef"


def test_dingtalk_sends_markdown_with_a_title_and_the_facts() -> None:
    session = deliver(DingTalkSink, DINGTALK, make_alert(), answer(200, b'{"errcode":0}'))

    body = session.body()
    assert body["msgtype"] == "markdown"
    assert set(body["markdown"]) == {"title", "text"}
    assert body["markdown"]["title"] == "[CRITICAL] KRTC recording exited abnormally"
    text = body["markdown"]["text"]
    assert text.startswith("### 🔴 [CRITICAL] KRTC recording exited abnormally")
    for fact in ("**Session**: 01SESSION", "**App ID**: app", "**Channel**: room", "**UID**: 7"):
        assert fact in text
    assert "**SID**: sid-1" in text and "**Server status**: 20" in text
    assert "> status 20" in text
    assert session.posts[0]["url"] == DINGTALK
    assert session.posts[0]["allow_redirects"] is False


@pytest.mark.parametrize(("code", "retryable"), [(130101, True), (-1, True), (310000, False)])
def test_dingtalk_reads_errcode_from_a_200(code: int, retryable: bool) -> None:
    body = json.dumps({"errcode": code, "errmsg": "nope"}).encode()

    with pytest.raises(DeliveryError) as caught:
        deliver(DingTalkSink, DINGTALK, make_alert(), answer(200, body))

    assert caught.value.retryable is retryable
    assert f"errcode {code}" in str(caught.value)
    assert "dt0123456789abcdef" not in str(caught.value)


# --- Feishu --------------------------------------------------------------------------------

FEISHU = "https://open.feishu.cn/open-apis/bot/v2/hook/5f1e2d3c-aaaa-bbbb-cccc-0123456789ab"


@pytest.mark.parametrize(
    ("kind", "template"), [("lost", "red"), ("stuck", "orange"), ("dead_letter", "orange")]
)
def test_feishu_sends_an_interactive_card_coloured_by_severity(kind: str, template: str) -> None:
    alert = make_alert(kind=kind, severity=AlertKind(kind).severity)

    session = deliver(FeishuSink, FEISHU, alert, answer(200, b'{"code":0,"msg":"success"}'))

    body = session.body()
    assert body["msg_type"] == "interactive"
    card = body["card"]
    assert card["header"]["template"] == template
    assert card["header"]["title"]["tag"] == "plain_text"
    assert "KRTC" in card["header"]["title"]["content"]
    fields = card["elements"][0]["fields"]
    contents = [f["text"]["content"] for f in fields]
    assert "**Session**\n01SESSION" in contents
    assert all(f["text"]["tag"] == "lark_md" and f["is_short"] for f in fields)
    assert card["elements"][1]["text"]["content"] == "status 20"
    assert card["elements"][-1]["tag"] == "note"


@pytest.mark.parametrize(
    ("body", "retryable"),
    [(b'{"code":11232,"msg":"frequency limited"}', True), (b'{"code":19021,"msg":"sign"}', False)],
)
def test_feishu_reads_code_from_a_200(body: bytes, retryable: bool) -> None:
    with pytest.raises(DeliveryError) as caught:
        deliver(FeishuSink, FEISHU, make_alert(), answer(200, body))

    assert caught.value.retryable is retryable


def test_feishu_accepts_the_older_status_code_answer() -> None:
    deliver(FeishuSink, FEISHU, make_alert(), answer(200, b'{"StatusCode":0,"StatusMessage":"ok"}'))

    with pytest.raises(DeliveryError):
        deliver(FeishuSink, FEISHU, make_alert(), answer(200, b'{"StatusCode":9499}'))


# --- WeCom ---------------------------------------------------------------------------------

WECOM = "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=693a91f6-7aaa-4bc4-97a0-0ec2sifa5aaa"


def test_wecom_sends_markdown_content_with_font_colours() -> None:
    session = deliver(WeComSink, WECOM, make_alert(), answer(200, b'{"errcode":0,"errmsg":"ok"}'))

    body = session.body()
    assert body["msgtype"] == "markdown"
    assert set(body["markdown"]) == {"content"}
    content = body["markdown"]["content"]
    assert content.startswith('## <font color="warning">[CRITICAL] KRTC')
    assert '> Session: <font color="comment">01SESSION</font>' in content
    assert content.endswith("status 20")


def test_wecom_content_stays_within_4096_bytes_with_a_huge_reason() -> None:
    session = deliver(WeComSink, WECOM, make_alert(reason="录" * 5000), answer(200, b"{}"))

    content = session.body()["markdown"]["content"]
    assert len(content.encode("utf-8")) <= CONTENT_LIMIT_BYTES
    assert "> Session:" in content and content.endswith("…")


def test_wecom_rate_limit_is_retryable() -> None:
    with pytest.raises(DeliveryError) as caught:
        deliver(WeComSink, WECOM, make_alert(), answer(200, b'{"errcode":45009,"errmsg":"freq"}'))

    assert caught.value.retryable


# --- Slack ---------------------------------------------------------------------------------

SLACK = "https://hooks.slack.com/services/T00000000/B00000000/XXXXXXXXXXXXXXXXXXXXXXXX"


def test_slack_sends_text_and_blocks() -> None:
    alert = make_alert(reason="a <b> & c", cname="<!channel>")

    session = deliver(SlackSink, SLACK, alert, answer(200, b"ok"))

    body = session.body()
    assert set(body) == {"text", "blocks"}
    header, section, reason, context = body["blocks"]
    assert header["type"] == "header" and header["text"]["type"] == "plain_text"
    assert header["text"]["text"].startswith("🔴 [CRITICAL] KRTC")
    assert section["type"] == "section" and len(section["fields"]) <= 10
    assert {"type": "mrkdwn", "text": "*Channel*\n&lt;!channel&gt;"} in section["fields"]
    assert reason["text"] == {"type": "mrkdwn", "text": "a &lt;b&gt; &amp; c"}
    assert context["type"] == "context"
    assert "<" not in body["text"]


def test_slack_respects_the_block_kit_limits() -> None:
    session = deliver(
        SlackSink, SLACK, make_alert(reason="x" * 10_000, reminder=3), answer(200, b"ok")
    )

    blocks = session.body()["blocks"]
    assert len(blocks[0]["text"]["text"]) <= 150
    assert len(blocks[1]["fields"]) <= 10
    assert len(blocks[2]["text"]["text"]) <= 3000


@pytest.mark.parametrize(("status", "retryable"), [(429, True), (500, True), (404, False)])
def test_slack_http_errors(status: int, retryable: bool) -> None:
    with pytest.raises(DeliveryError) as caught:
        deliver(SlackSink, SLACK, make_alert(), answer(status, b"no_service", {"Retry-After": "7"}))

    assert caught.value.retryable is retryable
    assert caught.value.retry_after_s == 7.0
    assert "XXXXXXXXXXXXXXXXXXXXXXXX" not in str(caught.value)


# --- Generic webhook -----------------------------------------------------------------------

HOOK = "https://alerts.example.com/krtc"


def test_the_webhook_posts_the_alert_as_json() -> None:
    alert = make_alert()

    session = deliver(WebhookSink, HOOK, alert, answer(204))

    body = session.body()
    assert body["type"] == "krtc.alert"
    assert body["title"] == "[CRITICAL] KRTC recording exited abnormally"
    assert Alert.model_validate(body) == alert
    headers = session.posts[0]["headers"]
    assert headers["X-KRTC-Alert-Id"] == alert.id
    assert "X-KRTC-Signature" not in headers


def test_the_webhook_signs_the_exact_bytes_it_sends() -> None:
    session = deliver(
        WebhookSink, HOOK, make_alert(), answer(200), secret="s3cr3t", clock=lambda: 1_700_000_000
    )

    post = session.posts[0]
    headers = post["headers"]
    assert headers["X-KRTC-Timestamp"] == "1700000000"
    assert verify(
        "s3cr3t",
        post["data"],
        headers["X-KRTC-Timestamp"],
        headers["X-KRTC-Signature"],
        now=1_700_000_000,
    )


def test_a_connection_error_is_retryable_and_never_quotes_the_url() -> None:
    error = requests.ConnectionError(f"Max retries exceeded with url: {DINGTALK}")

    with pytest.raises(DeliveryError) as caught:
        deliver(DingTalkSink, DINGTALK, make_alert(), error)

    assert caught.value.retryable
    assert "dt0123456789abcdef" not in str(caught.value)
    assert "access_token=***" in str(caught.value)


def test_a_non_json_200_from_a_chat_robot_is_retryable() -> None:
    with pytest.raises(DeliveryError) as caught:
        deliver(WeComSink, WECOM, make_alert(), answer(200, b"<html>proxy</html>"))

    assert caught.value.retryable


# --- Configuration -------------------------------------------------------------------------


def test_no_url_configures_no_background_sink() -> None:
    assert sinks_from_settings(Settings()) == []


def test_each_url_adds_its_sink() -> None:
    settings = Settings(
        alert_webhook_url=HOOK,
        alert_webhook_secret="k",
        alert_dingtalk_url=DINGTALK,
        alert_feishu_url=FEISHU,
        alert_wecom_url=WECOM,
        alert_slack_url=SLACK,
    )

    sinks = sinks_from_settings(settings)

    assert [s.name for s in sinks] == ["webhook", "dingtalk", "feishu", "wecom", "slack"]
    assert isinstance(sinks[0], WebhookSink) and sinks[0].is_signed
    for sink in sinks:
        sink.close()


def test_webhook_urls_never_show_in_the_settings_repr() -> None:
    settings = Settings(alert_dingtalk_url=DINGTALK, alert_webhook_secret="k3y-value")

    assert "dt0123456789abcdef" not in repr(settings)
    assert "k3y-value" not in repr(settings)


def test_a_url_that_is_not_http_is_a_config_error_that_does_not_echo_it() -> None:
    settings = Settings(alert_wecom_url="ftp://host/?key=wc-secret-key-123")

    with pytest.raises(ConfigError, match="KRTC_ALERT_WECOM_URL") as caught:
        sinks_from_settings(settings)

    assert "wc-secret-key-123" not in str(caught.value)


def test_severity_info_has_a_colour_everywhere() -> None:
    alert = make_alert(severity=Severity.INFO)

    for sink_cls, url in ((FeishuSink, FEISHU), (WeComSink, WECOM), (DingTalkSink, DINGTALK)):
        deliver(sink_cls, url, alert, answer(200, b"{}"))


# --- Signing robots ------------------------------------------------------------------------
# Each expected value is computed here as the vendor documents it, independently of the sink.

ROBOT_SECRET = "SEC0123456789abcdef-robot-secret"
NOW_S = 1_700_000_123.456


def test_dingtalk_with_a_secret_appends_timestamp_and_sign_as_documented() -> None:
    import base64
    import hashlib
    import hmac
    import urllib.parse

    session = deliver(
        DingTalkSink,
        DINGTALK,
        make_alert(),
        answer(200, b'{"errcode":0}'),
        secret=ROBOT_SECRET,
        clock=lambda: NOW_S,
    )

    url = session.posts[0]["url"]
    assert url.startswith(DINGTALK + "&timestamp=")
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(url).query)
    timestamp = "1700000123456"  # milliseconds
    string_to_sign = f"{timestamp}\n{ROBOT_SECRET}"
    expected = base64.b64encode(
        hmac.new(ROBOT_SECRET.encode(), string_to_sign.encode(), hashlib.sha256).digest()
    ).decode()
    assert query["timestamp"] == [timestamp]
    assert query["sign"] == [expected]
    assert urllib.parse.quote_plus(expected) in url, "the sign is URL-encoded"
    assert ROBOT_SECRET not in url


def test_dingtalk_signs_each_attempt_at_its_own_time() -> None:
    times = iter([NOW_S, NOW_S + 3600])
    session = FakeSession(answer(200, b'{"errcode":0}'))
    sink = DingTalkSink(DINGTALK, session=session, secret=ROBOT_SECRET, clock=lambda: next(times))
    sink.deliver(make_alert())
    sink.deliver(make_alert())
    assert session.posts[0]["url"] != session.posts[1]["url"]


def test_dingtalk_bad_signature_answer_is_a_failure_with_its_reason() -> None:
    body = json.dumps({"errcode": 310000, "errmsg": "sign not match"}).encode()
    with pytest.raises(DeliveryError) as caught:
        deliver(DingTalkSink, DINGTALK, make_alert(), answer(200, body), secret=ROBOT_SECRET)
    assert "sign not match" in str(caught.value)
    assert ROBOT_SECRET not in str(caught.value)


def test_feishu_with_a_secret_adds_timestamp_and_sign_to_the_body_as_documented() -> None:
    import base64
    import hashlib
    import hmac

    session = deliver(
        FeishuSink,
        FEISHU,
        make_alert(),
        answer(200, b'{"code":0}'),
        secret=ROBOT_SECRET,
        clock=lambda: NOW_S,
    )

    body = session.body()
    string_to_sign = f"{int(NOW_S)}\n{ROBOT_SECRET}"
    expected = base64.b64encode(
        hmac.new(string_to_sign.encode(), b"", hashlib.sha256).digest()
    ).decode()
    assert body["timestamp"] == str(int(NOW_S))
    assert body["sign"] == expected
    assert body["msg_type"] == "interactive"
    assert ROBOT_SECRET not in session.posts[0]["data"].decode()


def test_feishu_without_a_secret_sends_no_signature() -> None:
    body = deliver(FeishuSink, FEISHU, make_alert(), answer(200, b'{"code":0}')).body()
    assert "sign" not in body and "timestamp" not in body


def test_feishu_bad_signature_code_is_a_failure() -> None:
    body = json.dumps({"code": 19021, "msg": "sign match fail or timestamp is not within one hour"})
    with pytest.raises(DeliveryError) as caught:
        deliver(FeishuSink, FEISHU, make_alert(), answer(200, body.encode()), secret=ROBOT_SECRET)
    assert caught.value.retryable is False
    assert "code 19021" in str(caught.value)


@pytest.mark.parametrize(
    ("body", "retryable"), [(b"invalid_token", False), (b"<html>bad gateway</html>", True)]
)
def test_slack_a_200_that_is_not_ok_is_a_failure(body: bytes, retryable: bool) -> None:
    with pytest.raises(DeliveryError) as caught:
        deliver(SlackSink, SLACK, make_alert(), answer(200, body))
    assert caught.value.retryable is retryable


def test_settings_give_the_robots_their_secrets_and_keep_them_out_of_alerts() -> None:
    settings = Settings(
        alert_dingtalk_url=DINGTALK,
        alert_dingtalk_secret=ROBOT_SECRET,
        alert_feishu_url=FEISHU,
        alert_feishu_secret=ROBOT_SECRET + "-f",
    )
    dingtalk, feishu = sinks_from_settings(settings)
    assert isinstance(dingtalk, DingTalkSink) and dingtalk.secret == ROBOT_SECRET
    assert isinstance(feishu, FeishuSink) and feishu.secret == ROBOT_SECRET + "-f"
    assert ROBOT_SECRET not in repr(settings)
