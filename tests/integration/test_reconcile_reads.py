"""A reconcile batch reads its sessions in chunks (one round trip each) and decides from that
snapshot only that nothing is to be done; every change is decided on the session read again
after the query. Real Redis and sandbox, the reconciler in the test's process."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
from redis import Redis

from orchestrator.jobs.context import JobContext
from orchestrator.reconcile.runner import READ_CHUNK, chunk_size, reconcile_many, run_once
from orchestrator.reconcile.session import reconcile_session
from orchestrator.state import Desired, Phase, SessionStore
from tests.integration.recordings import recording_sessions
from tests.integration.sandbox_fixture import SandboxHandle


class Sent(list[tuple[str, list[Any]]]):
    def __call__(self, task: str, args: list[Any]) -> str:
        self.append((task, args))
        return f"task-{len(self)}"


class Alerts(list[tuple[str, str, str]]):
    def __call__(self, kind: str, session_id: str, reason: str) -> None:
        self.append((kind, session_id, reason))


@pytest.fixture
def alerts() -> Alerts:
    return Alerts()


@pytest.fixture
def sent() -> Sent:
    return Sent()


@pytest.fixture
def ctx(
    sandbox: SandboxHandle, store: SessionStore, redis_url: str, alerts: Alerts, sent: Sent
) -> Iterator[JobContext]:
    context = JobContext.from_settings(
        sandbox.settings(redis_url=redis_url, redis_prefix=store.keys.prefix)
    )
    context.alert = alerts
    context.enqueue = sent
    yield context
    context.client.close()


@pytest.fixture
def calls(ctx: JobContext, monkeypatch: pytest.MonkeyPatch) -> Counter[str]:
    """How often the reconciler read and wrote sessions, by store method."""
    counted: Counter[str] = Counter()
    for name in ("get", "read_hashes", "transition", "note", "request_stop"):
        method = getattr(ctx.store, name)

        def wrapper(*args: Any, _name: str = name, _method: Any = method, **kw: Any) -> Any:
            counted[_name] += 1
            return _method(*args, **kw)

        monkeypatch.setattr(ctx.store, name, wrapper)
    return counted


def _recordings(
    sandbox: SandboxHandle, store: SessionStore, count: int, prefix: str = "reads"
) -> list[str]:
    """Sessions in phase recording (status 5) for real sandbox recordings."""
    return recording_sessions(sandbox, store, count, prefix, pin_status_5=True)


def _sid(store: SessionStore, session_id: str) -> str:
    return str(store.get_or_raise(session_id).sid)


def test_chunks_give_each_thread_about_two_reads_and_never_more_than_the_cap() -> None:
    assert chunk_size(50, 2) == 13
    assert chunk_size(8, 2) == 2
    assert chunk_size(1, 4) == 1
    assert chunk_size(10_000, 16) == READ_CHUNK


@pytest.mark.parametrize("concurrency", [1, 2])
def test_a_steady_batch_reads_its_sessions_in_chunks_and_writes_nothing(
    sandbox: SandboxHandle,
    store: SessionStore,
    ctx: JobContext,
    calls: Counter[str],
    concurrency: int,
) -> None:
    # Given 10 recordings the server reports as stored (status 5, and the files a first
    # round stored)
    ids = _recordings(sandbox, store, 10)
    reconcile_many(ctx, ids, concurrency=concurrency)
    assert all(store.get_or_raise(i).files for i in ids)
    calls.clear()
    history = {i: len(store.history(i)) for i in ids}

    # When a batch reconciles them
    outcomes = reconcile_many(ctx, ids, concurrency=concurrency)

    # Then each was queried, read in one round trip per chunk, and nothing was written
    assert [o.session_id for o in outcomes] == ids
    assert all(o.queried and o.status == 5 and not o.changes for o in outcomes)
    assert calls["read_hashes"] == -(-len(ids) // chunk_size(len(ids), concurrency))
    assert calls["get"] == 0
    assert calls["transition"] == calls["note"] == calls["request_stop"] == 0
    assert {i: len(store.history(i)) for i in ids} == history


def test_a_change_is_decided_on_the_session_read_again_not_on_the_snapshot(
    sandbox: SandboxHandle, store: SessionStore, ctx: JobContext, alerts: Alerts
) -> None:
    # Given a snapshot of a recording session, read before its stop was requested...
    [session_id] = _recordings(sandbox, store, 1, "fresh-404")
    [snapshot] = store.read_hashes([session_id])
    store.request_stop(session_id)
    # ...and a server that no longer knows the recording (404)
    sid = _sid(store, session_id)
    sandbox.set_status(sid, 8)
    sandbox.advance(3600)

    # When the session is reconciled from the snapshot
    outcome = reconcile_session(ctx, session_id, snapshot=snapshot)

    # Then the 404 is read as "stopped" (its stop was requested), not "lost"
    assert outcome.queried
    stopped = store.get_or_raise(session_id)
    assert stopped.phase == Phase.STOPPED
    assert stopped.desired == Desired.STOPPED
    assert alerts == []


def test_a_session_finished_since_the_snapshot_is_left_alone(
    sandbox: SandboxHandle, store: SessionStore, ctx: JobContext, alerts: Alerts, sent: Sent
) -> None:
    # Given a snapshot of a recording session, which a stop job then stops...
    [session_id] = _recordings(sandbox, store, 1, "fresh-finished")
    [snapshot] = store.read_hashes([session_id])
    store.transition(session_id, to=Phase.STOPPED, why="test: a stop job confirmed it")
    # ...while the server (by then) reports an abnormal exit
    sandbox.set_status(_sid(store, session_id), 20)

    # When the session is reconciled from the snapshot
    outcome = reconcile_session(ctx, session_id, snapshot=snapshot)

    # Then nothing is changed, queued or alerted: the session read again is finished
    assert outcome.queried and outcome.status == 20 and outcome.changes == []
    assert store.get_or_raise(session_id).phase == Phase.STOPPED
    assert alerts == [] and sent == []


def test_status_20_through_a_round_fails_and_alerts_from_the_session_read_again(
    sandbox: SandboxHandle,
    store: SessionStore,
    ctx: JobContext,
    alerts: Alerts,
    calls: Counter[str],
) -> None:
    # Given three recordings whose files a first round stored, one of which exits abnormally
    ids = _recordings(sandbox, store, 3, "round-20")
    run_once(ctx, concurrency=2)
    calls.clear()
    sandbox.set_status(_sid(store, ids[1]), 20)

    outcomes, _ = run_once(ctx, concurrency=2)

    by_id = {o.session_id: o for o in outcomes}
    assert store.get_or_raise(ids[1]).phase == Phase.FAILED
    assert [a[:2] for a in alerts] == [("abnormal_exit", ids[1])]
    assert by_id[ids[1]].changes and not by_id[ids[0]].changes and not by_id[ids[2]].changes
    assert calls["get"] == 1, "only the session with something to do is read again"


def test_max_duration_through_a_round_queues_the_stop(
    sandbox: SandboxHandle, store: SessionStore, ctx: JobContext, sent: Sent
) -> None:
    # Given a recording whose max duration has passed (and one whose has not)
    ids = _recordings(sandbox, store, 2, "round-max")
    ctx.settings = ctx.settings.model_copy(update={"max_duration": 1})
    store.redis.hset(store.keys.session(ids[0]), "started_at", repr(ctx.clock() - 5))
    store.redis.hset(store.keys.session(ids[1]), "started_at", repr(ctx.clock() + 60))

    outcomes, _ = run_once(ctx, concurrency=2)

    by_id = {o.session_id: o for o in outcomes}
    assert any("max duration" in c for c in by_id[ids[0]].changes)
    assert by_id[ids[1]].changes == []
    assert sent == [("krtc.stop", [ids[0]])]
    assert store.get_or_raise(ids[0]).desired == Desired.STOPPED
    assert store.get_or_raise(ids[1]).desired == Desired.RECORDING


def test_a_value_that_is_not_utf8_is_skipped_alone_and_the_chunk_is_read_one_by_one(
    sandbox: SandboxHandle,
    store: SessionStore,
    ctx: JobContext,
    alerts: Alerts,
    calls: Counter[str],
    redis_url: str,
) -> None:
    # Given three recordings, one of which holds bytes that are not UTF-8
    ids = _recordings(sandbox, store, 3, "not-utf8")
    sandbox.set_status(_sid(store, ids[2]), 8)
    raw = Redis.from_url(redis_url)
    try:
        raw.hset(store.keys.session(ids[1]), "cname", b"\xff\xfe-not-text")
    finally:
        raw.close()

    # When one thread reconciles them (one chunk)
    outcomes = reconcile_many(ctx, ids, concurrency=1)

    # Then the bad one is skipped with the corrupt_session alert, and the others reconciled
    assert [o.session_id for o in outcomes] == ids
    assert outcomes[1].skipped and "UTF-8" in outcomes[1].skipped
    assert outcomes[0].queried and outcomes[0].status == 5
    assert outcomes[2].queried and store.get_or_raise(ids[2]).phase == Phase.STOPPED
    assert [a[:2] for a in alerts] == [("corrupt_session", ids[1])]
    assert calls["read_hashes"] >= 1 and calls["get"] >= 3


def test_a_batch_past_its_deadline_reads_nothing_more(
    sandbox: SandboxHandle, store: SessionStore, ctx: JobContext, calls: Counter[str]
) -> None:
    ids = _recordings(sandbox, store, 6, "deadline")

    outcomes = reconcile_many(ctx, ids, concurrency=1, deadline=time.monotonic() - 1)

    # The first session is always begun; the rest are handed on without being read.
    assert outcomes[0].queried and not outcomes[0].deferred
    assert all(o.deferred for o in outcomes[1:])
    assert chunk_size(len(ids), 1) < len(ids)
    assert calls["read_hashes"] == 1, "the first chunk only"
    assert calls["get"] <= 1, "the first session (its file list to store) at most"


def test_a_chunk_that_cannot_be_read_at_once_is_read_one_by_one(
    sandbox: SandboxHandle,
    store: SessionStore,
    ctx: JobContext,
    calls: Counter[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given recordings, and a batch read that fails in a way nothing expects
    ids = _recordings(sandbox, store, 4, "fallback")

    def broken(_ids: list[str]) -> list[Any]:
        raise RuntimeError("a bug in the batch read")

    monkeypatch.setattr(ctx.store, "read_hashes", broken)

    # When a batch reconciles them
    outcomes = reconcile_many(ctx, ids, concurrency=2)

    # Then every session is still reconciled, each read on its own
    assert [o.session_id for o in outcomes] == ids
    assert all(o.queried and o.status == 5 and o.error is None for o in outcomes)
    assert calls["get"] >= len(ids)
