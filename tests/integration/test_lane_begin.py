"""The start lane's take that also begins the starts it takes (one round trip, real Redis).

A begun start must be exactly what the job's own begin (``BEGIN_START``) makes of it: the
lease, the phase, the attempts, the history entry. Whatever the take cannot decide from the
fields it reads (a stop requested, a newer schema, a counter that is not a number, another
run's lease, a missing session, an entry that kept killing its workers) it leaves untouched,
for the job to decide from the session it decodes.
"""

from __future__ import annotations

import time
from typing import Any

import pytest
from redis import Redis

from orchestrator.state import Desired, Phase, SessionStore
from orchestrator.state.codec import session_from_hash
from orchestrator.state.flights import StartFlights
from orchestrator.state.lane import LaneEntry, StartLane, lane_entry

LEASE_S = 30.0


def _pending(store: SessionStore, cname: str) -> str:
    body = {
        "appId": "app-test",
        "cname": cname,
        "uid": "1001",
        "mode": "mix",
        "clientRequest": {"recordingConfig": {"maxIdleTime": 30}},
    }
    session, created = store.create(
        app_id="app-test", cname=cname, uid="1001", mode="mix", request=body
    )
    assert created
    return session.id


def _take(lane: StartLane, flights: StartFlights, count: int = 10) -> list[LaneEntry]:
    params = lane.begin_params(flights, lease_s=LEASE_S, max_deaths=3)
    return lane.cycle(count, visibility_s=60, acks=[], begin=params)


def _raw(store: SessionStore, session_id: str) -> dict[str, str]:
    return dict(store.redis.hgetall(store.keys.session(session_id)))


def _history(store: SessionStore, session_id: str) -> list[str]:
    return list(store.redis.lrange(store.keys.history(session_id), 0, -1))


def _own_fields(fields: dict[str, Any]) -> dict[str, Any]:
    """What two sessions of different channels, begun at different times, have in common."""
    differ = {"updated_at", "phase_since", "created_at", "id", "cname", "request"}
    return {k: v for k, v in fields.items() if k not in differ}


def test_a_taken_start_is_begun_as_the_jobs_own_begin_would(
    store: SessionStore, lane: StartLane, flights: StartFlights, redis_client: Redis
) -> None:
    # Two pending sessions: one begun by the take, one by the job's begin step.
    taken_id, own_id = _pending(store, "taken"), _pending(store, "own")
    run_id = lane.push(taken_id)

    [entry] = _take(lane, flights)
    own = store.get(own_id)
    assert own is not None
    begun = flights.begin(
        own,
        run_id="own-run",
        token="own-token",
        lease_s=LEASE_S,
        now=store.clock(),
        why="sending start",
        record=True,
    )

    assert entry.begun and begun.applied
    assert (entry.run_id, entry.session_id, entry.attempt) == (run_id, taken_id, begun.attempt)
    assert entry.token == entry.delivery.split("|")[0], "the delivery names its lease token"
    # The same stored session, history entry, lease and run counters.
    taken_raw, own_raw = _raw(store, taken_id), _raw(store, own_id)
    assert taken_raw["phase"] == Phase.STARTING.value
    assert _own_fields(taken_raw) == _own_fields(own_raw)
    assert set(taken_raw) == set(own_raw)
    assert float(taken_raw["phase_since"]) == float(taken_raw["updated_at"])
    assert abs(float(taken_raw["updated_at"]) - store.clock()) < 5, "on Redis' clock"
    taken_entry = store.get(taken_id, with_history=True).history[-1]  # type: ignore[union-attr]
    own_entry = store.get(own_id, with_history=True).history[-1]  # type: ignore[union-attr]
    assert taken_entry.model_dump(exclude={"at"}) == own_entry.model_dump(exclude={"at"})
    assert taken_entry.what == "phase pending -> starting"
    keys = store.keys
    assert redis_client.get(keys.lease(taken_id, "start")) == entry.token
    assert 0 < redis_client.pttl(keys.lease(taken_id, "start")) <= LEASE_S * 1000
    assert redis_client.hgetall(keys.run(run_id)) == redis_client.hgetall(keys.run("own-run"))
    # And the fields it hands over decode to that session.
    session = session_from_hash(taken_id, entry.fields)
    assert (session.id, session.phase, session.cname) == (taken_id, Phase.STARTING, "taken")


def test_a_start_taken_again_is_begun_again_without_a_second_history_entry(
    store: SessionStore, lane: StartLane, flights: StartFlights, redis_client: Redis
) -> None:
    session_id = _pending(store, "again")
    run_id = lane.push(session_id)
    [first] = _take(lane, flights)
    history = _history(store, session_id)
    # Its lease ended (the run retried later, or its worker died): the next delivery begins.
    redis_client.delete(store.keys.lease(session_id, "start"))
    lane._redis.rpush(lane.ready_key, lane_entry(session_id, run_id))  # noqa: SLF001
    [second] = _take(lane, flights)
    assert second.begun and second.attempt == first.attempt + 1 == 2
    assert _history(store, session_id) == history, "starting -> starting is no new entry"
    assert _raw(store, session_id)["attempts:start"] == "2"


@pytest.mark.parametrize(
    "case",
    ["stop requested", "newer schema", "bad counter", "leased", "recording", "gone", "deaths"],
)
def test_what_the_take_cannot_decide_it_leaves_untouched(
    case: str, store: SessionStore, lane: StartLane, flights: StartFlights, redis_client: Redis
) -> None:
    session_id = _pending(store, f"left-{case.replace(' ', '-')}")
    key = store.keys.session(session_id)
    if case == "stop requested":
        redis_client.hset(key, "desired", Desired.STOPPED.value)
    elif case == "newer schema":
        redis_client.hset(key, "schema", "99")
    elif case == "bad counter":
        redis_client.hset(key, "attempts:start", "x1")
    elif case == "leased":
        redis_client.set(store.keys.lease(session_id, "start"), "another-run", px=30_000)
    elif case == "recording":
        redis_client.hset(key, mapping={"phase": Phase.RECORDING.value, "sid": "s" * 20})
    elif case == "gone":
        redis_client.delete(key)
    before, history = _raw(store, session_id), _history(store, session_id)
    run_id = lane.push(session_id)
    if case == "deaths":
        redis_client.hset(lane.deaths_key, lane_entry(session_id, run_id), 3)

    [entry] = _take(lane, flights)

    assert not entry.begun and entry.attempt == 0 and entry.fields == {}
    assert (entry.run_id, entry.session_id) == (run_id, session_id), "taken all the same"
    assert _raw(store, session_id) == before
    assert _history(store, session_id) == history
    assert not redis_client.exists(store.keys.run(run_id))
    if case != "leased":
        assert not redis_client.exists(store.keys.lease(session_id, "start"))


def test_an_entry_of_odd_ids_is_taken_without_a_begin(
    store: SessionStore, lane: StartLane, flights: StartFlights
) -> None:
    # Ids whose key part would be escaped are left to the job (the take does not escape).
    lane._redis.lpush(lane.ready_key, "run:1 session/1")  # noqa: SLF001
    [entry] = _take(lane, flights)
    assert (entry.run_id, entry.session_id, entry.begun) == ("run:1", "session/1", False)


def test_one_take_begins_a_batch_and_a_bad_value_fails_only_its_own_start(
    store: SessionStore, lane: StartLane, flights: StartFlights, redis_client: Redis
) -> None:
    ids = [_pending(store, f"batch-{n}") for n in range(4)]
    # Not UTF-8: a client that decodes replies would fail the whole take on it.
    redis_client.hset(store.keys.session(ids[1]), "mode", b"\xff\xfe")  # type: ignore[arg-type]
    for session_id in ids:
        lane.push(session_id)

    began = time.monotonic()
    entries = _take(lane, flights)
    assert time.monotonic() - began < 5

    assert [e.session_id for e in entries] == ids
    assert all(e.begun for e in entries)
    assert session_from_hash(ids[0], entries[0].fields).phase == Phase.STARTING
    with pytest.raises(Exception, match="not UTF-8|decode"):
        session_from_hash(ids[1], entries[1].fields)


def test_the_jobs_begin_waits_for_another_runs_lease_only_while_the_session_may_start(
    store: SessionStore, flights: StartFlights, redis_client: Redis
) -> None:
    session_id = _pending(store, "leased-begin")
    lease = store.keys.lease(session_id, "start")
    redis_client.set(lease, "another-run", px=30_000)
    session = store.get(session_id)
    assert session is not None

    def begin(token: str) -> Any:
        return flights.begin(
            session,
            run_id=f"run-{token}",
            token=token,
            lease_s=LEASE_S,
            now=store.clock(),
            why="sending start",
            record=True,
        )

    before = _raw(store, session_id)
    busy = begin("mine")
    assert (busy.busy, busy.applied) == (True, False)
    assert _raw(store, session_id) == before and redis_client.get(lease) == "another-run"
    # Once the session has moved on, there is nothing to wait for: refused, not busy.
    redis_client.hset(store.keys.session(session_id), "phase", Phase.RECORDING.value)
    refused = begin("mine")
    assert (refused.busy, refused.applied, refused.found) == (False, False, Phase.RECORDING)
    # And a free lease is taken, with the session's attempt counted in the same write.
    redis_client.hset(store.keys.session(session_id), "phase", Phase.PENDING.value)
    redis_client.delete(lease)
    applied = begin("mine")
    assert (applied.applied, applied.attempt) == (True, 1)
    assert redis_client.get(lease) == "mine"
    assert _raw(store, session_id)["attempts:start"] == "1"
