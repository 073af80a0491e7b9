"""A task message whose runs keep dying is given up after MAX_DELIVERIES, not run for ever."""

from __future__ import annotations

from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest

from orchestrator.jobs import JobContext, JobFailedError
from orchestrator.krtc.client import KrtcClient
from orchestrator.settings import Settings
from orchestrator.state import DeadLetterStore, SessionStore
from orchestrator.storage_profiles import StorageProfiles
from workers import runtime
from workers.delivery import MAX_DELIVERIES, DeliveryCounter
from workers.tasks import _run


@pytest.fixture
def ctx(store: SessionStore, settings: Settings) -> Iterator[JobContext]:
    context = JobContext(
        settings=settings,
        store=store,
        client=KrtcClient(settings),
        profiles=StorageProfiles({}),
        dead_letters=DeadLetterStore(store.redis, keys=store.keys),
    )
    context.alert = lambda *_: None
    runtime.install(context)
    yield context
    runtime.reset()


def _task(task_id: str, *, redelivered: bool = True) -> Any:
    return SimpleNamespace(
        name="krtc.stop",
        app=SimpleNamespace(
            conf=SimpleNamespace(
                krtc_settings=None, broker_url="memory://", broker_transport_options={}
            )
        ),
        request=SimpleNamespace(
            id=task_id,
            retries=0,
            args=["S1"],
            delivery_info={"redelivered": redelivered},
        ),
    )


def test_a_run_that_died_once_runs_again_and_clears_its_count(ctx: JobContext) -> None:
    counter = DeliveryCounter(ctx.store.redis, ctx.store.keys.prefix)
    # The first delivery was killed (uncounted); this redelivery runs and clears its count.
    assert _run(_task("t-once"), lambda c, _run_id: "done") == "done"
    assert counter.begin("t-once", 0) == 1, "a finished run clears the count"


def test_a_first_delivery_costs_no_counter(ctx: JobContext) -> None:
    assert _run(_task("t-first", redelivered=False), lambda c, _run_id: "done") == "done"
    assert list(ctx.store.redis.scan_iter(match=f"{ctx.store.keys.prefix}:delivery:*")) == []


def test_a_message_that_kills_every_run_goes_to_the_dead_letters(ctx: JobContext) -> None:
    counter = DeliveryCounter(ctx.store.redis, ctx.store.keys.prefix)
    for _ in range(MAX_DELIVERIES - 1):
        counter.begin("t-loop", 0)  # the first delivery and two redeliveries killed a worker
    ran: list[bool] = []
    with pytest.raises(JobFailedError) as failure:
        _run(_task("t-loop"), lambda c, _run_id: str(ran.append(True)))
    assert ran == [], "not run a fourth time"
    assert failure.value.error["kind"] == "worker_lost"
    letters = ctx.dead_letters.list()
    assert [(x.id, x.action, x.error["kind"]) for x in letters] == [
        ("t-loop", "stop", "worker_lost")
    ]
