"""Histograms kept in Redis hashes, so that every process on every machine adds to the same one.

A histogram is one hash. An observation of ``value`` (with label values ``labels``) adds 1 to
the field of the first bucket whose upper bound is at least ``value`` (``+Inf`` past the last),
1 to ``count`` and ``value`` to ``sum``; fields are ``"{label}|...|{part}"``, e.g.
``"stop|0.25"``, ``"stop|sum"``, ``"stop|count"`` (``"0.25"``, ``"sum"`` without labels). Bucket
fields hold plain (non-cumulative) counts: one ``HINCRBY`` per observation. The collector adds
them up into Prometheus' cumulative buckets. Bounds are written as Prometheus writes ``le``
(``"1.0"``, ``"+Inf"``), which is also how the reconcile round's Lua script names its fields.

Label values must not contain ``|`` (they are action names and other fixed words).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import cast

from prometheus_client.utils import floatToGoString

__all__ = [
    "HistogramSpec",
    "HistogramReading",
    "le_label",
    "API_SECONDS",
    "RECONCILE_ROUND_SECONDS",
    "SCHEDULE_LAG_SECONDS",
]

_SEPARATOR = "|"
SUM = "sum"
COUNT = "count"
INF = "+Inf"


def le_label(bound: float) -> str:
    """A bucket bound as Prometheus writes the ``le`` label (``1.0``, ``0.25``, ``+Inf``)."""
    return cast(str, floatToGoString(bound))  # type: ignore[no-untyped-call]


@dataclass(frozen=True)
class HistogramReading:
    """One labelled histogram as read back: cumulative buckets (``le`` label, count), sum, count."""

    buckets: list[tuple[str, float]]
    sum: float
    count: float


@dataclass(frozen=True)
class HistogramSpec:
    """The bucket upper bounds of one histogram (``+Inf`` is implied).

    Raises:
        ValueError: the bounds are empty, not increasing, or not finite.
    """

    bounds: tuple[float, ...]

    def __post_init__(self) -> None:
        if not self.bounds or any(not math.isfinite(b) for b in self.bounds):
            raise ValueError("histogram bounds must be finite and at least one")
        if any(a >= b for a, b in zip(self.bounds, self.bounds[1:], strict=False)):
            raise ValueError(f"histogram bounds must increase: {self.bounds}")

    @property
    def le_labels(self) -> list[str]:
        """The ``le`` label of every bucket, ``+Inf`` last."""
        return [le_label(b) for b in self.bounds] + [INF]

    def bucket_of(self, value: float) -> str:
        """The ``le`` label of the (non-cumulative) bucket ``value`` falls in."""
        for bound in self.bounds:
            if value <= bound:
                return le_label(bound)
        return INF

    @staticmethod
    def field(labels: tuple[str, ...], part: str) -> str:
        """The hash field of ``part`` (an ``le`` label, ``sum`` or ``count``) for ``labels``."""
        return _SEPARATOR.join((*labels, part))

    def increments(self, value: float, labels: tuple[str, ...] = ()) -> dict[str, int | float]:
        """The hash increments of one observation: ``{bucket: 1, count: 1, sum: value}``."""
        return {
            self.field(labels, self.bucket_of(value)): 1,
            self.field(labels, COUNT): 1,
            self.field(labels, SUM): float(value),
        }

    def read(self, raw: Mapping[str, str], labels: tuple[str, ...] = ()) -> HistogramReading:
        """The histogram of ``labels`` in the hash ``raw`` (zeros when nothing was observed).

        A count stored under a bound this spec does not have (the bounds changed between
        versions) is added to the first bound above it, so that buckets stay cumulative.
        """
        plain = [0.0] * (len(self.bounds) + 1)
        prefix = self.field(labels, "")
        for name, value in raw.items():
            if not name.startswith(prefix):
                continue
            part = name[len(prefix) :]
            if part in (SUM, COUNT) or _SEPARATOR in part:
                continue
            try:
                le = math.inf if part == INF else float(part)
            except ValueError:
                continue
            index = next((i for i, b in enumerate(self.bounds) if le <= b), len(self.bounds))
            plain[index] += float(value)
        cumulative: list[tuple[str, float]] = []
        running = 0.0
        for label, count in zip(self.le_labels, plain, strict=True):
            running += count
            cumulative.append((label, running))
        return HistogramReading(
            buckets=cumulative,
            sum=float(raw.get(self.field(labels, SUM), 0) or 0),
            count=float(raw.get(self.field(labels, COUNT), 0) or 0),
        )


#: API call latency, seconds: covers connect (3 s) + read (10 s) timeouts at the top.
API_SECONDS = HistogramSpec(
    (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 15.0, 30.0)
)
#: Reconcile round duration, seconds: 30 is the default interval (the KrtcReconcileSlow rule).
RECONCILE_ROUND_SECONDS = HistogramSpec(
    (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0)
)
#: Schedule lag, seconds: 60 is the KrtcScheduleLag rule's threshold.
SCHEDULE_LAG_SECONDS = HistogramSpec(
    (0.1, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0)
)
