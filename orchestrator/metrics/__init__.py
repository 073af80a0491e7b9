"""Cluster-wide metrics: workers record into Redis, ``krtc-rec metrics`` serves them.

* :mod:`~orchestrator.metrics.histograms`: histograms as Redis hashes (bucket bounds).
* :mod:`~orchestrator.metrics.recorder`: :class:`MetricsRecorder` (the API client's observer)
  and :func:`record_schedule_lag` for the scheduler.
* :mod:`~orchestrator.metrics.collector`: the Prometheus collector that reads them back.
* :mod:`~orchestrator.metrics.server`: the ``/metrics`` HTTP endpoint.

docs/operations.md lists the metrics and what they mean.
"""

from orchestrator.metrics.histograms import (
    API_SECONDS,
    RECONCILE_ROUND_SECONDS,
    SCHEDULE_LAG_SECONDS,
    HistogramSpec,
)
from orchestrator.metrics.recorder import (
    OUTCOMES,
    MetricsRecorder,
    outcome_of,
    record_histogram,
    record_schedule_lag,
)

__all__ = [
    "API_SECONDS",
    "RECONCILE_ROUND_SECONDS",
    "SCHEDULE_LAG_SECONDS",
    "HistogramSpec",
    "OUTCOMES",
    "MetricsRecorder",
    "outcome_of",
    "record_histogram",
    "record_schedule_lag",
]
