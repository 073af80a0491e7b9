"""``krtc-rec metrics``: the cluster-wide Prometheus view, with real workers, Redis and sandbox."""

from __future__ import annotations

from pathlib import Path

import pytest
import requests
from redis import Redis

from orchestrator.krtc import errors as e
from orchestrator.krtc.client import KrtcClient
from orchestrator.krtc.enums import Action
from orchestrator.metrics import record_schedule_lag
from orchestrator.metrics.server import MetricsServer, registry_for
from orchestrator.reconcile.rounds import RoundGate
from orchestrator.state import Keys, Phase
from tests.integration.ops_processes import (
    Samples,
    child_env,
    free_port,
    scrape,
    spawn_metrics,
    value,
    wait_until,
)
from tests.integration.sandbox_fixture import SandboxHandle
from tests.integration.worker_fixture import QueueStack, start_body

#: Every metric of issue 7, as the sample names Prometheus sees.
EXPECTED_SAMPLES = {
    "krtc_api_requests_total",
    "krtc_api_request_seconds_bucket",
    "krtc_api_request_seconds_sum",
    "krtc_api_request_seconds_count",
    "krtc_sessions",
    "krtc_alerts_total",
    "krtc_dlq_size",
    "krtc_reconcile_round_seconds_bucket",
    "krtc_reconcile_round_seconds_count",
    "krtc_schedule_lag_seconds_bucket",
    "krtc_schedule_lag_seconds_count",
}


def _names(samples: Samples) -> set[str]:
    return {name for name, _ in samples}


def test_the_endpoint_exposes_every_metric_and_the_values_move_when_tasks_run(
    queue_stack: QueueStack, redis_client: Redis, key_prefix: str, tmp_path: Path
) -> None:
    # Given `krtc-rec metrics` and a worker on the test's prefix
    server, url = spawn_metrics(child_env(queue_stack.env), tmp_path)
    try:
        server.wait_for("metrics: serving", 30)
        before = scrape(url)
        assert EXPECTED_SAMPLES <= _names(before)
        assert value(before, "krtc_api_requests_total", action="start", outcome="ok") == 0
        assert value(before, "krtc_sessions", phase="recording") == 0
        assert value(before, "krtc_dlq_size") == 0
        assert value(before, "krtc_reconcile_round_seconds_count") == 0
        queue_stack.start_worker()
        recorder = queue_stack.recorder

        # When a start meets one 500, another goes through, a third is refused (403) and the
        # second is stopped; a reconcile round closes and the scheduler reports a late dispatch
        queue_stack.sandbox.set_faults(fail_next=[{"action": "start", "status": 500, "count": 1}])
        first = recorder.start(start_body("metrics-1"))
        queue_stack.wait(first.id, Phase.RECORDING)
        second = recorder.start(start_body("metrics-2"))
        queue_stack.wait(second.id, Phase.RECORDING)
        queue_stack.sandbox.set_faults(fail_next=[{"action": "start", "status": 403, "count": 1}])
        refused = recorder.start(start_body("metrics-3"))
        queue_stack.wait(refused.id, Phase.FAILED)
        recorder.stop(second.id)
        queue_stack.wait(second.id, Phase.STOPPED)
        keys = Keys(key_prefix)
        gate = RoundGate(redis_client, keys, interval_s=30)
        round_id = gate.begin()
        assert round_id is not None
        assert gate.batch_done(round_id) is not None
        assert record_schedule_lag(redis_client, keys, 75.0)

        # Then one scrape shows all of it
        def moved() -> bool:
            now = scrape(url)
            return (
                value(now, "krtc_dlq_size") >= 1
                and value(now, "krtc_alerts_total", kind="start_failed") >= 1
            )

        wait_until(moved, 10, "the dead letter and the start_failed alert")
        after = scrape(url)
    finally:
        server.stop()

    def calls(action: str, outcome: str) -> float:
        return value(after, "krtc_api_requests_total", action=action, outcome=outcome)

    assert calls("start", "ok") == 2
    assert calls("start", "transient") == 1
    assert calls("start", "permanent") == 1
    assert calls("stop", "ok") >= 1
    assert value(after, "krtc_api_request_seconds_count", action="start") == 4
    assert value(after, "krtc_api_request_seconds_bucket", action="start", le="+Inf") == 4
    assert value(after, "krtc_api_request_seconds_sum", action="start") > 0
    assert value(after, "krtc_sessions", phase="recording") == 1
    assert value(after, "krtc_sessions", phase="pending") == 0
    assert value(after, "krtc_dlq_size") == 1
    assert value(after, "krtc_alerts_total", kind="start_failed") >= 1
    assert value(after, "krtc_reconcile_round_seconds_count") == 1
    assert value(after, "krtc_reconcile_round_seconds_bucket", le="+Inf") == 1
    assert value(after, "krtc_schedule_lag_seconds_bucket", le="60.0") == 0
    assert value(after, "krtc_schedule_lag_seconds_bucket", le="120.0") == 1
    assert value(after, "krtc_schedule_lag_seconds_sum") == 75.0
    assert "Traceback" not in server.log()


def test_a_scrape_answers_503_without_the_password_while_redis_is_unreachable() -> None:
    unreachable = Redis.from_url(
        f"redis://:hunter2-pw@127.0.0.1:{free_port()}/0", socket_connect_timeout=1
    )
    server = MetricsServer(registry_for(unreachable, Keys("t")), host="127.0.0.1", port=0).start()
    try:
        response = requests.get(server.url, timeout=10)
        index = requests.get(server.url.removesuffix("metrics"), timeout=10)
    finally:
        server.stop()

    assert response.status_code == 503
    assert "unreachable" in response.text
    assert "hunter2-pw" not in response.text
    assert index.status_code == 200


def test_the_client_tells_its_observer_of_each_call_and_ignores_an_observer_that_fails(
    sandbox: SandboxHandle,
) -> None:
    seen: list[tuple[Action, float, BaseException | None]] = []

    def failing(action: Action, seconds: float, error: BaseException | None) -> None:
        seen.append((action, seconds, error))
        raise RuntimeError("observer bug")

    ref = {"appId": "app-test", "cname": "nobody", "sid": "0" * 20, "mode": "mix"}
    with KrtcClient(sandbox.settings(), observer=failing) as client:
        with pytest.raises(e.NotFoundError):
            client.query(ref)

    assert len(seen) == 1
    action, seconds, error = seen[0]
    assert action is Action.QUERY
    assert 0 < seconds < 5
    assert isinstance(error, e.NotFoundError)
