"""Alerting: conditions a person must see, once per (session, kind), on every configured sink.

::

    Alerter.raise_alert(kind, session_id, reason)        (jobs: Alerter.hook)
      ├── AlertStore.record     dedupe + recent list + counter + outbox entries, (store.py)
      │                         one Lua script                                   (scripts.py)
      ├── LogSink               in the caller's thread                           (sinks/log.py)
      └── Dispatcher.submit     wakes one thread per webhook sink: lease an      (delivery.py)
            │                   outbox entry, deliver, ack / retry / give up     (outbox.py)
            ├── WebhookSink     JSON, optional HMAC-SHA256 signature             (signing.py)
            ├── DingTalkSink    markdown
            ├── FeishuSink      interactive card
            ├── WeComSink       markdown
            └── SlackSink       blocks

See docs/alerts.md for kinds, severities, each sink's settings and message, and how to verify a
webhook signature.
"""

from orchestrator.alerts.alerter import Alerter, sinks_from_settings
from orchestrator.alerts.delivery import DeliveryPolicy, Dispatcher
from orchestrator.alerts.model import SEVERITY_OF, Alert, AlertKind, Severity
from orchestrator.alerts.outbox import AlertOutbox, Lease, Undelivered
from orchestrator.alerts.redact import RedactedUrl
from orchestrator.alerts.signing import sign, verify
from orchestrator.alerts.sinks import (
    DeliveryError,
    DingTalkSink,
    FeishuSink,
    HttpSink,
    LogSink,
    Sink,
    SlackSink,
    WebhookSink,
    WeComSink,
)
from orchestrator.alerts.store import AlertStore

__all__ = [
    "SEVERITY_OF",
    "Alert",
    "AlertKind",
    "AlertOutbox",
    "AlertStore",
    "Alerter",
    "DeliveryError",
    "DeliveryPolicy",
    "DingTalkSink",
    "Dispatcher",
    "FeishuSink",
    "HttpSink",
    "Lease",
    "LogSink",
    "RedactedUrl",
    "Severity",
    "Sink",
    "SlackSink",
    "Undelivered",
    "WeComSink",
    "WebhookSink",
    "sign",
    "sinks_from_settings",
    "verify",
]
