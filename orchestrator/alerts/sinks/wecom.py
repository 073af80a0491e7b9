"""WeCom (WeChat Work) group robot: a ``markdown`` message.

URL ``https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=…``. Content is at most 4096 bytes of
UTF-8 and supports three font colours (``info`` green, ``comment`` grey, ``warning`` orange-red).
The robot answers ``{"errcode": 0, "errmsg": "ok"}``; 45009 (rate limit: 20 a minute) is retried.
"""

from __future__ import annotations

from typing import Any, ClassVar

import requests

from orchestrator.alerts.model import Alert, Severity
from orchestrator.alerts.render import facts, title, truncate_utf8
from orchestrator.alerts.sinks.base import HttpSink

__all__ = ["WeComSink", "CONTENT_LIMIT_BYTES"]

#: The robot's limit on ``markdown.content``.
CONTENT_LIMIT_BYTES = 4096
#: errcode values worth another attempt: -1 system busy, 45009 rate limited.
_RETRYABLE = frozenset({-1, 45009})
_COLOURS = {Severity.CRITICAL: "warning", Severity.WARNING: "warning", Severity.INFO: "info"}


class WeComSink(HttpSink):
    """Posts ``{"msgtype": "markdown", "markdown": {"content"}}``."""

    name: ClassVar[str] = "wecom"
    setting: ClassVar[str] = "KRTC_ALERT_WECOM_URL"

    def payload(self, alert: Alert) -> dict[str, Any]:
        colour = _COLOURS[alert.severity]
        lines = [f'## <font color="{colour}">{title(alert)}</font>']
        lines += [
            f'> {label}: <font color="comment">{value}</font>' for label, value in facts(alert)
        ]
        head = "\n".join(lines) + "\n\n"
        # The facts always fit; the reason gets whatever is left of the limit.
        room = CONTENT_LIMIT_BYTES - len(head.encode("utf-8"))
        content = head + truncate_utf8(alert.reason, room)
        return {"msgtype": "markdown", "markdown": {"content": content.rstrip()}}

    def check_answer(self, response: requests.Response) -> None:
        self.check_code(response, "errcode", retryable=_RETRYABLE)
