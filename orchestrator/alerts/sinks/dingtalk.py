"""DingTalk custom robot: a ``markdown`` message.

URL ``https://oapi.dingtalk.com/robot/send?access_token=…``. The robot answers HTTP 200 with
``{"errcode": 0, "errmsg": "ok"}``; a non-zero ``errcode`` is an error (130101: more than 20
messages a minute, retried). A robot with a keyword filter needs one of the words of the title
(e.g. ``KRTC``) among its keywords. A robot with the signing setting (加签) needs its secret
(``KRTC_ALERT_DINGTALK_SECRET``): each attempt appends ``&timestamp=…&sign=…`` to the URL
(:mod:`orchestrator.alerts.sinks.robot_signing`).
"""

from __future__ import annotations

from typing import Any, ClassVar

import requests

from orchestrator.alerts.model import Alert
from orchestrator.alerts.render import EMOJI, facts, title, truncate
from orchestrator.alerts.sinks.base import SigningHttpSink
from orchestrator.alerts.sinks.robot_signing import dingtalk_signed_url

__all__ = ["DingTalkSink"]

#: errcode values worth another attempt: -1 system busy, 130101 sending too fast.
_RETRYABLE = frozenset({-1, 130101})
#: Characters of the reason shown (the whole message must stay well under 20,000 bytes).
_REASON_LIMIT = 2000


class DingTalkSink(SigningHttpSink):
    """Posts ``{"msgtype": "markdown", "markdown": {"title", "text"}}``.

    Args:
        url: the robot URL (its access token included).
        secret: the robot's signing secret (加签), if it has one.
        clock: unix time, for the signature's timestamp.
        **options: as for :class:`HttpSink`.
    """

    name: ClassVar[str] = "dingtalk"
    setting: ClassVar[str] = "KRTC_ALERT_DINGTALK_URL"

    def target(self) -> str:
        if self.secret is None:
            return self._url
        return dingtalk_signed_url(self._url, self.secret, int(self.now() * 1000))

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
