"""Background delivery: retries, backoff, hooks, full queues (orchestrator/alerts/delivery.py)."""

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


def test_submit_returns_at_once_and_delivers_in_the_background() -> None:
    gate = threading.Event()
    sink = ScriptedSink(gate=gate)
    dispatcher = Dispatcher([sink], policy=FAST)

    dispatcher.submit(make_alert())
    assert sink.delivered == []  # still held at the gate: submit did not wait

    gate.set()
    assert dispatcher.flush(5)
    assert [a.id for a in sink.delivered] == ["a1"]
    assert dispatcher.close(1)
    assert sink.closed


def test_one_slow_sink_does_not_hold_up_another() -> None:
    gate = threading.Event()
    slow, fast = ScriptedSink(gate=gate), ScriptedSink()
    dispatcher = Dispatcher([slow, fast], policy=FAST)

    dispatcher.submit(make_alert())

    waited = threading.Event()
    for _ in range(500):
        if fast.delivered:
            break
        waited.wait(0.01)
    assert fast.delivered and not slow.delivered
    gate.set()
    assert dispatcher.close(5)


def test_a_full_queue_drops_the_alert_for_that_sink_and_says_so(
    caplog: pytest.LogCaptureFixture,
) -> None:
    gate = threading.Event()
    sink = ScriptedSink(gate=gate)
    dispatcher = Dispatcher([sink], policy=FAST, queue_size=1)

    with caplog.at_level(logging.ERROR):
        for n in range(5):
            dispatcher.submit(make_alert(id=f"a{n}"))

    gate.set()
    assert dispatcher.close(5)
    assert "dropped" in caplog.text
    assert 1 <= len(sink.delivered) <= 2


def test_close_abandons_a_retry_wait() -> None:
    sink = ScriptedSink(*[retryable() for _ in range(5)])
    dispatcher = Dispatcher([sink], policy=DeliveryPolicy(max_attempts=5, base_s=60, max_s=60))

    dispatcher.submit(make_alert())
    assert not dispatcher.close(0.2)

    # The lane wakes from its 60 s wait as soon as the dispatcher closes.
    waited = threading.Event()
    for _ in range(200):
        if sink.calls[-1][0] == "give_up":
            break
        waited.wait(0.01)
    assert sink.calls[-1][0] == "give_up"
    assert sink.delivered == []


def test_policies_are_checked() -> None:
    with pytest.raises(ValueError):
        DeliveryPolicy(max_attempts=0)
    with pytest.raises(ValueError):
        DeliveryPolicy(base_s=2, max_s=1)
    with pytest.raises(ValueError):
        Dispatcher([], queue_size=0)
