"""A reconcile batch keeps several queries in flight (``KRTC_RECONCILE_BATCH_CONCURRENCY``),
stops beginning sessions at its deadline and hands the rest on, and paces its queries by the
per-appId rate limit."""

from __future__ import annotations

import time
from typing import Any

import pytest

from orchestrator.jobs.context import JobContext
from orchestrator.reconcile.rounds import RoundGate
from orchestrator.reconcile.runner import run_batch
from orchestrator.state import SessionStore
from tests.integration.recordings import recording_sessions
from tests.integration.sandbox_fixture import SandboxHandle

LATENCY_S = 0.2
SESSIONS = 8


def _recording_sessions(sandbox: SandboxHandle, store: SessionStore) -> list[str]:
    """Sessions in phase recording for real sandbox recordings (as a start task leaves them)."""
    return recording_sessions(sandbox, store, SESSIONS, "batch")


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


#: Latency and batch budget of the deadline tests: a batch of one thread begins 3 sessions.
SLOW_LATENCY_S = 0.4
BUDGET_S = 1.0


def _slow_context(sandbox: SandboxHandle, store: SessionStore, redis_url: str) -> JobContext:
    sandbox.set_faults(latency_ms=SLOW_LATENCY_S * 1000)
    return JobContext.from_settings(
        sandbox.settings(
            redis_url=redis_url, redis_prefix=store.keys.prefix, reconcile_batch_concurrency=1
        )
    )


def _open_round(store: SessionStore) -> tuple[RoundGate, str]:
    gate = RoundGate(store.redis, store.keys, interval_s=30)
    round_id = gate.begin()
    assert round_id is not None and gate.batch_done(round_id, add_batches=1) is None
    return gate, round_id


def test_a_batch_stops_at_its_deadline_and_the_rest_is_reconciled_in_the_same_round(
    sandbox: SandboxHandle, store: SessionStore, redis_url: str
) -> None:
    # Given a slow API and a batch of 8 sessions with a 1 s budget
    ids = _recording_sessions(sandbox, store)
    ctx = _slow_context(sandbox, store, redis_url)
    sent: list[tuple[str, list[Any]]] = []
    ctx.enqueue = lambda task, args: sent.append((task, args)) or f"task-{len(sent)}"
    gate, round_id = _open_round(store)

    # When the batch runs
    began = time.monotonic()
    outcomes = run_batch(ctx, round_id, ids, budget_s=BUDGET_S)
    seconds = time.monotonic() - began

    # Then it began no session after its deadline and handed the others to a batch of its round
    reached = [o for o in outcomes if not o.deferred]
    assert 2 <= len(reached) <= 3 and all(o.queried and o.status == 5 for o in reached)
    assert [o.session_id for o in outcomes] == ids
    assert seconds < BUDGET_S + SLOW_LATENCY_S + 0.5
    assert sent == [("krtc.reconcile_batch", [round_id, ids[len(reached) :]])]
    assert gate.recent() == [], "the round waits for the batch handed on"

    # When the batches handed on run, as workers would run them
    handed_on = len(ids) - len(reached)
    while sent:
        _, (batch_round, part) = sent.pop(0)
        more = run_batch(ctx, batch_round, part, budget_s=BUDGET_S)
        handed_on += sum(o.deferred for o in more)
    ctx.client.close()

    # Then every session was queried exactly once and the round closed, counting the hand-ons
    [summary] = gate.recent()
    assert (summary.id, summary.sessions, summary.queried) == (round_id, len(ids), len(ids))
    assert summary.handed_on == handed_on >= len(ids) - 3
    queried = [r["sid"] for r in sandbox.requests() if r["action"] == "CloudRecordingQuery"]
    sids = [store.get_or_raise(i).sid for i in ids]
    assert sorted(queried) == sorted(sids)


def test_a_batch_that_cannot_queue_its_rest_still_closes_the_round(
    sandbox: SandboxHandle, store: SessionStore, redis_url: str
) -> None:
    ids = _recording_sessions(sandbox, store)
    ctx = _slow_context(sandbox, store, redis_url)  # no enqueue function: sending fails
    gate, round_id = _open_round(store)

    outcomes = run_batch(ctx, round_id, ids, budget_s=BUDGET_S / 2)
    ctx.client.close()

    reached = sum(not o.deferred for o in outcomes)
    [summary] = gate.recent()
    assert (summary.sessions, summary.handed_on) == (reached, len(ids) - reached)


RATE_PER_S = 4.0
BURST = 1


def test_reconcile_queries_keep_to_the_rate_limit_of_their_app_id(
    sandbox: SandboxHandle, store: SessionStore, redis_url: str
) -> None:
    # Given 8 recordings of one appId, a limit of 4 queries a second and 4 threads per batch
    ids = _recording_sessions(sandbox, store)
    ctx = JobContext.from_settings(
        sandbox.settings(
            redis_url=redis_url,
            redis_prefix=store.keys.prefix,
            reconcile_batch_concurrency=4,
            reconcile_interval=1.0,
            rate_limit_per_app=RATE_PER_S,
            rate_limit_burst=BURST,
        )
    )
    gate = RoundGate(store.redis, store.keys, interval_s=1.0)

    # When rounds run until every session was queried
    left, limited_per_round = list(ids), []
    deadline = time.monotonic() + 20
    while left and time.monotonic() < deadline:
        round_id = gate.begin()
        if round_id is None:
            time.sleep(0.05)
            continue
        gate.batch_done(round_id, add_batches=1)
        outcomes = run_batch(ctx, round_id, left)
        limited = [o.session_id for o in outcomes if o.rate_limited]
        assert all(o.queried for o in outcomes if o.session_id not in limited)
        limited_per_round.append(len(limited))
        assert gate.recent()[0].rate_limited == len(limited)
        left = limited
    ctx.client.close()

    # Then no session waited long: those the limit held back were left to the next round
    assert left == [] and limited_per_round[0] > 0
    # And the sandbox never saw more queries for the appId than the limit allows
    times = sorted(
        r["time"]
        for r in sandbox.requests()
        if r["action"] == "CloudRecordingQuery" and r["appId"] == "app-test"
    )
    assert len(times) == len(ids)
    for n, first in enumerate(times):
        in_one_second = sum(1 for t in times[n:] if t < first + 1.0)
        assert in_one_second <= RATE_PER_S + BURST
    assert min(b - a for a, b in zip(times, times[1:], strict=False)) >= 0.8 / RATE_PER_S
