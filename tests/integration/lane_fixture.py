"""The start lane and the start's begin and finish steps on the test's store (real Redis)."""

from __future__ import annotations

import pytest

from orchestrator.state import SessionStore
from orchestrator.state.flights import StartFlights
from orchestrator.state.lane import StartLane

__all__ = ["flights", "lane"]


@pytest.fixture
def lane(store: SessionStore) -> StartLane:
    return StartLane(store.redis, keys=store.keys)


@pytest.fixture
def flights(store: SessionStore) -> StartFlights:
    return StartFlights(
        store.redis,
        keys=store.keys,
        history_limit=store.history_limit,
        retention_s=store.retention_s,
    )
