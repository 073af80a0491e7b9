"""DingTalk custom robot: a ``markdown`` message.

URL ``https://oapi.dingtalk.com/robot/send?access_token=…``. The robot answers HTTP 200 with
``{"errcode": 0, "errmsg": "ok"}``; a non-zero ``errcode`` is an error (130101: more than 20
messages a minute, retried). A robot with a keyword filter needs one of the words of the title
(e.g. ``KRTC``) among its keywords.
"""

from __future__ import annotations

from typing import Any, ClassVar

import requests

from orchestrator.alerts.model import Alert
from orchestrator.alerts.render import EMOJI, facts, title, truncate
from orchestrator.alerts.sinks.base import HttpSink

__all__ = ["DingTalkSink"]

#: errcode values worth another attempt: -1 system busy, 130101 sending too fast.
_RETRYABLE = frozenset({-1, 130101})
#: Characters of the reason shown (the whole message must stay well under 20,000 bytes).
_REASON_LIMIT = 2000


class DingTalkSink(HttpSink):
    """Posts ``{"msgtype": "markdown", "markdown": {"title", "text"}}``."""

    name: ClassVar[str] = "dingtalk"
    setting: ClassVar[str] = "KRTC_ALERT_DINGTALK_URL"

    def payload(self, alert: Alert) -> dict[str, Any]:
        heading = title(alert)
        lines = [f"### {EMOJI[alert.severity]} {heading}", ""]
        lines += [f"- **{label}**: {value}" for label, value in facts(alert)]
        lines += ["", f"> {truncate(alert.reason, _REASON_LIMIT)}" if alert.reason else ""]
        return {
            "msgtype": "markdown",
            "markdown": {"title": heading, "text": "\n".join(lines).rstrip() + "\n"},
        }

    def check_answer(self, response: requests.Response) -> None:
        self.check_code(response, "errcode", retryable=_RETRYABLE)
