"""The alert outbox with real parts: Redis, a local HTTP receiver, and processes killed with
SIGKILL (orchestrator/alerts/outbox.py, delivery.py, scripts.py).

An alert counts as raised once it is in the outbox: a process that dies before delivering loses
no page, and another process delivers it; an accepted delivery is not sent again.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest
from pydantic import SecretStr
from redis import Redis

from orchestrator.alerts import (
    Alert,
    Alerter,
    AlertStore,
    DeliveryError,
    DeliveryPolicy,
    Lease,
    Sink,
)
from orchestrator.settings import Settings, settings_env
from orchestrator.state import SessionStore
from tests.integration.test_alerts_delivery import Receiver, receiver  # noqa: F401 (fixture)

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
FAST = DeliveryPolicy(max_attempts=4, base_s=0.01, max_s=0.05)
#: Short leases, so that an entry of a killed process is due again within the test.
LEASE_S = 1.0
HOOK_TOKEN = "hooktoken0123456789abcdef"


class Gate(Sink):
    """A background sink that holds each delivery until its gate opens, then keeps the alert."""

    name: ClassVar[str] = "gate"

    def __init__(self, *errors: DeliveryError) -> None:
        self.gate = threading.Event()
        self.errors = list(errors)
        self.alerts: list[Alert] = []
        self.given_up: list[str] = []

    def deliver(self, alert: Alert) -> None:
        self.gate.wait(10)
        if self.errors:
            raise self.errors.pop(0)
        self.alerts.append(alert)

    def after_give_up(self, alert: Alert, error: DeliveryError) -> None:
        self.given_up.append(alert.id)


class Other(Gate):
    name: ClassVar[str] = "other"


@pytest.fixture
def make_alerter(store: SessionStore) -> Iterator[Callable[..., Alerter]]:
    made: list[Alerter] = []

    def make(*, settings: Settings | None = None, **options: Any) -> Alerter:
        options.setdefault("policy", FAST)
        options.setdefault("lease_s", LEASE_S)
        options.setdefault("poll_s", 0.1)
        if settings is not None:
            alerter = Alerter.from_settings(settings, store, **options)
        else:
            alerter = Alerter(AlertStore(store.redis, keys=store.keys), **options)
        made.append(alerter)
        return alerter

    yield make
    for alerter in made:
        for sink in alerter.dispatcher.sinks:
            if isinstance(sink, Gate):
                sink.gate.set()
        alerter.close(2)


def outbox_size(redis_client: Redis, store: SessionStore, sink: str) -> int:
    return int(redis_client.zcard(store.keys.alert_outbox(sink)))


def wait_until(predicate: Callable[[], bool], timeout_s: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


# In one process ----------------------------------------------------------------------------------


def test_raising_queues_one_entry_per_background_sink_in_redis(
    make_alerter: Callable[..., Alerter], store: SessionStore, redis_client: Redis
) -> None:
    # Given two sinks that hold every delivery
    gate, other = Gate(), Other()
    alerter = make_alerter(sinks=[gate, other])

    # When an alert is raised
    alert = alerter.raise_alert("lost", "s-1", "404 from query")

    # Then it is in each sink's outbox before any sink accepted it (raise did not wait)
    assert alert is not None and gate.alerts == [] and other.alerts == []
    for sink in ("gate", "other"):
        assert redis_client.zrange(store.keys.alert_outbox(sink), 0, -1) == [alert.id]
        entry = json.loads(redis_client.hget(store.keys.alert_outbox_entries(sink), alert.id))
        assert entry["alert"]["id"] == alert.id and entry["attempts"] == 0
    # and once accepted, the entries are gone
    gate.gate.set()
    other.gate.set()
    assert alerter.flush(5)
    assert [a.id for a in gate.alerts] == [a.id for a in other.alerts] == [alert.id]
    assert outbox_size(redis_client, store, "gate") == 0
    assert outbox_size(redis_client, store, "other") == 0


def test_a_deduplicated_raise_queues_nothing(
    make_alerter: Callable[..., Alerter], store: SessionStore, redis_client: Redis
) -> None:
    gate = Gate()
    alerter = make_alerter(sinks=[gate])

    assert alerter.raise_alert("lost", "s-1", "first") is not None
    assert alerter.raise_alert("lost", "s-1", "again") is None

    assert outbox_size(redis_client, store, "gate") == 1


def test_one_slow_sink_does_not_hold_up_another(make_alerter: Callable[..., Alerter]) -> None:
    slow, fast = Gate(), Other()
    fast.gate.set()
    alerter = make_alerter(sinks=[slow, fast])

    alerter.raise_alert("stuck", "s-1", "stopping for long")

    assert wait_until(lambda: len(fast.alerts) == 1, 5)
    assert slow.alerts == []


def test_retries_wait_in_redis_and_a_spent_delivery_is_kept_with_its_error(
    make_alerter: Callable[..., Alerter], store: SessionStore, redis_client: Redis
) -> None:
    # Given a sink that always fails with a retryable error
    gate = Gate(*[DeliveryError(f"HTTP 503 #{n}", retryable=True) for n in range(10)])
    gate.gate.set()
    alerter = make_alerter(sinks=[gate])

    # When an alert is raised and its attempts are spent
    alert = alerter.raise_alert("lost", "s-1", "404 from query")
    assert alert is not None
    assert alerter.flush(5)

    # Then it is recorded as undelivered, with the attempts and the last error, and counted
    [undelivered] = alerter.store.outbox.undelivered()
    assert (undelivered.sink, undelivered.attempts) == ("gate", FAST.max_attempts)
    assert undelivered.error == "HTTP 503 #3"
    assert undelivered.alert is not None and undelivered.alert.id == alert.id
    assert abs(undelivered.at - time.time()) < 60
    assert alerter.store.outbox.undelivered_counts() == {"gate": 1}
    assert gate.given_up == [alert.id]
    assert outbox_size(redis_client, store, "gate") == 0


def test_a_permanent_error_is_given_up_at_once(make_alerter: Callable[..., Alerter]) -> None:
    gate = Gate(DeliveryError("HTTP 404", retryable=False))
    gate.gate.set()
    alerter = make_alerter(sinks=[gate])

    alerter.raise_alert("lost", "s-1", "404 from query")
    assert alerter.flush(5)

    [undelivered] = alerter.store.outbox.undelivered()
    assert (undelivered.attempts, undelivered.error) == (1, "HTTP 404")


def test_a_full_outbox_drops_the_entry_due_longest_ago_and_says_so(
    store: SessionStore, redis_client: Redis, caplog: pytest.LogCaptureFixture
) -> None:
    # Given an outbox of three entries and no lane delivering (nothing started)
    alerts = AlertStore(store.redis, keys=store.keys, outbox_limit=3)
    raised = []
    with caplog.at_level(logging.ERROR, logger="orchestrator.alerts"):
        for n in range(5):
            draft = Alert(
                id=f"a{n}", kind="lost", severity="critical", session_id=f"s-{n}", at=n, first_at=n
            )
            raised.append(alerts.record(draft, sinks=["gate"]))
            time.sleep(0.002)  # distinct Redis milliseconds

    # Then the newest three wait, the two oldest are recorded as dropped, with an error log
    assert all(a is not None for a in raised)
    assert sorted(redis_client.zrange(store.keys.alert_outbox("gate"), 0, -1)) == ["a2", "a3", "a4"]
    assert redis_client.hlen(store.keys.alert_outbox_entries("gate")) == 3
    dropped = alerts.outbox.undelivered()
    assert [(u.alert.id if u.alert else None) for u in dropped] == ["a1", "a0"]
    assert all("full" in u.error for u in dropped)
    assert "alert a0 dropped from the outbox of gate" in caplog.text


def test_a_lane_whose_lease_ran_out_cannot_settle_the_entry(
    store: SessionStore, redis_client: Redis
) -> None:
    # Given an entry leased for 50 ms by one lane, and taken again by another once that ran out
    alerts = AlertStore(store.redis, keys=store.keys)
    draft = Alert(id="a1", kind="lost", severity="critical", session_id="s", at=1.0, first_at=1.0)
    alerts.record(draft, sinks=["gate"])
    first = alerts.outbox.lease("gate", 0.05)
    assert isinstance(first, Lease)
    assert alerts.outbox.lease("gate", 0.05) is not None  # nothing due: the wait until it is
    time.sleep(0.1)
    second = alerts.outbox.lease("gate", 30)
    assert isinstance(second, Lease) and second.token != first.token

    # When the first lane fails and tries to reschedule or give up the entry
    assert not alerts.outbox.retry(first, "HTTP 500", 0)
    assert not alerts.outbox.give_up(first, "HTTP 500")

    # Then the second lane's lease stands, and it settles the entry
    assert float(redis_client.zscore(store.keys.alert_outbox("gate"), "a1")) == float(second.token)
    assert alerts.outbox.ack(second)
    assert alerts.outbox.lease("gate", 30) is None
    assert alerts.outbox.undelivered() == []


def test_the_outbox_holds_no_webhook_url_or_secret(
    make_alerter: Callable[..., Alerter], store: SessionStore, redis_client: Redis
) -> None:
    # Given a webhook (with a token in its URL and a signing secret) that is down
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    settings = Settings(
        alert_webhook_url=SecretStr(f"http://127.0.0.1:{port}/hooks/{HOOK_TOKEN}"),
        alert_webhook_secret=SecretStr("whsec-outbox-9f3e"),
    )
    alerter = make_alerter(settings=settings, policy=DeliveryPolicy(max_attempts=2, base_s=0.01))

    # When an alert is raised, attempted, and given up
    alerter.raise_alert("lost", "s-1", "404 from query")
    assert alerter.flush(10)

    # Then no key under the prefix holds the URL's token or the secret
    dump = []
    for key in redis_client.scan_iter(match=store.keys.pattern()):
        kind = redis_client.type(key)
        if kind == "string":
            dump.append(redis_client.get(key))
        elif kind == "hash":
            dump.append(json.dumps(redis_client.hgetall(key)))
        elif kind == "list":
            dump.append(json.dumps(redis_client.lrange(key, 0, -1)))
        elif kind == "zset":
            dump.append(json.dumps(redis_client.zrange(key, 0, -1)))
    text = "\n".join(str(d) for d in dump)
    assert "webhook" in text and "Connection" in text  # the undelivered record is there
    assert HOOK_TOKEN not in text and "whsec-outbox-9f3e" not in text


# Across processes --------------------------------------------------------------------------------


def raiser(config: dict[str, Any]) -> subprocess.Popen[str]:
    """A process that raises one alert (tests/integration/alert_raiser.py)."""
    return subprocess.Popen(
        [sys.executable, "-m", "tests.integration.alert_raiser", json.dumps(config)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        start_new_session=True,
    )


def raised_id(process: subprocess.Popen[str]) -> str:
    assert process.stdout is not None
    line = process.stdout.readline().strip()
    assert line.startswith("raised "), line
    return line.removeprefix("raised ")


def kill(process: subprocess.Popen[str]) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGKILL)
    process.wait(10)
    if process.stdout is not None:
        process.stdout.close()


@pytest.fixture
def config(redis_url: str, key_prefix: str, receiver: Receiver) -> dict[str, Any]:  # noqa: F811
    return {
        "redis_url": redis_url,
        "prefix": key_prefix,
        "webhook_url": receiver.url("/hook"),
        "session_id": "s-killed",
        "lease_s": LEASE_S,
    }


def test_an_alert_of_a_process_killed_mid_delivery_is_delivered_by_another(
    config: dict[str, Any],
    receiver: Receiver,  # noqa: F811
    make_alerter: Callable[..., Alerter],
    store: SessionStore,
    redis_client: Redis,
) -> None:
    # Given a process that raised an alert, and was SIGKILLed while the receiver held its POST
    receiver.hang.add("/hook")
    dying = raiser(config)
    try:
        alert_id = raised_id(dying)
        assert receiver.wait_for(1, 10), "the first attempt reached the receiver"
    finally:
        kill(dying)
    receiver.hang.discard("/hook")

    # When another process runs an alerter for the same webhook (it raises nothing itself)
    survivor = make_alerter(settings=Settings(alert_webhook_url=SecretStr(receiver.url("/hook"))))
    survivor.start()

    # Then, once the dead process's lease ran out, the alert is delivered, and then forgotten
    assert wait_until(lambda: len(receiver.requests) >= 2, 10)
    assert {r.headers["X-KRTC-Alert-Id"] for r in receiver.requests} == {alert_id}
    assert receiver.requests[-1].json()["session_id"] == "s-killed"
    assert wait_until(lambda: outbox_size(redis_client, store, "webhook") == 0, 5)
    time.sleep(LEASE_S + 0.3)
    assert len(receiver.requests) == 2


def test_an_alert_raised_while_the_receiver_is_down_survives_its_process(
    config: dict[str, Any],
    receiver: Receiver,  # noqa: F811
    make_alerter: Callable[..., Alerter],
) -> None:
    # Given a receiver that is down (503) while a process raises, retries, and is SIGKILLed
    receiver.script["/hook"] = [(503, b"down")]
    dying = raiser(config)
    try:
        alert_id = raised_id(dying)
        assert receiver.wait_for(1, 10)
    finally:
        kill(dying)

    refused = len(receiver.requests)

    # When the receiver is back and another process delivers
    receiver.script["/hook"] = [(200, b"{}")]
    survivor = make_alerter(settings=Settings(alert_webhook_url=SecretStr(receiver.url("/hook"))))
    survivor.start()

    # Then the alert arrives, and is accepted once
    assert wait_until(lambda: len(receiver.requests) > refused, 10)
    assert survivor.flush(5)
    time.sleep(0.3)
    assert len(receiver.requests) == refused + 1
    assert {r.headers["X-KRTC-Alert-Id"] for r in receiver.requests} == {alert_id}


def test_an_accepted_delivery_is_not_sent_again_after_its_process_dies(
    config: dict[str, Any],
    receiver: Receiver,  # noqa: F811
    make_alerter: Callable[..., Alerter],
) -> None:
    # Given a process whose alert the receiver accepted, killed afterwards
    dying = raiser(config)
    try:
        raised_id(dying)
        assert receiver.wait_for(1, 10)
        time.sleep(0.3)  # the acknowledgement lands
    finally:
        kill(dying)

    # When another process delivers from the outbox for longer than a lease
    survivor = make_alerter(settings=Settings(alert_webhook_url=SecretStr(receiver.url("/hook"))))
    survivor.start()
    assert survivor.flush(5)
    time.sleep(LEASE_S + 0.5)

    # Then the receiver got it once
    assert len(receiver.requests) == 1


def test_the_same_alert_raised_by_two_processes_at_once_is_delivered_once(
    config: dict[str, Any],
    receiver: Receiver,  # noqa: F811
) -> None:
    # Given two processes that raise the same (session, kind) at the same moment, then deliver
    at = time.time() + 1.5
    processes = [raiser({**config, "at": at, "then": "flush"}) for _ in range(2)]
    outputs = []
    for process in processes:
        out, _ = process.communicate(timeout=30)
        outputs.append(out.strip())

    # Then one raised it, the other was deduplicated, and the receiver got one request
    assert sorted(o.split()[0] for o in outputs) == ["deduplicated", "raised"]
    time.sleep(0.3)
    assert len(receiver.requests) == 1


def test_krtc_rec_alerts_delivers_what_a_dead_process_left_and_lists_what_was_given_up(
    redis_url: str,
    key_prefix: str,
    store: SessionStore,
    receiver: Receiver,  # noqa: F811
) -> None:
    # Given alerts queued for the webhook by a process that never delivered them (it died)
    alerts = AlertStore(store.redis, keys=store.keys)
    for n, session_id in enumerate(("s-ok", "s-refused")):
        draft = Alert(
            id=f"left-{n}",
            kind="lost",
            severity="critical",
            session_id=session_id,
            at=n,
            first_at=n,
        )
        assert alerts.record(draft, sinks=["webhook"]) is not None
    receiver.script["/hook"] = [(200, b"{}"), (404, b"no such hook")]
    settings = Settings(
        redis_url=redis_url,
        redis_prefix=key_prefix,
        alert_webhook_url=SecretStr(receiver.url("/hook")),
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("KRTC_")}
    env.update(settings_env(settings))

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "orchestrator.cli", "alerts", *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )

    # When `krtc-rec alerts` runs
    listing = cli("--json")

    # Then it lists them, and delivers both: one accepted, one refused for good
    assert listing.returncode == 0, listing.stderr
    assert {a["id"] for a in json.loads(listing.stdout)} == {"left-0", "left-1"}
    assert sorted(r.headers["X-KRTC-Alert-Id"] for r in receiver.requests) == ["left-0", "left-1"]
    assert alerts.outbox.pending("webhook") == 0
    # and the refused one is listed as undelivered, with its error
    given_up = cli("--undelivered", "--json", "--deliver-for", "0")
    assert given_up.returncode == 0, given_up.stderr
    [record] = json.loads(given_up.stdout)
    assert (record["sink"], record["attempts"]) == ("webhook", 1)
    assert "HTTP 404" in record["error"] and record["alert"]["id"] in {"left-0", "left-1"}
    table = cli("--undelivered", "--deliver-for", "0")
    assert "HTTP 404" in table.stdout and "webhook" in table.stdout


def test_the_metrics_count_given_up_and_waiting_deliveries_per_sink(
    make_alerter: Callable[..., Alerter], store: SessionStore
) -> None:
    from orchestrator.metrics.collector import RedisCollector

    # Given one delivery refused for good, and one waiting for a webhook no process delivers to
    gate = Gate(DeliveryError("HTTP 404", retryable=False))
    gate.gate.set()
    alerter = make_alerter(sinks=[gate])
    alerter.raise_alert("lost", "s-1", "404 from query")
    assert alerter.flush(5)
    draft = Alert(id="w1", kind="lost", severity="critical", session_id="s-2", at=1.0, first_at=1.0)
    alerter.store.record(draft, sinks=["webhook"])

    # When the metrics are collected
    samples = {
        (sample.name, sample.labels.get("sink")): sample.value
        for metric in RedisCollector(store.redis, store.keys).collect()
        for sample in metric.samples
    }

    # Then each sink is counted, the known ones from 0
    assert samples[("krtc_alerts_undelivered_total", "gate")] == 1
    assert samples[("krtc_alerts_undelivered_total", "slack")] == 0
    assert samples[("krtc_alerts_outbox", "webhook")] == 1
    assert samples[("krtc_alerts_outbox", "gate")] == 0
