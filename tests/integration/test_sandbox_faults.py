"""Sandbox: fault injection (errors, latency, lost answers, abnormal exits, stuck recordings)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from orchestrator.krtc import errors as e
from orchestrator.krtc.client import KrtcClient
from tests.integration.sandbox_fixture import ControlError, SandboxHandle

pytestmark = pytest.mark.integration

APP, CNAME = "app1", "room-f"
START = {
    "appId": APP,
    "cname": CNAME,
    "uid": "rec-1",
    "mode": "mix",
    "clientRequest": {
        "recordingConfig": {"maxIdleTime": 30},
        "recordingFileConfig": {"avFileType": ["hls"]},
    },
}


def ref(sid: str) -> dict[str, str]:
    return {"appId": APP, "cname": CNAME, "sid": sid, "mode": "mix"}


def started(client: KrtcClient, uid: str = "rec-1") -> str:
    sid = client.start({**START, "uid": uid}).sid
    assert sid
    return sid


@pytest.fixture
def client(sandbox: SandboxHandle) -> Iterator[KrtcClient]:
    with KrtcClient(sandbox.settings()) as c:
        yield c


# Error answers ---------------------------------------------------------------------------------


def test_error_rate_one_fails_every_call_without_effect(
    sandbox: SandboxHandle, client: KrtcClient
) -> None:
    sandbox.set_faults(error_rate=1.0)
    with pytest.raises(e.ServerError) as info:
        client.start(START)

    assert info.value.status == 500
    assert info.value.retryable
    assert "injected" in info.value.reason
    assert sandbox.recordings() == []
    assert sandbox.stats()["byAction"]["CloudRecordingStart"] == {"injected_error": 1}


def test_error_rate_fails_about_that_share(sandbox: SandboxHandle, client: KrtcClient) -> None:
    sid = started(client)
    sandbox.set_faults(error_rate=0.3, error_status=503)
    failures = 0
    for _ in range(200):
        try:
            client.query(ref(sid))
        except e.ServerError as exc:
            assert exc.status == 503
            failures += 1

    assert 30 <= failures <= 90  # seeded; a binomial(200, 0.3) lands here


def test_error_rate_per_action(sandbox: SandboxHandle, client: KrtcClient) -> None:
    sandbox.set_faults(error_rates={"query": 1.0})
    sid = started(client)

    with pytest.raises(e.ServerError):
        client.query(ref(sid))
    assert client.stop(ref(sid)).sid == sid


def test_forced_codes_fail_the_next_calls_then_stop(
    sandbox: SandboxHandle, client: KrtcClient
) -> None:
    sandbox.set_faults(
        fail_next=[
            {"action": "start", "status": 503, "count": 2},
            {"action": "CloudRecordingStart", "status": 400, "reason": "illegal cname"},
        ]
    )
    outcomes: list[Any] = []
    for _ in range(4):
        try:
            outcomes.append(client.start(START).sid is not None)
        except e.KrtcApiError as exc:
            outcomes.append((exc.status, exc.reason))

    assert outcomes[:3] == [
        (503, "internal error (injected: HTTP 503)"),
        (503, "internal error (injected: HTTP 503)"),
        (400, "illegal cname"),
    ]
    assert outcomes[3] is True
    assert len(sandbox.recordings()) == 1


def test_forced_429_carries_retry_after(sandbox: SandboxHandle, client: KrtcClient) -> None:
    sandbox.set_faults(fail_next=[{"action": "query", "status": 429, "retry_after_s": 2}])
    with pytest.raises(e.RateLimitedError) as info:
        client.query(ref("00000000000000000000"))

    assert info.value.retry_after_s == 2


@pytest.mark.parametrize(
    "spec",
    [
        {"error_rate": 2},
        {"fail_next": [{"action": "pause", "status": 500}]},
        {"fail_next": [{"action": "start", "status": 200}]},
        {"apply_then_fail": [{"action": "start", "how": "explode"}]},
        {"latency": 5},
    ],
)
def test_invalid_fault_specs_are_400(sandbox: SandboxHandle, spec: dict[str, Any]) -> None:
    with pytest.raises(ControlError) as info:
        sandbox.set_faults(**spec)

    assert info.value.status == 400


# Latency ---------------------------------------------------------------------------------------


def test_latency_delays_each_answer(sandbox: SandboxHandle, client: KrtcClient) -> None:
    sandbox.set_faults(latency_ms=150)
    began = time.perf_counter()
    client.query(ref(started(client)))

    assert time.perf_counter() - began >= 0.3  # two calls
    assert sandbox.requests()[-1]["delayMs"] == 150


def test_latency_does_not_serialise_requests(sandbox: SandboxHandle) -> None:
    # Given 300 ms of latency and 20 concurrent queries
    sandbox.set_faults(latency_ms=300)
    settings = sandbox.settings(http_pool_size=20)

    def query(_: int) -> int | None:
        with KrtcClient(settings) as c:
            try:
                c.query(ref("00000000000000000000"))
            except e.NotFoundError as exc:
                return exc.status
        return None

    began = time.perf_counter()
    with ThreadPoolExecutor(20) as pool:
        statuses = list(pool.map(query, range(20)))
    elapsed = time.perf_counter() - began

    # Then they are all answered in about one latency, not twenty
    assert statuses == [404] * 20
    assert elapsed < 1.5


def test_jitter_adds_up_to_its_value(sandbox: SandboxHandle, client: KrtcClient) -> None:
    sandbox.set_faults(latency_ms=10, jitter_ms=40)
    for _ in range(10):
        with pytest.raises(e.NotFoundError):
            client.query(ref("00000000000000000000"))
    delays = [r["delayMs"] for r in sandbox.requests()]

    assert all(10 <= d <= 50 for d in delays)
    assert len(set(delays)) > 1


# Apply then fail -------------------------------------------------------------------------------


def test_apply_then_500_makes_the_retried_start_a_409(
    sandbox: SandboxHandle, client: KrtcClient
) -> None:
    sandbox.set_faults(apply_then_fail=[{"action": "start", "how": "error"}])

    # When the start is applied but its answer is a 500
    with pytest.raises(e.ServerError) as info:
        client.start(START)
    # Then the recording exists, and a retry sees a 409
    assert info.value.status == 500
    assert [r["uid"] for r in sandbox.recordings(active=True)] == ["rec-1"]
    with pytest.raises(e.ConflictError):
        client.start(START)
    assert sandbox.stats()["byAction"]["CloudRecordingStart"] == {
        "applied_then_error": 1,
        "conflict": 1,
    }


def test_apply_then_hang_is_a_timeout_after_the_effect(sandbox: SandboxHandle) -> None:
    sandbox.set_faults(apply_then_fail=[{"action": "start", "how": "hang"}])
    began = time.perf_counter()
    with KrtcClient(sandbox.settings(read_timeout_s=0.3)) as client:
        with pytest.raises(e.TransportError) as info:
            client.start(START)
        elapsed = time.perf_counter() - began

        assert info.value.maybe_applied
        assert "timed out" in info.value.reason
        assert 0.3 <= elapsed < 2
        assert len(sandbox.recordings(active=True)) == 1
        with pytest.raises(e.ConflictError):
            client.start(START)


def test_apply_then_close_drops_the_connection(sandbox: SandboxHandle, client: KrtcClient) -> None:
    sid = started(client)
    sandbox.set_faults(apply_then_fail=[{"action": "stop", "how": "close"}])

    with pytest.raises(e.TransportError) as info:
        client.stop(ref(sid))

    assert info.value.maybe_applied
    assert client.query(ref(sid)).status in (6, 7, 8)
    assert sandbox.requests()[-2]["outcome"] == "applied_then_close"


def test_apply_then_fail_counts_down(sandbox: SandboxHandle, client: KrtcClient) -> None:
    sandbox.set_faults(apply_then_fail=[{"action": "start", "how": "error", "count": 2}])
    outcomes = []
    for uid in ("a", "b", "c"):
        try:
            client.start({**START, "uid": uid})
            outcomes.append("ok")
        except e.ServerError:
            outcomes.append("500")

    assert outcomes == ["500", "500", "ok"]
    assert len(sandbox.recordings(active=True)) == 3


# Abnormal exit and stuck recordings ------------------------------------------------------------


def test_abnormal_exit_of_a_given_sid(sandbox: SandboxHandle, client: KrtcClient) -> None:
    sid = started(client)
    other = started(client, "rec-2")
    sandbox.set_faults(abnormal_exit_sids=[sid])

    assert client.query(ref(sid)).status == 20
    assert client.query(ref(other)).status != 20
    with pytest.raises(e.NotFoundError):
        client.stop(ref(sid))
    assert started(client)  # the uid is free again


def test_abnormal_exit_at_a_rate(sandbox: SandboxHandle, client: KrtcClient) -> None:
    sandbox.set_faults(abnormal_exit_rate=1.0, abnormal_exit_after_s=3.0)
    sid = started(client)
    sandbox.advance(2.0)
    assert client.query(ref(sid)).status == 5
    sandbox.advance(1.5)

    assert client.query(ref(sid)).status == 20
    assert sandbox.recording(sid)["endReason"] == "abnormal"


def test_abnormal_exit_of_an_unknown_sid_is_404_and_changes_nothing(
    sandbox: SandboxHandle, client: KrtcClient
) -> None:
    sid = started(client)
    with pytest.raises(ControlError) as info:
        sandbox.set_faults(abnormal_exit_sids=[sid, "nope"], latency_ms=100)

    assert info.value.status == 404
    assert client.query(ref(sid)).status != 20
    assert sandbox.control("GET", "faults")["latency_ms"] == 0


def test_stuck_new_recordings_stay_below_5(sandbox: SandboxHandle, client: KrtcClient) -> None:
    sandbox.set_faults(stuck_new=True, stuck_status=3)
    sid = started(client)
    sandbox.advance(60.0)
    assert client.query(ref(sid)).status == 3
    assert client.query(ref(sid)).files == []

    # Clearing the faults lets it reach 5
    sandbox.clear_faults()
    assert client.query(ref(sid)).status == 5


def test_stuck_given_sid(sandbox: SandboxHandle, client: KrtcClient) -> None:
    sid = started(client)
    sandbox.set_faults(stuck_sids=[sid], stuck_status=1)
    sandbox.advance(5.0)

    assert client.query(ref(sid)).status == 1
    assert client.stop(ref(sid)).status == 6  # a stuck recording can still be stopped
    sandbox.advance(1.0)
    assert client.query(ref(sid)).status == 8


def test_initial_faults_come_back_after_reset(sandbox_factory: Any) -> None:
    handle = sandbox_factory(faults={"error_rates": {"query": 1.0}})
    with KrtcClient(handle.settings()) as c:
        sid = c.start(START).sid
        assert sid
        with pytest.raises(e.ServerError):
            c.query(ref(sid))
        handle.clear_faults()
        assert c.query(ref(sid)).sid == sid
        handle.reset()
        with pytest.raises(e.ServerError):
            c.query(ref(sid))
