"""Alert sinks: the log (always on), a generic signed webhook, and chat robots."""

from orchestrator.alerts.sinks.base import DeliveryError, HttpSink, Sink
from orchestrator.alerts.sinks.dingtalk import DingTalkSink
from orchestrator.alerts.sinks.feishu import FeishuSink
from orchestrator.alerts.sinks.log import LogSink
from orchestrator.alerts.sinks.slack import SlackSink
from orchestrator.alerts.sinks.webhook import WebhookSink
from orchestrator.alerts.sinks.wecom import WeComSink

__all__ = [
    "DeliveryError",
    "DingTalkSink",
    "FeishuSink",
    "HttpSink",
    "LogSink",
    "Sink",
    "SlackSink",
    "WeComSink",
    "WebhookSink",
]
