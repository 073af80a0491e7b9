"""Feishu / Lark custom bot: an ``interactive`` card, coloured by severity.

URL ``https://open.feishu.cn/open-apis/bot/v2/hook/<token>`` (Lark:
``https://open.larksuite.com/…``). The bot answers ``{"code": 0, "msg": "success"}`` (older
deployments: ``{"StatusCode": 0}``); 11232 (rate limited) is retried, any other non-zero code
is a failure (19021: bad signature). A bot with signature verification (签名校验) needs its
secret (``KRTC_ALERT_FEISHU_SECRET``): each attempt adds ``"timestamp"`` and ``"sign"`` to the
body (:mod:`orchestrator.alerts.sinks.robot_signing`).
"""

from __future__ import annotations

import json
from typing import Any, ClassVar

import requests

from orchestrator.alerts.model import Alert, Severity
from orchestrator.alerts.render import facts, title, truncate, when
from orchestrator.alerts.sinks.base import SigningHttpSink
from orchestrator.alerts.sinks.robot_signing import feishu_sign

__all__ = ["FeishuSink"]

#: code values worth another attempt: 11232 rate limited.
_RETRYABLE = frozenset({11232})
_TEMPLATES = {Severity.CRITICAL: "red", Severity.WARNING: "orange", Severity.INFO: "blue"}
_REASON_LIMIT = 4000


class FeishuSink(SigningHttpSink):
    """Posts ``{"msg_type": "interactive", "card": {header, elements}}``.

    Args:
        url: the bot URL (its token included).
        secret: the bot's signing secret, if it verifies signatures.
        clock: unix time, for the signature's timestamp.
        **options: as for :class:`HttpSink`.
    """

    name: ClassVar[str] = "feishu"
    setting: ClassVar[str] = "KRTC_ALERT_FEISHU_URL"

    def body(self, alert: Alert) -> bytes:
        message = self.payload(alert)
        if self.secret is not None:
            timestamp = int(self.now())
            message = {
                "timestamp": str(timestamp),
                "sign": feishu_sign(self.secret, timestamp),
                **message,
            }
        return json.dumps(message, ensure_ascii=False).encode("utf-8")

    def payload(self, alert: Alert) -> dict[str, Any]:
        fields = [
            {"is_short": True, "text": {"tag": "lark_md", "content": f"**{label}**\n{value}"}}
            for label, value in facts(alert)
        ]
        elements: list[dict[str, Any]] = [{"tag": "div", "fields": fields}]
        if alert.reason:
            reason = truncate(alert.reason, _REASON_LIMIT)
            elements.append({"tag": "div", "text": {"tag": "plain_text", "content": reason}})
        elements.append(
            {
                "tag": "note",
                "elements": [
                    {"tag": "plain_text", "content": f"alert {alert.id} · {when(alert.at)}"}
                ],
            }
        )
        return {
            "msg_type": "interactive",
            "card": {
                "config": {"wide_screen_mode": True},
                "header": {
                    "template": _TEMPLATES[alert.severity],
                    "title": {"tag": "plain_text", "content": title(alert)},
                },
                "elements": elements,
            },
        }

    def check_answer(self, response: requests.Response) -> None:
        data = self.answer_json(response)
        field = "StatusCode" if "StatusCode" in data and "code" not in data else "code"
        self.check_code(response, field, retryable=_RETRYABLE)
