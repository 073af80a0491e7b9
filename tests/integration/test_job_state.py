"""What jobs share about their runs, against the real Redis: per-run budgets
(orchestrator/state/runs.py), (session, action) leases (leases.py) and update sequence numbers
(sequences.py)."""

from __future__ import annotations

import threading

import pytest
from redis import Redis

from orchestrator.krtc.enums import Mode
from orchestrator.state import (
    Phase,
    RunBudgets,
    SessionLeases,
    SessionNotFoundError,
    SessionStore,
    UpdateSequences,
)

pytestmark = pytest.mark.integration


def _session(store: SessionStore, cname: str = "room") -> str:
    return store.create(app_id="app", cname=cname, uid="1", mode=Mode.MIX).session.id


def test_each_run_counts_its_own_attempts_and_forgets_them(store: SessionStore) -> None:
    runs = RunBudgets(store.redis, keys=store.keys)
    assert [runs.count_attempt("task-a") for _ in range(3)] == [1, 2, 3]
    assert runs.count_attempt("task-b") == 1, "another run starts from its own budget"
    assert 0 < int(store.redis.ttl(store.keys.run("task-a"))) <= runs.ttl_s
    runs.forget("task-a")
    assert runs.attempts("task-a") == 0 and runs.attempts("task-b") == 1


def test_a_wait_is_measured_from_the_runs_first_look(store: SessionStore) -> None:
    runs = RunBudgets(store.redis, keys=store.keys)
    assert runs.waiting_since("task-a", "sid", 100.0) == 100.0
    assert runs.waiting_since("task-a", "sid", 130.0) == 100.0, "kept from the first look"
    assert runs.waiting_since("task-a", "confirm", 130.0) == 130.0, "each wait has its own"
    assert runs.waiting_since("task-b", "sid", 131.0) == 131.0


def test_leases_are_per_session_and_action_and_never_freed_by_another_token(
    store: SessionStore,
) -> None:
    leases = SessionLeases(store.redis, keys=store.keys)
    assert leases.take("s1", "update-layout", "t1", 5.0)
    assert not leases.take("s1", "update-layout", "t2", 5.0)
    assert leases.take("s1", "update", "t2", 5.0), "another action has its own lease"
    assert leases.take("s1", "update-layout", "t1", 5.0), "the holder renews it"
    assert not leases.release("s1", "update-layout", "t2")
    assert leases.release("s1", "update-layout", "t1")
    assert leases.take("s1", "update-layout", "t2", 5.0)
    # The start's lease keeps the key name it had before leases were per action.
    assert store.keys.lease("s1", "start") == f"{store.keys.prefix}:session:s1:start-lease"


def test_a_lease_expires_on_redis_clock(store: SessionStore) -> None:
    leases = SessionLeases(store.redis, keys=store.keys)
    assert leases.take("s1", "update", "t1", 0.05)
    threading.Event().wait(0.15)
    assert leases.take("s1", "update", "t2", 5.0)


def test_updates_are_numbered_per_session_and_action(store: SessionStore) -> None:
    sequences = UpdateSequences(store.redis, keys=store.keys)
    first, second = _session(store, "a"), _session(store, "b")
    assert [sequences.next(first, "update-layout").sequence for _ in range(3)] == [1, 2, 3]
    assert sequences.next(first, "update").sequence == 1
    assert sequences.next(second, "update-layout").sequence == 1
    assert store.get_or_raise(first).attempts == {}, "the numbers are no attempt counters"


def test_concurrent_numbering_gives_every_number_once(store: SessionStore) -> None:
    sequences = UpdateSequences(store.redis, keys=store.keys)
    session_id = _session(store)
    numbers: list[int] = []

    def number() -> None:
        numbers.extend(sequences.next(session_id, "update").sequence for _ in range(25))

    threads = [threading.Thread(target=number) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(numbers) == list(range(1, 101))


def test_a_finished_or_stopping_session_takes_no_number(store: SessionStore) -> None:
    sequences = UpdateSequences(store.redis, keys=store.keys)
    session_id = _session(store)
    store.transition(session_id, to=Phase.STARTING)
    store.adopt_sid(session_id, "sid-1", why="test")
    store.transition(session_id, to=Phase.STOPPING)
    refused = sequences.next(session_id, "update")
    assert refused.is_refused and refused.phase == Phase.STOPPING
    store.transition(session_id, to=Phase.STOPPED)
    assert sequences.next(session_id, "update").is_refused
    with pytest.raises(SessionNotFoundError):
        sequences.next("01HXXXXXXXXXXXXXXXXXXXXXXX", "update")


def test_the_applied_number_is_never_lowered(store: SessionStore, redis_client: Redis) -> None:
    sequences = UpdateSequences(store.redis, keys=store.keys)
    session_id = _session(store)
    assert sequences.applied(session_id, "update-layout") == 0
    assert sequences.record_applied(session_id, "update-layout", 5)
    assert not sequences.record_applied(session_id, "update-layout", 3), "an older one after"
    assert not sequences.record_applied(session_id, "update-layout", 5)
    assert sequences.applied(session_id, "update-layout") == 5
    assert sequences.applied(session_id, "update") == 0
    missing = "01HXXXXXXXXXXXXXXXXXXXXXXX"
    assert not sequences.record_applied(missing, "update", 1)
    assert not redis_client.exists(store.keys.session(missing)), "no stray hash"
    # The session still decodes: the codec ignores the counters.
    assert store.get_or_raise(session_id).id == session_id
