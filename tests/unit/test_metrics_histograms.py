"""Histograms kept as Redis hashes (orchestrator/metrics/histograms.py)."""

from __future__ import annotations

import pytest

from orchestrator.metrics.histograms import (
    API_SECONDS,
    RECONCILE_ROUND_SECONDS,
    SCHEDULE_LAG_SECONDS,
    HistogramSpec,
)

SPEC = HistogramSpec((0.5, 1.0, 30.0))


def _apply(observations: list[tuple[float, tuple[str, ...]]]) -> dict[str, str]:
    raw: dict[str, float] = {}
    for value, labels in observations:
        for field, amount in SPEC.increments(value, labels).items():
            raw[field] = raw.get(field, 0) + amount
    return {k: str(v) for k, v in raw.items()}


def test_a_value_falls_in_the_first_bucket_whose_bound_is_at_least_the_value() -> None:
    assert SPEC.bucket_of(0.0) == "0.5"
    assert SPEC.bucket_of(0.5) == "0.5"
    assert SPEC.bucket_of(0.51) == "1.0"
    assert SPEC.bucket_of(30.0) == "30.0"
    assert SPEC.bucket_of(30.01) == "+Inf"


def test_one_observation_is_one_bucket_one_count_and_its_value_in_the_sum() -> None:
    assert SPEC.increments(0.7, ("stop",)) == {"stop|1.0": 1, "stop|count": 1, "stop|sum": 0.7}
    assert SPEC.increments(45) == {"+Inf": 1, "count": 1, "sum": 45.0}


def test_reading_back_gives_cumulative_buckets_per_label() -> None:
    raw = _apply([(0.1, ("start",)), (0.7, ("start",)), (99, ("start",)), (0.2, ("stop",))])

    start = SPEC.read(raw, ("start",))
    stop = SPEC.read(raw, ("stop",))

    assert start.buckets == [("0.5", 1), ("1.0", 2), ("30.0", 2), ("+Inf", 3)]
    assert start.count == 3
    assert start.sum == pytest.approx(99.8)
    assert stop.buckets == [("0.5", 1), ("1.0", 1), ("30.0", 1), ("+Inf", 1)]


def test_a_label_that_is_a_prefix_of_another_does_not_read_its_fields() -> None:
    raw = _apply([(0.1, ("update-layout",))])

    assert SPEC.read(raw, ("update",)).buckets[-1] == ("+Inf", 0)
    assert SPEC.read(raw, ("update-layout",)).buckets[-1] == ("+Inf", 1)


def test_nothing_observed_reads_as_zeros() -> None:
    reading = SPEC.read({})

    assert reading.buckets == [("0.5", 0), ("1.0", 0), ("30.0", 0), ("+Inf", 0)]
    assert (reading.sum, reading.count) == (0, 0)


def test_a_count_under_a_bound_that_no_longer_exists_moves_to_the_next_bound() -> None:
    reading = SPEC.read({"0.75": "2", "500.0": "1", "count": "3", "sum": "502"})

    assert reading.buckets == [("0.5", 0), ("1.0", 2), ("30.0", 2), ("+Inf", 3)]


@pytest.mark.parametrize("bounds", [(), (1.0, 1.0), (2.0, 1.0), (1.0, float("inf"))])
def test_bounds_must_be_finite_and_increasing(bounds: tuple[float, ...]) -> None:
    with pytest.raises(ValueError):
        HistogramSpec(bounds)


def test_the_alert_thresholds_are_bucket_bounds() -> None:
    # ops/prometheus/alerts.yml: reconcile rounds above 30 s, schedule lag above 60 s.
    assert 30.0 in RECONCILE_ROUND_SECONDS.bounds
    assert 60.0 in SCHEDULE_LAG_SECONDS.bounds
    # The longest call is connect + read timeout (3.05 + 10 s by default).
    assert API_SECONDS.bounds[-1] >= 13.05
