"""A reconcile batch keeps several queries in flight (``KRTC_RECONCILE_BATCH_CONCURRENCY``)."""

from __future__ import annotations

import time

import pytest

from orchestrator.jobs.context import JobContext
from orchestrator.krtc.client import KrtcClient
from orchestrator.krtc.enums import Mode
from orchestrator.reconcile.rounds import RoundGate
from orchestrator.reconcile.runner import run_batch
from orchestrator.state import Phase, SessionStore, Source
from tests.integration.sandbox_fixture import SandboxHandle
from tests.integration.worker_fixture import start_body

LATENCY_S = 0.2
SESSIONS = 8


def _recording_sessions(sandbox: SandboxHandle, store: SessionStore) -> list[str]:
    """Sessions in phase recording for real sandbox recordings (as a start task leaves them)."""
    ids = []
    with KrtcClient(sandbox.settings()) as client:
        for n in range(SESSIONS):
            body = start_body(f"batch-{n}")
            del body["clientRequest"]["storageConfig"]
            sid = client.start(body).sid
            session = store.create(
                app_id=body["appId"], cname=body["cname"], uid=body["uid"], mode=Mode.MIX
            ).session
            store.transition(
                session.id, to=Phase.RECORDING, sid=sid, last_status=5, source=Source.TASK
            )
            ids.append(session.id)
    return ids


@pytest.mark.parametrize("concurrency", [1, 4])
def test_a_batch_queries_its_sessions_concurrently_and_closes_the_round(
    sandbox: SandboxHandle, store: SessionStore, redis_url: str, concurrency: int
) -> None:
    ids = _recording_sessions(sandbox, store)
    sandbox.set_faults(latency_ms=LATENCY_S * 1000)
    ctx = JobContext.from_settings(
        sandbox.settings(
            redis_url=redis_url,
            redis_prefix=store.keys.prefix,
            reconcile_batch_concurrency=concurrency,
        )
    )
    gate = RoundGate(store.redis, store.keys, interval_s=30)
    round_id = gate.begin()
    assert round_id is not None and gate.batch_done(round_id, add_batches=1) is None

    began = time.monotonic()
    outcomes = run_batch(ctx, round_id, ids)
    seconds = time.monotonic() - began
    ctx.client.close()

    assert [o.session_id for o in outcomes] == ids, "outcomes in the batch's order"
    assert all(o.queried and o.status == 5 and o.error is None for o in outcomes)
    waves = -(-SESSIONS // concurrency)
    assert waves * LATENCY_S <= seconds < (waves + 1) * LATENCY_S + 0.3
    [summary] = gate.recent()
    assert (summary.id, summary.sessions, summary.queried) == (round_id, SESSIONS, SESSIONS)
