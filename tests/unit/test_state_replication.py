"""Replica acknowledgements without a Redis server (orchestrator/state/replication.py)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from orchestrator.state.keys import Keys
from orchestrator.state.replication import AsyncReplicaAcks, ReplicaAcks

KEYS = Keys("acks-test")


class FakePipeline:
    def __init__(self, calls: list[tuple[Any, ...]], acked: int) -> None:
        self.calls = calls
        self.acked = acked

    def incr(self, key: str) -> None:
        self.calls.append(("INCR", key))

    def execute_command(self, *args: Any) -> None:
        self.calls.append(args)

    def execute(self) -> list[int]:
        return [1, self.acked]


class FakeRedis:
    """Answers INFO replication with ``replicas`` and WAIT with ``acked``; records the calls."""

    def __init__(self, replicas: int = 0, acked: int = 0) -> None:
        self.calls: list[tuple[Any, ...]] = []
        self.replicas = replicas
        self.acked = acked

    def info(self, section: str) -> dict[str, Any]:
        self.calls.append(("INFO", section))
        return {"role": "master", "connected_slaves": self.replicas}

    def pipeline(self, transaction: bool = True) -> FakePipeline:
        return FakePipeline(self.calls, self.acked)


def acks(redis: FakeRedis, **options: Any) -> ReplicaAcks:
    return ReplicaAcks(redis, KEYS, **options)  # type: ignore[arg-type]


def test_no_replica_wanted_confirms_without_a_round_trip() -> None:
    redis = FakeRedis()

    assert acks(redis, min_replicas=0).confirm("create", ["s1"]) is True
    assert redis.calls == []


def test_the_replicas_number_is_read_once_then_known() -> None:
    redis = FakeRedis(replicas=0)
    confirmer = acks(redis)

    assert confirmer.confirm("create", ["s1"]) is True
    assert confirmer.confirm("create", ["s2"]) is True
    assert redis.calls == [("INFO", "replication")]


def test_known_to_need_none_the_steps_are_not_run(monkeypatch: pytest.MonkeyPatch) -> None:
    confirmer = acks(FakeRedis(), min_replicas=0)

    def no_steps(steps: Any) -> bool:
        raise AssertionError("the confirmation steps ran")

    monkeypatch.setattr(confirmer, "_run", no_steps)

    assert confirmer.confirm("create", ["s1"]) is True


def test_a_wanted_replica_is_waited_for() -> None:
    redis = FakeRedis(replicas=1, acked=1)

    assert acks(redis).confirm("create", ["s1"]) is True
    assert ("WAIT", 1, acks(redis).timeout_ms) in redis.calls


def test_the_async_confirmation_also_skips_the_steps_when_none_is_wanted() -> None:
    confirmer = AsyncReplicaAcks(FakeRedis(), KEYS, min_replicas=0)  # type: ignore[arg-type]

    def no_steps(steps: Any) -> bool:
        raise AssertionError("the confirmation steps ran")

    confirmer._run = no_steps  # type: ignore[method-assign]

    assert asyncio.run(confirmer.confirm("create", ["s1"])) is True
