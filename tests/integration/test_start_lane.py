"""The start lane: its Redis structures, and real workers taking starts from it.

The structures are checked against the real Redis (times on its clock); the deliveries with
``krtc-rec worker`` subprocesses and the sandbox: copies of one entry, a worker killed in the
middle of a start, an entry whose runs kept killing their workers.
"""

from __future__ import annotations

import asyncio
import re
import time
from typing import Any

import pytest

from orchestrator import AsyncRecorder
from orchestrator.state import Phase
from orchestrator.state.lane import LaneDepth, StartLane, lane_entry
from tests.integration.worker_fixture import QueueStack, start_body

pytestmark = pytest.mark.timeout(90)


def _entries(lane: StartLane) -> list[str]:
    return list(lane._redis.lrange(lane.ready_key, 0, -1))  # noqa: SLF001


def test_entries_are_taken_in_order_and_an_ack_removes_only_its_delivery(lane: StartLane) -> None:
    runs = [lane.push(f"s{n}") for n in range(3)]
    first = lane.cycle(2, visibility_s=30, acks=[])
    assert [(e.run_id, e.session_id, e.deaths) for e in first] == [
        (runs[0], "s0", 0),
        (runs[1], "s1", 0),
    ]
    assert lane.depth().__dict__ == {"ready": 1, "inflight": 2, "delayed": 0}

    # The same entry delivered twice (a copy): two deliveries, acknowledged one by one.
    lane._redis.rpush(lane.ready_key, lane_entry("s0", runs[0]))  # noqa: SLF001
    [copy] = lane.cycle(1, visibility_s=30, acks=[first[0].delivery])
    assert copy.run_id == runs[0] and copy.delivery != first[0].delivery
    assert lane.depth().inflight == 2, "the copy's delivery survives the first one's ack"
    rest = lane.cycle(5, visibility_s=30, acks=[first[1].delivery, copy.delivery])
    assert [e.session_id for e in rest] == ["s2"]
    assert lane.depth().__dict__ == {"ready": 0, "inflight": 1, "delayed": 0}


def test_a_retry_waits_on_redis_time_and_keeps_its_run(lane: StartLane) -> None:
    run_id = lane.push("s1")
    [taken] = lane.cycle(1, visibility_s=30, acks=[])
    lane.retry(taken.delivery, 0.3)
    assert lane.depth().__dict__ == {"ready": 0, "inflight": 0, "delayed": 1}
    assert lane.sweep() == (0, 0), "not due yet"
    time.sleep(0.35)
    assert lane.sweep() == (1, 0)
    [again] = lane.cycle(1, visibility_s=30, acks=[])
    assert (again.run_id, again.session_id, again.deaths) == (run_id, "s1", 0)


def test_a_delivery_past_its_visibility_comes_back_first_and_counts_a_death(
    lane: StartLane,
) -> None:
    lane.push("s1")
    [taken] = lane.cycle(1, visibility_s=0.2, acks=[])
    lane.push("s2")
    time.sleep(0.25)
    assert lane.sweep() == (0, 1)
    [back] = lane.cycle(1, visibility_s=0.2, acks=[])
    assert (back.session_id, back.deaths) == ("s1", 1), "before s2, which waited less"
    time.sleep(0.25)
    lane.sweep()
    [twice] = lane.cycle(1, visibility_s=30, acks=[])
    assert (twice.session_id, twice.deaths) == ("s1", 2)
    # Its ack ends the count: a later copy starts from none.
    lane.cycle(0, visibility_s=30, acks=[twice.delivery])
    assert lane._redis.hlen(lane.deaths_key) == 0  # noqa: SLF001


def test_a_stopping_worker_puts_back_what_it_did_not_begin(lane: StartLane) -> None:
    for n in range(3):
        lane.push(f"s{n}")
    taken = lane.cycle(3, visibility_s=30, acks=[])
    assert lane.release([e.delivery for e in taken[1:]]) == 2
    assert lane.release([e.delivery for e in taken[1:]]) == 0, "released once"
    assert [e.split(" ")[1] for e in _entries(lane)] == ["s1", "s2"]
    assert lane.depth().inflight == 1


def test_waiting_for_an_entry_leaves_it_in_place(lane: StartLane) -> None:
    began = time.monotonic()
    assert lane.wait(0.1) is False
    assert time.monotonic() - began >= 0.09
    lane.push("s1")
    assert lane.wait(1.0) is True
    assert [e.split(" ")[1] for e in _entries(lane)] == ["s1"]


# -- real workers -----------------------------------------------------------------------------


def _start_calls(stack: QueueStack, cname: str) -> int:
    return sum(
        1
        for r in stack.sandbox.requests()
        if r.get("action") == "CloudRecordingStart" and r.get("cname") == cname
    )


def _pending(stack: QueueStack, cname: str) -> str:
    """A stored, pending session whose start is not queued (the test queues it)."""
    store = stack.recorder.store
    body = start_body(cname)
    session, created = store.create(
        app_id=body["appId"], cname=cname, uid=body["uid"], mode="mix", request=body
    )
    assert created
    return session.id


def test_a_create_queues_the_first_run_under_the_session_id_and_a_requeue_draws_one(
    queue_stack: QueueStack,
) -> None:
    # Given no worker, a start from each producer (sync and asyncio) waits in the lane
    sync = queue_stack.recorder.start(start_body("first-run-sync"))

    async def start_async() -> str:
        recorder = AsyncRecorder(queue_stack.settings)
        try:
            return (await recorder.start(start_body("first-run-aio"))).id
        finally:
            await recorder.close()

    aio = asyncio.run(start_async())
    store = queue_stack.recorder.store
    lane = StartLane(store.redis, keys=store.keys)
    # Then each entry's run is the session's first, under the session's own id
    assert sorted(_entries(lane)) == sorted([f"{sync.id} {sync.id}", f"{aio} {aio}"])
    # And a start queued again for the same session (a re-queue) is a run of its own
    again = lane.push(sync.id)
    assert re.fullmatch(r"[0-9a-f]{32}", again) and again != sync.id
    taken = lane.cycle(3, visibility_s=30, acks=[])
    assert sorted(e.run_id for e in taken if e.session_id == sync.id) == sorted([sync.id, again])


def test_three_copies_of_a_lane_entry_send_one_start(queue_stack: QueueStack) -> None:
    # Given a pending session whose lane entry is there three times (what a delivery that
    # outlived its visibility and a re-queue leave), with a slow API
    queue_stack.sandbox.set_faults(latency_ms=500)
    session_id = _pending(queue_stack, "lane-triple")
    entry = lane_entry(session_id)
    store = queue_stack.recorder.store
    for _ in range(3):
        store.redis.lpush(store.keys.start_lane("ready"), entry)
    # When a worker with many threads takes them at once
    worker = queue_stack.start_worker()
    recording = queue_stack.wait(session_id, Phase.RECORDING)
    time.sleep(1.5)
    # Then the sandbox saw one start; the three deliveries all ended and were acknowledged
    assert _start_calls(queue_stack, "lane-triple") == 1
    assert queue_stack.recorder.get(session_id).attempts["start"] == 1
    [server] = queue_stack.sandbox.recordings(cname="lane-triple")
    assert server["sid"] == recording.sid
    # (copies that met the lease held wait a short retry, then find the session recording)
    lane = StartLane(store.redis, keys=store.keys)
    deadline = time.monotonic() + 10
    while lane.depth() != LaneDepth(0, 0, 0):
        assert time.monotonic() < deadline, f"deliveries left: {lane.depth()}"
        time.sleep(0.1)
    # (two copies that wait for the same retry are one entry of the delayed set)
    assert worker.log().count("retry in") == 2 and worker.log().count("succeeded in") >= 2
    assert _start_calls(queue_stack, "lane-triple") == 1


def test_a_start_whose_worker_is_killed_comes_back_and_records_once(
    queue_stack: QueueStack,
) -> None:
    # Given a worker in the middle of a start (the API answers after 2 s; a second start of
    # the same recording gets a 409 naming the running sid, spec D12)
    queue_stack.sandbox.configure(conflict_sid_in_body=True)
    queue_stack.sandbox.set_faults(latency_ms=2000)
    worker = queue_stack.start_worker()
    session = queue_stack.recorder.start(start_body("lane-killed"))
    queue_stack.wait(session.id, Phase.STARTING, timeout=10)
    # When it is killed (no ack, no cleanup) and another worker is there
    worker.kill()
    queue_stack.sandbox.clear_faults()
    queue_stack.start_worker()
    # Then, once the delivery's visibility ends, the start runs again: one recording, followed
    recording = queue_stack.wait(session.id, Phase.RECORDING, timeout=40)
    servers = queue_stack.sandbox.recordings(cname="lane-killed")
    assert [s["sid"] for s in servers] == [recording.sid]


@pytest.fixture
def stack_overrides() -> dict[str, Any]:
    return {"start_max_attempts": 2}


def test_an_entry_whose_runs_killed_their_workers_is_a_dead_letter(
    queue_stack: QueueStack,
) -> None:
    # Given an entry three of whose deliveries outlived their visibility
    session_id = _pending(queue_stack, "lane-poison")
    entry = lane_entry(session_id)
    store = queue_stack.recorder.store
    store.redis.hset(store.keys.start_lane("deaths"), entry, 3)
    store.redis.lpush(store.keys.start_lane("ready"), entry)
    # When a worker takes it
    queue_stack.start_worker()
    # Then it is not run again: one dead letter, nothing sent
    deadline = time.monotonic() + 15
    while not (letters := queue_stack.recorder.dead_letters.list()):
        assert time.monotonic() < deadline, "no dead letter"
        time.sleep(0.1)
    [letter] = letters
    assert (letter.task, letter.session_id, letter.error["kind"]) == (
        "krtc.start",
        session_id,
        "worker_lost",
    )
    assert _start_calls(queue_stack, "lane-poison") == 0
    # (acknowledged by the worker's next take, within a fraction of a second)
    deadline = time.monotonic() + 3
    while store.redis.hlen(store.keys.start_lane("deaths")):
        assert time.monotonic() < deadline, "the entry's deaths are never cleared"
        time.sleep(0.05)


def test_a_refused_start_retries_from_the_lane_then_is_a_dead_letter(
    queue_stack: QueueStack,
) -> None:
    # Given an API that fails every start with a 500 (and a budget of two attempts)
    queue_stack.sandbox.set_faults(error_rates={"start": 1.0}, error_status=500)
    queue_stack.start_worker()
    session = queue_stack.recorder.start(start_body("lane-500"))
    # Then two attempts, the second after a retry from the lane's delayed set, then failed
    failed = queue_stack.wait(session.id, Phase.FAILED, timeout=20)
    assert failed.attempts["start"] == 2
    assert _start_calls(queue_stack, "lane-500") == 2
    # (the letter is filed just after the session is failed, by the same run)
    deadline = time.monotonic() + 5
    while not (letters := queue_stack.recorder.dead_letters.list()):
        assert time.monotonic() < deadline, "no dead letter"
        time.sleep(0.05)
    [letter] = letters
    assert letter.task == "krtc.start" and letter.session_id == session.id
    store = queue_stack.recorder.store
    lane = StartLane(store.redis, keys=store.keys)
    deadline = time.monotonic() + 3
    while lane.depth().inflight:
        assert time.monotonic() < deadline, "the failed delivery is never acknowledged"
        time.sleep(0.05)
    assert (lane.depth().ready, lane.depth().delayed) == (0, 0)
