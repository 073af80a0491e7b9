"""Slack incoming webhook: Block Kit ``blocks`` with a plain ``text`` fallback.

URL ``https://hooks.slack.com/services/T…/B…/<token>``. Slack answers ``ok`` with 200, and an
error name (``invalid_payload``, ``no_service``…) with a 4xx; 429 carries ``Retry-After``. A 200
whose body is anything but ``ok`` (a proxy's page, an error name) is a failed delivery too.
"""

from __future__ import annotations

from typing import Any, ClassVar

import requests

from orchestrator.alerts.model import Alert
from orchestrator.alerts.render import EMOJI, facts, title, truncate, when
from orchestrator.alerts.sinks.base import DeliveryError, HttpSink

__all__ = ["SlackSink", "escape"]

#: Block Kit limits: header text 150 characters, 10 fields of 2000, section text 3000.
_HEADER_LIMIT = 150
_FIELDS_LIMIT = 10
_FIELD_LIMIT = 2000
_SECTION_LIMIT = 3000


def escape(text: str) -> str:
    """``text`` safe in Slack ``mrkdwn`` (``&``, ``<`` and ``>`` escaped)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


class SlackSink(HttpSink):
    """Posts ``{"text": fallback, "blocks": [header, fields, reason, context]}``."""

    name: ClassVar[str] = "slack"
    setting: ClassVar[str] = "KRTC_ALERT_SLACK_URL"

    def payload(self, alert: Alert) -> dict[str, Any]:
        heading = f"{EMOJI[alert.severity]} {title(alert)}"
        rows = facts(alert)[:_FIELDS_LIMIT]
        blocks: list[dict[str, Any]] = [
            {
                "type": "header",
                "text": {"type": "plain_text", "text": truncate(heading, _HEADER_LIMIT)},
            },
            {
                "type": "section",
                "fields": [
                    {
                        "type": "mrkdwn",
                        "text": truncate(f"*{label}*\n{escape(value)}", _FIELD_LIMIT),
                    }
                    for label, value in rows
                ],
            },
        ]
        if alert.reason:
            blocks.append(
                {
                    "type": "section",
                    "text": {
                        "type": "mrkdwn",
                        "text": truncate(escape(alert.reason), _SECTION_LIMIT),
                    },
                }
            )
        blocks.append(
            {
                "type": "context",
                "elements": [{"type": "mrkdwn", "text": f"alert {alert.id} · {when(alert.at)}"}],
            }
        )
        fallback = f"{title(alert)}: session {alert.session_id}: {alert.reason}"
        return {"text": truncate(escape(fallback), _SECTION_LIMIT), "blocks": blocks}

    def check_answer(self, response: requests.Response) -> None:
        answer = response.text.strip()
        if answer == "ok":
            return
        raise DeliveryError(
            f"{self.describe()}: answered {self.scrub(answer[:200])!r} instead of 'ok'",
            retryable=not answer or answer.startswith("<"),
        )
