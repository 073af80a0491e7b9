"""The session store against the real Redis (orchestrator/state/store.py and its scripts)."""

from __future__ import annotations

import multiprocessing
import threading
from collections.abc import Callable
from typing import Any, cast

import pytest
from redis import Redis

from orchestrator.krtc.enums import Action, Mode
from orchestrator.state import (
    UNSET,
    CorruptSessionError,
    Desired,
    IdempotencyKeyReusedError,
    Phase,
    Session,
    SessionNotFoundError,
    SessionStore,
    Source,
    StateBackendError,
    StateUnavailableError,
    StopOutcome,
    StopRequestResult,
    TransitionResult,
)
from orchestrator.state.ids import is_session_id
from tests.integration.state_fixture import FakeClock, delete_prefix

pytestmark = pytest.mark.integration

MakeStore = Callable[..., SessionStore]
IDENTITY: dict[str, Any] = {"app_id": "lee1234", "cname": "room:1", "uid": "recorder"}
REQUEST = {"appId": "lee1234", "cname": "room:1", "uid": "recorder", "mode": "mix"}


def create(store: SessionStore, **overrides: Any) -> Session:
    """Create a session (of :data:`IDENTITY` unless told otherwise) and return it."""
    args: dict[str, Any] = {**IDENTITY, "mode": Mode.MIX, "request": REQUEST, **overrides}
    session, created = store.create(**args)
    assert created
    return session


def to_phase(store: SessionStore, session_id: str, *phases: Phase) -> Session:
    """Walk a session through ``phases`` (each transition must apply)."""
    result = None
    for phase in phases:
        result = store.transition(session_id, to=phase, why="test")
        assert result.applied
    assert result is not None
    return result.session


def ttl(client: Redis, key: str) -> int:
    """Seconds before ``key`` expires (-1: never, -2: no such key)."""
    return int(cast(int, client.ttl(key)))


def raw_hash(client: Redis, key: str) -> dict[str, str]:
    return cast(dict[str, str], client.hgetall(key))


def stored_keys(client: Redis, store: SessionStore) -> set[str]:
    return {str(k) for k in client.scan_iter(match=store.keys.pattern())}


# -- create --------------------------------------------------------------------------------------


def test_create_stores_a_pending_session_with_its_indexes(
    make_store: MakeStore, redis_client: Redis
) -> None:
    clock = FakeClock(1_700_000_123.25)
    store = make_store(clock=clock)

    session, created = store.create(
        **IDENTITY, mode=Mode.MIX, request=REQUEST, max_duration_s=600, why="web request"
    )

    assert created
    assert is_session_id(session.id)
    assert session.phase is Phase.PENDING and session.desired is Desired.RECORDING
    assert session.created_at == session.updated_at == clock.now
    assert store.get(session.id) == session
    keys = store.keys
    assert redis_client.get(keys.identity("lee1234", "room:1", "recorder")) == session.id
    assert redis_client.smembers(keys.active()) == {session.id}
    assert redis_client.zscore(keys.sessions(), session.id) == clock.now
    [entry] = store.history(session.id)
    assert entry.what == "created (phase pending, desired recording)"
    assert (entry.at, entry.why, entry.source) == (clock.now, "web request", Source.PRODUCER)


def test_the_stored_session_keeps_every_given_field(store: SessionStore) -> None:
    session = create(
        store,
        mode=Mode.INDIVIDUAL,
        idempotency_key="req-1",
        max_duration_s=7200,
        restarted_from="01HAAAAAAAAAAAAAAAAAAAAAAA",
    )

    stored = store.get_or_raise(session.id)

    assert stored.mode is Mode.INDIVIDUAL
    assert stored.request == REQUEST
    assert stored.idempotency_key == "req-1"
    assert stored.max_duration_s == 7200
    assert stored.restarted_from == "01HAAAAAAAAAAAAAAAAAAAAAAA"
    assert stored.sid is None and stored.attempts == {} and stored.files == []


def test_a_second_create_of_an_unfinished_identity_returns_it_and_writes_nothing(
    store: SessionStore, redis_client: Redis
) -> None:
    first = create(store)
    keys_before = stored_keys(redis_client, store)

    again, created = store.create(**IDENTITY, mode=Mode.INDIVIDUAL, request={"other": 1})

    assert not created
    assert again.id == first.id
    assert again.mode is Mode.MIX, "the identity is appId/cname/uid: the mode does not count"
    assert stored_keys(redis_client, store) == keys_before
    assert redis_client.zcard(store.keys.sessions()) == 1
    assert len(store.history(first.id)) == 1


def test_another_uid_or_channel_is_another_identity(store: SessionStore) -> None:
    first = create(store)

    other_uid = create(store, uid="recorder-2")
    other_channel = create(store, cname="room:2")
    # "room" + ":1" must not be read as channel "room" and uid "1:recorder".
    split = create(store, cname="room", uid="1:recorder")

    assert len({first.id, other_uid.id, other_channel.id, split.id}) == 4
    assert store.find_active(**IDENTITY) == first


@pytest.mark.parametrize(
    "bad",
    [
        {"app_id": ""},
        {"cname": ""},
        {"uid": ""},
        {"max_duration_s": 0},
        {"idempotency_key": ""},
    ],
)
def test_invalid_arguments_are_refused_before_anything_is_written(
    store: SessionStore, redis_client: Redis, bad: dict[str, Any]
) -> None:
    with pytest.raises(ValueError):
        store.create(**{**IDENTITY, "mode": Mode.MIX, **bad})

    assert stored_keys(redis_client, store) == set()


# -- idempotency keys ----------------------------------------------------------------------------


def test_the_same_idempotency_key_returns_the_same_session(
    store: SessionStore, redis_client: Redis
) -> None:
    first = create(store, idempotency_key="web-42")

    again, created = store.create(**IDENTITY, mode=Mode.MIX, idempotency_key="web-42")

    assert not created
    assert again == first
    assert 0 < ttl(redis_client, store.keys.idempotency("web-42")) <= store.idempotency_ttl_s


def test_the_same_idempotency_key_returns_the_session_even_after_it_finished(
    store: SessionStore,
) -> None:
    # Given a session created with a key, which then ran and stopped
    first = create(store, idempotency_key="web-42")
    to_phase(store, first.id, Phase.STARTING, Phase.RECORDING, Phase.STOPPING, Phase.STOPPED)

    # When the web request is retried with the same key
    again, created = store.create(**IDENTITY, mode=Mode.MIX, idempotency_key="web-42")

    # Then the finished session comes back and nothing new is started
    assert not created
    assert again.id == first.id
    assert again.phase is Phase.STOPPED
    # ...while a start without the key is a new recording
    assert create(store).id != first.id


@pytest.mark.parametrize(
    "other",
    [
        {"cname": "room:2"},
        {"uid": "someone-else"},
        {"app_id": "other-app"},
        {"mode": Mode.INDIVIDUAL},
    ],
)
def test_an_idempotency_key_reused_for_another_recording_is_refused(
    store: SessionStore, redis_client: Redis, other: dict[str, Any]
) -> None:
    first = create(store, idempotency_key="web-42")

    with pytest.raises(IdempotencyKeyReusedError) as info:
        store.create(**{**IDENTITY, "mode": Mode.MIX, **other}, idempotency_key="web-42")

    assert info.value.idempotency_key == "web-42"
    assert info.value.session_id == first.id
    assert redis_client.zcard(store.keys.sessions()) == 1


def test_a_key_given_while_the_identity_is_busy_returns_the_busy_session(
    store: SessionStore, redis_client: Redis
) -> None:
    first = create(store)

    again, created = store.create(**IDENTITY, mode=Mode.MIX, idempotency_key="late")

    assert (again.id, created) == (first.id, False)
    assert redis_client.exists(store.keys.idempotency("late")) == 0


# -- concurrency ---------------------------------------------------------------------------------


def test_twenty_threads_creating_one_identity_create_exactly_one_session(
    store: SessionStore, redis_client: Redis
) -> None:
    barrier = threading.Barrier(20)
    results: list[tuple[str, bool]] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def start(i: int) -> None:
        try:
            barrier.wait(timeout=10)
            session, created = store.create(**IDENTITY, mode=Mode.MIX, why=f"thread {i}")
            with lock:
                results.append((session.id, created))
        except BaseException as exc:  # reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=start, args=(i,)) for i in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)

    assert errors == []
    assert len(results) == 20
    assert sum(created for _, created in results) == 1
    assert len({session_id for session_id, _ in results}) == 1
    assert redis_client.zcard(store.keys.sessions()) == 1
    assert redis_client.scard(store.keys.active()) == 1


def test_twenty_threads_retrying_one_idempotency_key_create_exactly_one_session(
    store: SessionStore,
) -> None:
    barrier = threading.Barrier(20)
    results: list[tuple[str, bool]] = []

    def start() -> None:
        barrier.wait(timeout=10)
        session, created = store.create(**IDENTITY, mode=Mode.MIX, idempotency_key="retry")
        results.append((session.id, created))

    threads = [threading.Thread(target=start) for _ in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)

    assert len(results) == 20
    assert sum(created for _, created in results) == 1
    assert len({session_id for session_id, _ in results}) == 1


def _create_in_process(url: str, prefix: str, barrier: Any, out: Any) -> None:
    store = SessionStore.from_url(url, prefix=prefix)
    barrier.wait(timeout=30)
    session, created = store.create(**IDENTITY, mode=Mode.MIX, source=Source.PRODUCER)
    out.put((session.id, created))


def test_four_processes_creating_one_identity_create_exactly_one_session(
    redis_url: str, key_prefix: str, store: SessionStore, redis_client: Redis
) -> None:
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(4)
    out = ctx.Queue()
    processes = [
        ctx.Process(target=_create_in_process, args=(redis_url, key_prefix, barrier, out))
        for _ in range(4)
    ]
    for p in processes:
        p.start()
    results = [out.get(timeout=60) for _ in processes]
    for p in processes:
        p.join(timeout=30)

    assert [p.exitcode for p in processes] == [0, 0, 0, 0]
    assert sum(created for _, created in results) == 1
    assert len({session_id for session_id, _ in results}) == 1
    assert redis_client.zcard(store.keys.sessions()) == 1


# -- transitions ---------------------------------------------------------------------------------


def test_a_transition_moves_the_phase_and_records_why(make_store: MakeStore) -> None:
    clock = FakeClock()
    store = make_store(clock=clock)
    session = create(store)
    now = clock.advance(2.5)

    result = store.transition(
        session.id,
        to=Phase.STARTING,
        allowed_from=[Phase.PENDING],
        why="start task picked up",
        source=Source.TASK,
    )

    assert result.applied and result.phase_changed
    assert result.found is Phase.PENDING
    assert result.session.phase is Phase.STARTING
    assert result.session.updated_at == now
    assert store.get(session.id) == result.session
    entry = store.history(session.id)[-1]
    assert entry.what == "phase pending -> starting"
    assert (entry.at, entry.why, entry.source) == (now, "start task picked up", Source.TASK)


def test_a_transition_from_a_phase_not_allowed_is_refused_and_writes_nothing(
    make_store: MakeStore, redis_client: Redis
) -> None:
    clock = FakeClock()
    store = make_store(clock=clock)
    session = create(store)
    raw_before = raw_hash(redis_client, store.keys.session(session.id))
    clock.advance(10)

    result = store.transition(
        session.id,
        to=Phase.RECORDING,
        allowed_from=[Phase.STARTING, Phase.ORPHANED],
        sid="sid-1",
        last_status=5,
        why="start answered",
    )

    assert not result.applied and not result.phase_changed
    assert result.found is Phase.PENDING
    assert result.session.phase is Phase.PENDING
    assert result.session.sid is None
    assert raw_hash(redis_client, store.keys.session(session.id)) == raw_before
    assert len(store.history(session.id)) == 1


def test_allowed_from_none_means_any_phase_and_an_empty_list_is_a_mistake(
    store: SessionStore,
) -> None:
    session = create(store)

    with pytest.raises(ValueError, match="allowed_from is empty"):
        store.transition(session.id, to=Phase.STARTING, allowed_from=[])
    assert store.transition(session.id, to=Phase.ORPHANED, allowed_from=None).applied


@pytest.mark.parametrize("final", [Phase.STOPPED, Phase.FAILED])
def test_a_final_phase_is_never_left(store: SessionStore, final: Phase) -> None:
    session = create(store)
    to_phase(store, session.id, Phase.STARTING, final)
    history_before = store.history(session.id)

    for phase in Phase:
        if phase is final:
            continue
        result = store.transition(session.id, to=phase, sid="late-sid", why="late answer")
        assert not result.applied, phase
        assert result.found is final
        assert result.session.phase is final
        assert result.session.sid is None

    assert store.history(session.id) == history_before


def test_fields_of_a_finished_session_can_still_be_updated_within_its_retention(
    make_store: MakeStore, redis_client: Redis
) -> None:
    store = make_store(retention_s=500, idempotency_ttl_s=100)
    session = create(store)
    to_phase(store, session.id, Phase.STARTING, Phase.RECORDING, Phase.STOPPING, Phase.STOPPED)
    redis_client.persist(store.keys.history(session.id))

    result = store.transition(
        session.id, files=[{"fileName": "final.m3u8"}], why="stop answer listed the files"
    )

    assert result.applied and not result.phase_changed
    assert result.session.files == [{"fileName": "final.m3u8"}]
    assert store.history(session.id)[-1].what == "set files"
    # The history written after the end expires with the session.
    assert 0 < ttl(redis_client, store.keys.history(session.id)) <= 500


def test_a_transition_to_the_current_phase_is_no_change_of_phase(store: SessionStore) -> None:
    session = create(store)
    to_phase(store, session.id, Phase.STARTING, Phase.RECORDING)

    result = store.transition(session.id, to=Phase.RECORDING, last_status=5, why="poll")

    assert result.applied and not result.phase_changed
    assert result.session.last_status == 5
    assert store.history(session.id)[-1].what == "set last_status"


@pytest.mark.parametrize("final", [Phase.STOPPED, Phase.FAILED])
def test_reaching_a_final_phase_frees_the_identity_and_starts_the_retention(
    make_store: MakeStore, redis_client: Redis, final: Phase
) -> None:
    store = make_store(retention_s=900, idempotency_ttl_s=60)
    session = create(store)
    identity_key = store.keys.identity(*session.identity)
    assert ttl(redis_client, store.keys.session(session.id)) == -1, "no expiry while unfinished"

    to_phase(store, session.id, Phase.STARTING, final)

    assert redis_client.exists(identity_key) == 0
    assert redis_client.sismember(store.keys.active(), session.id) == 0
    assert 890 < ttl(redis_client, store.keys.session(session.id)) <= 900
    assert 890 < ttl(redis_client, store.keys.history(session.id)) <= 900
    assert store.find_active(**IDENTITY) is None
    assert store.active_ids() == []
    successor = create(store)
    assert successor.id != session.id
    assert redis_client.get(identity_key) == successor.id


def test_finishing_a_session_leaves_an_identity_that_names_another_session(
    store: SessionStore, redis_client: Redis
) -> None:
    session = create(store)
    identity_key = store.keys.identity(*session.identity)
    redis_client.set(identity_key, "01HSOMEONEELSEXXXXXXXXXXXX")

    to_phase(store, session.id, Phase.FAILED)

    assert redis_client.get(identity_key) == "01HSOMEONEELSEXXXXXXXXXXXX"


def test_unset_leaves_a_field_and_none_clears_it(store: SessionStore, redis_client: Redis) -> None:
    session = create(store)
    error = {"kind": "server", "status": 500, "code": None, "reason": "boom", "at": 1.5}
    set_result = store.transition(
        session.id,
        to=Phase.STARTING,
        sid="sid-1",
        last_status=4,
        files=[{"fileName": "a.ts"}],
        last_error=error,
        restarted_to="01HNEXTXXXXXXXXXXXXXXXXXXX",
        why="answer",
    )
    assert set_result.session.sid == "sid-1"
    assert set_result.session.last_error == error
    assert store.history(session.id)[-1].what == (
        "phase pending -> starting; set sid, last_status, files, last_error, restarted_to"
    )

    # UNSET (the default) leaves every field alone.
    untouched = store.transition(session.id, sid=UNSET, why="nothing to say")
    assert untouched.session.model_dump(exclude={"updated_at"}) == set_result.session.model_dump(
        exclude={"updated_at"}
    )

    # None clears: the field is removed from the hash.
    cleared = store.transition(session.id, last_error=None, sid=None, why="recovered")
    assert cleared.session.last_error is None and cleared.session.sid is None
    assert cleared.session.last_status == 4
    assert cleared.session.files == [{"fileName": "a.ts"}]
    raw = raw_hash(redis_client, store.keys.session(session.id))
    assert "last_error" not in raw and "sid" not in raw
    assert store.history(session.id)[-1].what == "clear sid, last_error"


def test_desired_can_be_set_through_a_transition(store: SessionStore) -> None:
    session = create(store)

    result = store.transition(session.id, desired=Desired.STOPPED, source=Source.OPERATOR)

    assert result.session.desired is Desired.STOPPED
    assert store.history(session.id)[-1].source is Source.OPERATOR


def test_a_transition_without_a_record_writes_no_history(store: SessionStore) -> None:
    session = create(store)

    result = store.transition(session.id, to=Phase.STARTING, record=False)

    assert result.applied and result.session.phase is Phase.STARTING
    assert len(store.history(session.id)) == 1


def test_changing_a_missing_session_raises_and_creates_no_key(
    store: SessionStore, redis_client: Redis
) -> None:
    missing = "01HMISSINGXXXXXXXXXXXXXXXX"

    with pytest.raises(SessionNotFoundError) as info:
        store.transition(missing, to=Phase.STARTING)
    assert info.value.session_id == missing
    with pytest.raises(SessionNotFoundError):
        store.note(missing, "x")
    with pytest.raises(SessionNotFoundError):
        store.request_stop(missing)
    with pytest.raises(SessionNotFoundError):
        store.record_attempt(missing, Action.START)
    with pytest.raises(SessionNotFoundError):
        store.history(missing)
    with pytest.raises(SessionNotFoundError):
        store.get_or_raise(missing)

    assert store.get(missing) is None
    assert stored_keys(redis_client, store) == set()


# -- history -------------------------------------------------------------------------------------


def test_history_is_bounded_ordered_and_keeps_the_newest(make_store: MakeStore) -> None:
    clock = FakeClock()
    store = make_store(clock=clock, history_limit=5)
    session = create(store)

    for i in range(9):
        clock.advance(1)
        store.note(session.id, f"note {i}", why=f"why {i}", source=Source.POLL)

    history = store.history(session.id)
    assert [e.what for e in history] == [f"note {i}" for i in range(4, 9)]
    assert [e.at for e in history] == sorted(e.at for e in history)
    assert all(e.source is Source.POLL for e in history)
    assert history[-1].why == "why 8"
    assert [e.what for e in store.history(session.id, limit=2)] == ["note 7", "note 8"]
    assert store.get_or_raise(session.id, with_history=True).history == history


def test_every_kind_of_change_appends_to_the_history_with_its_source(
    store: SessionStore,
) -> None:
    session = create(store)
    store.transition(session.id, to=Phase.STARTING, source=Source.TASK, why="queued")
    store.transition(session.id, to=Phase.RECORDING, sid="sid-9", source=Source.TASK)
    store.note(session.id, "status 5 seen", source=Source.POLL)
    store.request_stop(session.id, why="user clicked stop", source=Source.OPERATOR)
    store.transition(session.id, to=Phase.STOPPING, source=Source.TASK)
    store.transition(session.id, to=Phase.STOPPED, source=Source.POLL, why="exited")

    history = store.history(session.id)

    assert [(e.what, e.source) for e in history] == [
        ("created (phase pending, desired recording)", Source.PRODUCER),
        ("phase pending -> starting", Source.TASK),
        ("phase starting -> recording; set sid", Source.TASK),
        ("status 5 seen", Source.POLL),
        ("desired recording -> stopped", Source.OPERATOR),
        ("phase recording -> stopping", Source.TASK),
        ("phase stopping -> stopped", Source.POLL),
    ]
    assert history[4].why == "user clicked stop"


def test_get_with_history_reads_both(store: SessionStore) -> None:
    session = create(store)
    store.note(session.id, "hello")

    with_history = store.get_or_raise(session.id, with_history=True)

    assert [e.what for e in with_history.history][-1] == "hello"
    assert store.get_or_raise(session.id).history == []


def test_non_ascii_identities_and_reasons_survive_the_scripts(store: SessionStore) -> None:
    session = create(store, cname="salle-é:1", uid="录制")
    store.transition(session.id, to=Phase.STARTING, why="démarrage ✓", last_error={"r": "ñ"})
    store.request_stop(session.id, why="arrêt demandé")

    stored = store.get_or_raise(session.id, with_history=True)

    assert store.find_active("lee1234", "salle-é:1", "录制") == stored.model_copy(
        update={"history": []}
    )
    assert stored.last_error == {"r": "ñ"}
    assert [e.why for e in stored.history[1:]] == ["démarrage ✓", "arrêt demandé"]


# -- stop requests -------------------------------------------------------------------------------


def test_a_stop_before_the_start_was_sent_cancels_the_session(
    store: SessionStore, redis_client: Redis
) -> None:
    session = create(store)

    result = store.request_stop(session.id, why="user left")

    assert result.outcome is StopOutcome.CANCELLED
    assert result.found is Phase.PENDING
    assert result.session.phase is Phase.STOPPED
    assert result.session.desired is Desired.STOPPED
    assert result.session.is_finished
    assert not result.needs_stop_call
    assert redis_client.exists(store.keys.identity(*session.identity)) == 0
    assert store.active_ids() == []
    assert 0 < ttl(redis_client, store.keys.session(session.id)) <= store.retention_s
    entry = store.history(session.id)[-1]
    assert "phase pending -> stopped" in entry.what and "cancelled" in entry.what
    assert (entry.why, entry.source) == ("user left", Source.PRODUCER)
    assert create(store).id != session.id


@pytest.mark.parametrize(
    "path",
    [
        [Phase.STARTING],
        [Phase.STARTING, Phase.RECORDING],
        [Phase.STARTING, Phase.ORPHANED],
        [Phase.STARTING, Phase.RECORDING, Phase.STOPPING],
    ],
)
def test_a_stop_of_a_started_session_is_requested_once(
    store: SessionStore, path: list[Phase]
) -> None:
    session = create(store)
    to_phase(store, session.id, *path)
    store.transition(session.id, sid="sid-7")
    length = len(store.history(session.id))

    first = store.request_stop(session.id)
    second = store.request_stop(session.id)

    assert first.outcome is StopOutcome.REQUESTED
    assert first.found is path[-1]
    assert first.session.phase is path[-1], "the phase moves when the stop call is made"
    assert first.session.desired is Desired.STOPPED
    assert first.session.sid == "sid-7"
    assert first.needs_stop_call
    assert second.outcome is StopOutcome.ALREADY_REQUESTED
    assert second.needs_stop_call, "a repeated stop must not drop the stop call (D13)"
    assert len(store.history(session.id)) == length + 1
    assert store.find_active(**IDENTITY) is not None


@pytest.mark.parametrize("final", [Phase.STOPPED, Phase.FAILED])
def test_a_stop_of_a_finished_session_only_records_the_wish_so_no_restart_follows(
    store: SessionStore, redis_client: Redis, final: Phase
) -> None:
    session = create(store)
    to_phase(store, session.id, Phase.STARTING, final)
    raw_before = raw_hash(redis_client, store.keys.session(session.id))

    result = store.request_stop(session.id)
    again = store.request_stop(session.id)

    assert result.outcome is StopOutcome.FINISHED and again.outcome is StopOutcome.FINISHED
    assert result.found is final
    assert not result.needs_stop_call
    raw_after = raw_hash(redis_client, store.keys.session(session.id))
    changed = {k for k in raw_after if raw_after.get(k) != raw_before.get(k)}
    assert changed == {"desired", "updated_at"}
    assert raw_after["phase"] == final.value and raw_after["desired"] == "stopped"


def race_start_and_stop(
    store: SessionStore, session_id: str
) -> tuple[TransitionResult, StopRequestResult]:
    """Run the start task's first transition and a stop request at the same moment."""
    barrier = threading.Barrier(2)
    outcomes: dict[str, Any] = {}

    def start_task() -> None:
        barrier.wait(timeout=10)
        outcomes["start"] = store.transition(
            session_id, to=Phase.STARTING, allowed_from=[Phase.PENDING]
        )

    def stop() -> None:
        barrier.wait(timeout=10)
        outcomes["stop"] = store.request_stop(session_id)

    threads = [threading.Thread(target=start_task), threading.Thread(target=stop)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    return outcomes["start"], outcomes["stop"]


def test_a_stop_racing_the_start_task_never_leaves_a_recording_without_a_stop(
    store: SessionStore,
) -> None:
    for round_ in range(25):
        # Given a pending session whose start task and a stop request arrive together
        session = create(store, cname=f"race-{round_}")

        started, stopped = race_start_and_stop(store, session.id)

        # Then either the start was cancelled before it was sent, or a stop call is owed
        if stopped.outcome is StopOutcome.CANCELLED:
            assert not started.applied
            assert store.get_or_raise(session.id).phase is Phase.STOPPED
        else:
            assert started.applied
            assert stopped.outcome is StopOutcome.REQUESTED
            assert stopped.needs_stop_call
            assert store.get_or_raise(session.id).desired is Desired.STOPPED


# -- attempts ------------------------------------------------------------------------------------


def test_attempts_are_counted_per_action(make_store: MakeStore) -> None:
    clock = FakeClock()
    store = make_store(clock=clock)
    session = create(store)

    counts = [store.record_attempt(session.id, Action.START) for _ in range(3)]
    clock.advance(4)
    stop_count = store.record_attempt(session.id, "CloudRecordingStop")
    start_count = store.record_attempt(session.id, "CloudRecordingStart")

    assert counts == [1, 2, 3]
    assert (stop_count, start_count) == (1, 4)
    stored = store.get_or_raise(session.id)
    assert stored.attempts == {"CloudRecordingStart": 4, "CloudRecordingStop": 1}
    assert stored.updated_at == clock.now


def test_concurrent_attempts_are_all_counted(store: SessionStore) -> None:
    session = create(store)

    threads = [
        threading.Thread(
            target=lambda: [store.record_attempt(session.id, Action.STOP) for _ in range(10)]
        )
        for _ in range(8)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)

    assert store.get_or_raise(session.id).attempts == {"CloudRecordingStop": 80}


# -- listing -------------------------------------------------------------------------------------


def make_sessions(store: SessionStore, clock: FakeClock, count: int) -> list[Session]:
    sessions = []
    for i in range(count):
        clock.advance(1)
        sessions.append(create(store, cname=f"room-{i}"))
    return sessions


def test_list_is_newest_first_and_limited(make_store: MakeStore) -> None:
    clock = FakeClock()
    store = make_store(clock=clock)
    sessions = make_sessions(store, clock, 5)
    ids = [s.id for s in sessions]

    assert [s.id for s in store.list()] == ids[::-1]
    assert [s.id for s in store.list(limit=2)] == ids[:2:-1]
    with pytest.raises(ValueError):
        store.list(limit=0)


def test_active_listings_leave_out_finished_sessions(make_store: MakeStore) -> None:
    clock = FakeClock()
    store = make_store(clock=clock)
    sessions = make_sessions(store, clock, 4)
    ids = [s.id for s in sessions]
    store.request_stop(ids[1])

    assert store.active_ids() == [ids[0], ids[2], ids[3]], "oldest first"
    assert [s.id for s in store.list(active_only=True)] == [ids[3], ids[2], ids[0]]
    assert [s.id for s in store.list(active_only=True, limit=1)] == [ids[3]]
    assert [s.id for s in store.list()] == ids[::-1]


def test_list_skips_and_prunes_sessions_that_expired(
    make_store: MakeStore, redis_client: Redis
) -> None:
    clock = FakeClock()
    store = make_store(clock=clock)
    ids = [s.id for s in make_sessions(store, clock, 3)]
    redis_client.delete(store.keys.session(ids[1]))

    assert [s.id for s in store.list()] == [ids[2], ids[0]]
    assert redis_client.zscore(store.keys.sessions(), ids[1]) is None
    assert [s.id for s in store.list(active_only=True)] == [ids[2], ids[0]]
    assert redis_client.sismember(store.keys.active(), ids[1]) == 0


@pytest.mark.parametrize("active_only", [False, True])
def test_a_pruned_session_does_not_hide_the_next_one_from_a_limited_list(
    make_store: MakeStore, redis_client: Redis, active_only: bool
) -> None:
    # Given five sessions of which the second newest has expired
    clock = FakeClock()
    store = make_store(clock=clock)
    ids = [s.id for s in make_sessions(store, clock, 5)]
    redis_client.delete(store.keys.session(ids[3]))

    # When the two newest are listed
    listed = [s.id for s in store.list(limit=2, active_only=active_only)]

    # Then the gap is filled by the next newest, not by one further down
    assert listed == [ids[4], ids[2]]


def test_a_corrupt_session_is_reported_not_guessed(
    store: SessionStore, redis_client: Redis
) -> None:
    session = create(store)
    redis_client.hset(store.keys.session(session.id), "phase", "dancing")

    with pytest.raises(CorruptSessionError) as info:
        store.get(session.id)
    assert info.value.session_id == session.id
    with pytest.raises(CorruptSessionError):
        store.list()


# -- lost keys -----------------------------------------------------------------------------------


def test_a_stale_identity_is_released_on_the_next_create(
    store: SessionStore, redis_client: Redis
) -> None:
    # Given a session whose hash was lost (deleted by hand, or evicted)
    lost = create(store)
    redis_client.delete(store.keys.session(lost.id))

    # When the identity is started again
    session, created = store.create(**IDENTITY, mode=Mode.MIX)

    # Then a new session takes the identity
    assert created
    assert session.id != lost.id
    assert redis_client.get(store.keys.identity(*session.identity)) == session.id
    assert store.find_active(**IDENTITY) == session


def test_a_stale_idempotency_key_is_released_on_the_next_create(
    store: SessionStore, redis_client: Redis
) -> None:
    lost = create(store, idempotency_key="web-1")
    redis_client.delete(store.keys.session(lost.id))

    session, created = store.create(**IDENTITY, mode=Mode.MIX, idempotency_key="web-1")

    assert created and session.id != lost.id
    assert redis_client.get(store.keys.idempotency("web-1")) == session.id
    again, created_again = store.create(**IDENTITY, mode=Mode.MIX, idempotency_key="web-1")
    assert (again.id, created_again) == (session.id, False)


def test_find_active_ignores_an_identity_naming_a_lost_session(
    store: SessionStore, redis_client: Redis
) -> None:
    lost = create(store)
    redis_client.delete(store.keys.session(lost.id))

    assert store.find_active(**IDENTITY) is None


# -- the backend ---------------------------------------------------------------------------------


def test_an_unreachable_redis_is_state_unavailable_without_the_password() -> None:
    store = SessionStore.from_url("redis://:pa55-w0rd-xyz@127.0.0.1:1/0", prefix="unreachable")

    calls: list[Callable[[], object]] = [
        store.ping,
        lambda: store.create(**IDENTITY, mode=Mode.MIX),
        lambda: store.get("01HXXXXXXXXXXXXXXXXXXXXXXX"),
        lambda: store.transition("01HXXXXXXXXXXXXXXXXXXXXXXX", to=Phase.STARTING),
        lambda: store.request_stop("01HXXXXXXXXXXXXXXXXXXXXXXX"),
        lambda: store.record_attempt("01HXXXXXXXXXXXXXXXXXXXXXXX", Action.START),
        store.list,
        store.active_ids,
    ]
    for call in calls:
        with pytest.raises(StateUnavailableError) as info:
            call()
        assert "127.0.0.1:1" in str(info.value)
        assert "pa55-w0rd-xyz" not in str(info.value)
        assert "pa55-w0rd-xyz" not in repr(info.value)


def test_a_refusal_by_redis_is_a_backend_error(store: SessionStore, redis_client: Redis) -> None:
    redis_client.set(store.keys.active(), "not a set")

    with pytest.raises(StateBackendError, match="WRONGTYPE"):
        store.create(**IDENTITY, mode=Mode.MIX)


def test_the_store_works_on_a_client_that_does_not_decode_replies(
    redis_url: str, key_prefix: str
) -> None:
    client = Redis.from_url(redis_url)
    try:
        store = SessionStore(client, prefix=key_prefix)
        session = create(store)
        store.transition(session.id, to=Phase.STARTING, sid="sid-b")
        store.record_attempt(session.id, Action.START)
        stop = store.request_stop(session.id)

        assert stop.outcome is StopOutcome.REQUESTED
        assert stop.session.sid == "sid-b"
        assert store.get_or_raise(session.id, with_history=True).attempts == {
            "CloudRecordingStart": 1
        }
        assert [s.id for s in store.list(active_only=True)] == [session.id]
        assert store.active_ids() == [session.id]
        assert store.create(**IDENTITY, mode=Mode.MIX).session.id == session.id
    finally:
        client.close()


def test_store_settings_are_checked() -> None:
    client = Redis()
    try:
        with pytest.raises(ValueError, match="history_limit"):
            SessionStore(client, history_limit=0)
        with pytest.raises(ValueError, match="must not exceed retention_s"):
            SessionStore(client, retention_s=10, idempotency_ttl_s=11)
        with pytest.raises(ValueError, match="invalid Redis key prefix"):
            SessionStore(client, prefix="a b")
    finally:
        client.close()


def test_cleaning_a_prefix_deletes_only_its_keys_even_with_glob_characters(
    redis_client: Redis, key_prefix: str, store: SessionStore
) -> None:
    # Unescaped, the pattern "<p>*:*" of the neighbour would also match every key of "<p>".
    neighbour = SessionStore(redis_client, prefix=key_prefix + "*")
    mine = create(store)
    theirs = create(neighbour)
    try:
        assert delete_prefix(redis_client, key_prefix + "*") == 5
        assert store.get(mine.id) == mine
        assert neighbour.get(theirs.id) is None
        theirs = create(neighbour)
        assert delete_prefix(redis_client, key_prefix) == 5
        assert store.get(mine.id) is None
        assert neighbour.get(theirs.id) == theirs
    finally:
        delete_prefix(redis_client, key_prefix + "*")


def test_a_transition_can_count_an_attempt_only_when_it_applies(store: SessionStore) -> None:
    session = create(store)
    moved = store.transition(
        session.id, to=Phase.STARTING, identity=session.identity, count_attempt="start"
    )
    assert moved.applied and moved.session.attempts == {"start": 1}
    again = store.transition(
        session.id,
        to=Phase.STARTING,
        allowed_from=[Phase.PENDING],
        identity=session.identity,
        count_attempt="start",
    )
    assert not again.applied and again.session.attempts == {"start": 1}


def test_a_transition_given_the_identity_still_frees_it_when_final(store: SessionStore) -> None:
    session = create(store)
    store.transition(session.id, to=Phase.STOPPED, identity=session.identity)
    assert store.find_active(*session.identity) is None
    assert create(store).id != session.id
