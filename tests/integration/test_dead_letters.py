"""Dead letters against the real Redis (orchestrator/state/dead_letters.py)."""

from __future__ import annotations

import threading
from typing import Any, cast

import pytest
from redis import Redis

from orchestrator.krtc.enums import Mode
from orchestrator.state import (
    DeadLetter,
    DeadLetterStore,
    Keys,
    SessionStore,
    StateUnavailableError,
)
from orchestrator.state.dead_letters import Filing, to_json
from tests.integration.state_fixture import FakeClock, delete_prefix

pytestmark = pytest.mark.integration


def letter(
    letter_id: str = "task-1", failed_at: float = 1_700_000_000.0, **extra: Any
) -> DeadLetter:
    values: dict[str, Any] = {
        "id": letter_id,
        "task": "krtc.start",
        "action": "CloudRecordingStart",
        "session_id": "01HSESSIONXXXXXXXXXXXXXXXX",
        "args": ["01HSESSIONXXXXXXXXXXXXXXXX"],
        "error": {"kind": "validation", "status": 400, "code": 1, "reason": "bad", "at": 1.0},
        "attempts": 1,
        "failed_at": failed_at,
        "app_id": "lee1234",
        "cname": "room:1",
        "uid": "recorder",
        **extra,
    }
    return DeadLetter(**values)


def index(client: Redis, keys: Keys) -> list[tuple[str, float]]:
    return cast(list[tuple[str, float]], client.zrange(keys.dead_letters(), 0, -1, withscores=True))


def test_a_letter_is_kept_and_read_back(dead_letters: DeadLetterStore, redis_client: Redis) -> None:
    kept = letter(replays=[])

    assert dead_letters.add(kept) is Filing.NEW

    assert dead_letters.get("task-1") == kept
    assert dead_letters.size() == 1
    assert index(redis_client, dead_letters.keys) == [("task-1", 1_700_000_000.0)]


def test_a_missing_letter_is_none(dead_letters: DeadLetterStore) -> None:
    assert dead_letters.get("nope") is None
    assert dead_letters.list() == []
    assert dead_letters.size() == 0


def test_adding_a_letter_with_a_known_id_keeps_the_first(dead_letters: DeadLetterStore) -> None:
    first = letter(attempts=3)
    assert dead_letters.add(first) is Filing.NEW

    redelivered = letter(attempts=4, failed_at=1_700_000_050.0, error={"kind": "other"})

    assert dead_letters.add(redelivered) is Filing.DUPLICATE
    assert dead_letters.get("task-1") == first
    assert dead_letters.size() == 1
    assert dead_letters.list() == [first]


def test_a_letter_stored_without_its_index_entry_is_indexed_when_added_again(
    dead_letters: DeadLetterStore, redis_client: Redis
) -> None:
    # Given a worker that died between storing a letter and indexing it
    first = letter()
    redis_client.set(dead_letters.keys.dead_letter(first.id), first.model_dump_json())

    # When the redelivered failure is added again
    added = dead_letters.add(letter(failed_at=1_700_000_099.0))

    # Then the first letter is kept, and can now be listed and purged
    assert added is Filing.DUPLICATE
    assert dead_letters.list() == [first]
    assert dead_letters.size() == 1
    assert dead_letters.purge() == 1
    assert redis_client.exists(dead_letters.keys.dead_letter(first.id)) == 0


def test_letters_are_listed_newest_first(dead_letters: DeadLetterStore) -> None:
    times = {"b": 200.0, "a": 100.0, "d": 400.0, "c": 300.0}
    for letter_id, failed_at in times.items():
        dead_letters.add(letter(letter_id, failed_at, session_id=f"s-{letter_id}"))

    assert [x.id for x in dead_letters.list()] == ["d", "c", "b", "a"]
    assert [x.id for x in dead_letters.list(limit=2)] == ["d", "c"]
    assert dead_letters.size() == 4
    with pytest.raises(ValueError):
        dead_letters.list(limit=0)


def test_replays_are_recorded_in_order(dead_letters: DeadLetterStore) -> None:
    dead_letters.add(letter())

    dead_letters.mark_replayed("task-1", "replay-1")
    dead_letters.mark_replayed("task-1", "replay-2")

    kept = dead_letters.get("task-1")
    assert kept is not None
    assert kept.replays == ["replay-1", "replay-2"]
    assert kept.model_dump(exclude={"replays"}) == letter().model_dump(exclude={"replays"})
    assert dead_letters.size() == 1


def test_concurrent_replays_are_all_recorded(dead_letters: DeadLetterStore) -> None:
    dead_letters.add(letter())
    barrier = threading.Barrier(10)

    def replay(i: int) -> None:
        barrier.wait(timeout=10)
        dead_letters.mark_replayed("task-1", f"replay-{i}")

    threads = [threading.Thread(target=replay, args=(i,)) for i in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)

    kept = dead_letters.get("task-1")
    assert kept is not None
    assert sorted(kept.replays) == sorted(f"replay-{i}" for i in range(10))


def test_marking_a_missing_letter_replayed_stores_nothing(
    dead_letters: DeadLetterStore, redis_client: Redis
) -> None:
    dead_letters.add(letter())
    dead_letters.remove("task-1")

    dead_letters.mark_replayed("task-1", "replay-1")
    dead_letters.mark_replayed("never-there", "replay-2")

    assert dead_letters.get("task-1") is None
    assert redis_client.exists(dead_letters.keys.dead_letter("task-1")) == 0
    assert redis_client.exists(dead_letters.keys.dead_letter("never-there")) == 0


def test_a_letter_can_be_removed_once(dead_letters: DeadLetterStore, redis_client: Redis) -> None:
    dead_letters.add(letter("a", 1.0, session_id="s-a"))
    dead_letters.add(letter("b", 2.0, session_id="s-b"))

    assert dead_letters.remove("a")
    assert not dead_letters.remove("a")

    assert dead_letters.get("a") is None
    assert [x.id for x in dead_letters.list()] == ["b"]
    assert index(redis_client, dead_letters.keys) == [("b", 2.0)]


def test_purge_deletes_every_letter_and_nothing_else(
    dead_letters: DeadLetterStore, store: SessionStore, redis_client: Redis, key_prefix: str
) -> None:
    session, _ = store.create(app_id="a", cname="c", uid="u", mode=Mode.MIX)
    neighbour = DeadLetterStore(redis_client, keys=Keys(key_prefix + "-neighbour"))
    try:
        neighbour.add(letter("theirs"))
        for i in range(3):
            dead_letters.add(letter(f"mine-{i}", float(i), session_id=f"s-{i}"))

        assert dead_letters.purge() == 3

        assert dead_letters.size() == 0
        assert dead_letters.list() == []
        assert redis_client.exists(dead_letters.keys.dead_letter("mine-0")) == 0
        assert store.get(session.id) == session
        assert neighbour.size() == 1 and neighbour.get("theirs") is not None
        assert dead_letters.purge() == 0
    finally:
        delete_prefix(redis_client, key_prefix + "-neighbour")


def test_purge_older_than_keeps_the_recent_letters(
    redis_client: Redis, store: SessionStore
) -> None:
    clock = FakeClock(1000.0)
    letters = DeadLetterStore(redis_client, keys=store.keys, clock=clock)
    for letter_id, failed_at in (("old", 100.0), ("older", 50.0), ("recent", 900.0)):
        letters.add(letter(letter_id, failed_at, session_id=f"s-{letter_id}"))

    removed = letters.purge(older_than_s=600)

    assert removed == 2
    assert [x.id for x in letters.list()] == ["recent"]
    assert letters.get("old") is None and letters.get("older") is None


def test_a_second_failure_of_the_same_session_and_action_updates_the_live_letter(
    dead_letters: DeadLetterStore, redis_client: Redis
) -> None:
    # Given a stop that gave up, and was re-queued (a new task) that gave up again
    first = letter("stop-1", 100.0, task="krtc.stop", action="stop", attempts=3)
    again_error = {"kind": "server", "status": 503, "code": 2, "reason": "busy", "at": 250.0}
    again = letter("stop-2", 250.0, task="krtc.stop", action="stop", attempts=6, error=again_error)

    # When both are filed
    assert dead_letters.add(first) is Filing.NEW
    assert dead_letters.add(again) is Filing.UPDATED

    # Then one letter counts both: the first id and time, the latest error and attempts
    [kept] = dead_letters.list()
    assert (kept.id, kept.failed_at, kept.failures) == ("stop-1", 100.0, 2)
    assert (kept.last_failed_at, kept.latest_failure_at) == (250.0, 250.0)
    assert kept.error == again_error and kept.attempts == 6
    assert kept.task_ids == ["stop-2"]
    assert index(redis_client, dead_letters.keys) == [("stop-1", 250.0)]
    assert redis_client.exists(dead_letters.keys.dead_letter("stop-2")) == 0
    # and a redelivery of the second failure counts nothing
    assert dead_letters.add(again) is Filing.DUPLICATE
    assert dead_letters.get("stop-1") == kept


def test_another_action_or_session_gets_its_own_letter(dead_letters: DeadLetterStore) -> None:
    assert dead_letters.add(letter("t-1", action="stop")) is Filing.NEW
    assert dead_letters.add(letter("t-2", action="start")) is Filing.NEW
    assert dead_letters.add(letter("t-3", action="stop", session_id="other")) is Filing.NEW

    assert dead_letters.size() == 3
    assert all(x.failures == 1 for x in dead_letters.list())


def test_a_failure_after_a_replay_files_a_new_letter(dead_letters: DeadLetterStore) -> None:
    dead_letters.add(letter("t-1"))
    dead_letters.mark_replayed("t-1", "replay-1")

    assert dead_letters.add(letter("replay-1", 200.0)) is Filing.NEW
    assert dead_letters.add(letter("t-3", 300.0)) is Filing.UPDATED

    replayed, live = dead_letters.get("t-1"), dead_letters.get("replay-1")
    assert replayed is not None and replayed.failures == 1 and replayed.replays == ["replay-1"]
    assert live is not None and live.failures == 2 and live.task_ids == ["t-3"]


def test_a_failure_after_a_removal_files_a_new_letter(
    dead_letters: DeadLetterStore, redis_client: Redis
) -> None:
    dead_letters.add(letter("t-1"))
    assert dead_letters.remove("t-1")
    live_key = dead_letters.keys.dead_letter_live(letter().session_id, letter().action)
    assert redis_client.exists(live_key) == 0

    assert dead_letters.add(letter("t-2")) is Filing.NEW
    assert dead_letters.purge() == 1
    assert redis_client.exists(live_key) == 0
    assert dead_letters.add(letter("t-3")) is Filing.NEW


def test_concurrent_failures_of_one_pair_make_one_letter(dead_letters: DeadLetterStore) -> None:
    barrier = threading.Barrier(8)
    filed: list[Filing] = []

    def fail(i: int) -> None:
        barrier.wait(timeout=10)
        filed.append(dead_letters.add(letter(f"t-{i}", float(i))))

    threads = [threading.Thread(target=fail, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)

    assert sorted(filed) == sorted([Filing.NEW] + [Filing.UPDATED] * 7)
    [kept] = dead_letters.list()
    assert kept.failures == 8
    assert sorted([kept.id, *kept.task_ids]) == sorted(f"t-{i}" for i in range(8))


def test_letters_convert_to_plain_json() -> None:
    data = to_json(letter(replays=["r1"]))

    assert data["id"] == "task-1"
    assert data["replays"] == ["r1"]
    assert data["error"]["status"] == 400
    assert isinstance(data["failed_at"], float)


def test_an_unreachable_redis_is_state_unavailable_without_the_password() -> None:
    client = Redis.from_url("redis://:pa55-w0rd-xyz@127.0.0.1:1/0")
    try:
        letters = DeadLetterStore(client, keys=Keys("unreachable"))
        for call in (
            lambda: letters.add(letter()),
            lambda: letters.get("x"),
            letters.list,
            letters.size,
            lambda: letters.remove("x"),
            letters.purge,
            lambda: letters.mark_replayed("x", "y"),
        ):
            with pytest.raises(StateUnavailableError) as info:
                call()
            assert "127.0.0.1:1" in str(info.value)
            assert "pa55-w0rd-xyz" not in str(info.value)
    finally:
        client.close()
