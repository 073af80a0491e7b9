"""Retention: every record the orchestrator keeps in Redis is deleted after its time.

Redis runs with ``noeviction``: anything that only grows ends in an outage. The collector
(:class:`Collector`, beat's ``krtc.gc``, ``krtc-rec gc``) deletes finished sessions, dead letters,
alerts, past schedule occurrences and ended schedules after their retention
(``KRTC_*_RETENTION_S``); :func:`finished_sessions` reads finished sessions for ``krtc-rec
export`` before that.
"""

from orchestrator.retention.collector import KINDS, Collector, GcReport, RetentionPolicy
from orchestrator.retention.export import finished_sessions

__all__ = ["KINDS", "Collector", "GcReport", "RetentionPolicy", "finished_sessions"]
