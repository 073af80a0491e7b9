"""The log sink: always on, one line per alert on the ``orchestrator.alerts`` logger."""

from __future__ import annotations

import logging
from typing import ClassVar

from orchestrator.alerts.model import Alert, Severity
from orchestrator.alerts.render import title
from orchestrator.alerts.sinks.base import Sink

__all__ = ["LogSink"]

_LEVELS = {
    Severity.CRITICAL: logging.ERROR,
    Severity.WARNING: logging.WARNING,
    Severity.INFO: logging.INFO,
}


class LogSink(Sink):
    """Logs each alert at a level from its severity (critical → ERROR).

    Args:
        logger: where to log (default ``orchestrator.alerts``).
    """

    name: ClassVar[str] = "log"
    background: ClassVar[bool] = False

    def __init__(self, logger: logging.Logger | None = None) -> None:
        self.logger = logger or logging.getLogger("orchestrator.alerts")

    def deliver(self, alert: Alert) -> None:
        self.logger.log(
            _LEVELS[alert.severity],
            "%s: session=%s appId=%s cname=%s uid=%s sid=%s status=%s id=%s: %s",
            title(alert),
            alert.session_id,
            alert.app_id,
            alert.cname,
            alert.uid,
            alert.sid,
            alert.server_status,
            alert.id,
            alert.reason,
        )
