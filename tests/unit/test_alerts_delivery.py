"""Delivery: attempts, retries, backoff, hooks (orchestrator/alerts/delivery.py); the background
lanes and the outbox need Redis: tests/integration/test_alerts_outbox.py."""

from __future__ import annotations

import logging
import threading
from typing import ClassVar

import pytest

from orchestrator.alerts import Alert, DeliveryError, DeliveryPolicy, Dispatcher, Sink
from orchestrator.alerts.delivery import backoff_s
from tests.unit.test_alerts_model import make_alert

FAST = DeliveryPolicy(max_attempts=4, base_s=0.001, max_s=0.002)


class ScriptedSink(Sink):
    """Fails with the scripted errors, then succeeds; records every hook call."""

    name: ClassVar[str] = "scripted"

    def __init__(self, *errors: Exception, gate: threading.Event | None = None) -> None:
        self.errors = list(errors)
        self.gate = gate
        self.calls: list[tuple[str, str]] = []
        self.delivered: list[Alert] = []
        self.closed = False

    def before_deliver(self, alert: Alert) -> None:
        self.calls.append(("before", alert.id))

    def deliver(self, alert: Alert) -> None:
        if self.gate is not None:
            self.gate.wait(5)
        if self.errors:
            raise self.errors.pop(0)
        self.delivered.append(alert)

    def after_deliver(self, alert: Alert) -> None:
        self.calls.append(("after", alert.id))

    def after_give_up(self, alert: Alert, error: DeliveryError) -> None:
        self.calls.append(("give_up", str(error)))

    def close(self) -> None:
        self.closed = True


def retryable(message: str = "HTTP 500") -> DeliveryError:
    return DeliveryError(message, retryable=True)


def test_a_retryable_failure_is_retried_until_it_succeeds() -> None:
    sink = ScriptedSink(retryable(), retryable())

    assert Dispatcher([sink], policy=FAST).deliver(sink, make_alert())

    assert len(sink.delivered) == 1
    assert sink.calls == [("before", "a1")] * 3 + [("after", "a1")]


def test_a_permanent_failure_is_not_retried() -> None:
    sink = ScriptedSink(DeliveryError("HTTP 404", retryable=False))

    assert not Dispatcher([sink], policy=FAST).deliver(sink, make_alert())

    assert sink.calls == [("before", "a1"), ("give_up", "HTTP 404")]


def test_attempts_are_capped(caplog: pytest.LogCaptureFixture) -> None:
    sink = ScriptedSink(*[retryable() for _ in range(10)])

    with caplog.at_level(logging.WARNING):
        assert not Dispatcher([sink], policy=FAST).deliver(sink, make_alert())

    assert [c[0] for c in sink.calls].count("before") == FAST.max_attempts
    assert sink.calls[-1] == ("give_up", "HTTP 500")
    assert "after 4 attempt(s)" in caplog.text


def test_backoff_is_exponential_capped_and_jittered() -> None:
    policy = DeliveryPolicy(max_attempts=10, base_s=1.0, max_s=30.0)
    error = retryable()

    assert [backoff_s(error, n, policy, rng=lambda: 0.999999) for n in (1, 2, 3, 6, 9)] == (
        pytest.approx([1.0, 2.0, 4.0, 30.0, 30.0], rel=1e-3)
    )
    assert backoff_s(error, 5, policy, rng=lambda: 0.0) == 0.0
    assert backoff_s(error, 5, policy, rng=lambda: 0.5) == 8.0


def test_retry_after_is_a_floor_within_the_cap() -> None:
    policy = DeliveryPolicy(max_attempts=10, base_s=1.0, max_s=30.0)

    assert (
        backoff_s(DeliveryError("429", retryable=True, retry_after_s=12), 1, policy, rng=lambda: 0)
        == 12
    )
    assert (
        backoff_s(DeliveryError("429", retryable=True, retry_after_s=900), 1, policy, rng=lambda: 0)
        == 30
    )


def test_policies_are_checked() -> None:
    with pytest.raises(ValueError):
        DeliveryPolicy(max_attempts=0)
    with pytest.raises(ValueError):
        DeliveryPolicy(base_s=2, max_s=1)
    with pytest.raises(ValueError):
        Dispatcher([], lease_s=0)
    with pytest.raises(ValueError):
        Dispatcher([ScriptedSink(), ScriptedSink()])


def test_one_attempt_reports_a_sink_bug_as_a_permanent_error() -> None:
    class Buggy(ScriptedSink):
        def deliver(self, alert: Alert) -> None:
            raise KeyError("oops")

    error = Dispatcher.attempt(Buggy(), make_alert())

    assert error is not None and not error.retryable and "KeyError" in str(error)
    assert Dispatcher.attempt(ScriptedSink(), make_alert()) is None
