"""Fixtures for tests of the session store against the real Redis.

Every test gets its own key prefix (``test-<uuid>``) on a dedicated database, so tests can run
next to each other, and next to anything else using that Redis, without touching each other's
keys. Teardown deletes only the keys under the test's prefix; nothing is ever flushed.

* ``redis_url`` (session): the URL of the test database, ``redis://127.0.0.1:6379/14`` unless
  ``KRTC_TEST_REDIS_URL`` says otherwise. Skips the test when Redis does not answer, but fails
  when ``CI`` is set (``make test`` starts Redis first).
* ``key_prefix``: a fresh prefix; its keys are deleted after the test (after the job contexts
  the test made have written their last counters).
* ``redis_client``: a client on ``redis_url`` (``decode_responses=True``).
* ``store``: a :class:`SessionStore` under ``key_prefix``.
* ``make_store``: builds more stores under ``key_prefix`` with other options (clock, limits).
* ``dead_letters``: a :class:`DeadLetterStore` sharing the store's keys.
* :class:`FakeClock`: a clock to inject, moved by hand.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from typing import Any, cast

import pytest
from redis import Redis
from redis.exceptions import RedisError

from orchestrator.jobs import JobContext
from orchestrator.settings import Settings
from orchestrator.state import DeadLetterStore, Keys, SessionStore
from orchestrator.state.connection import connect

__all__ = [
    "DEFAULT_TEST_REDIS_URL",
    "FakeClock",
    "delete_prefix",
    "redis_url",
    "key_prefix",
    "redis_client",
    "store",
    "make_store",
    "dead_letters",
]

#: Database 14 of the local Redis: kept apart from the default database 0 of the product.
DEFAULT_TEST_REDIS_URL = "redis://127.0.0.1:6379/14"


class FakeClock:
    """A clock for ``clock=``: returns :attr:`now`, which only moves when told to."""

    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> float:
        """Move the clock forward and return the new time."""
        self.now += seconds
        return self.now


def delete_prefix(client: Redis, prefix: str) -> int:
    """Delete every key under ``prefix`` (and nothing else); return how many were deleted."""
    deleted = 0
    batch: list[Any] = []
    for name in client.scan_iter(match=Keys(prefix).pattern(), count=1000):
        batch.append(name)
        if len(batch) >= 500:
            deleted += int(cast(int, client.delete(*batch)))
            batch.clear()
    if batch:
        deleted += int(cast(int, client.delete(*batch)))
    return deleted


@pytest.fixture(scope="session")
def redis_url() -> str:
    url = os.environ.get("KRTC_TEST_REDIS_URL", DEFAULT_TEST_REDIS_URL)
    client = Redis.from_url(url, socket_connect_timeout=2)
    try:
        client.ping()
    except RedisError as exc:
        message = f"no Redis answers at {url} ({exc}); run `make redis` or `make test`"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    finally:
        client.close()
    return url


@pytest.fixture
def key_prefix(redis_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    prefix = f"test-{uuid.uuid4().hex}"
    # A job context made in the test's process writes its API call counters from a thread once
    # a second: its last write must land before the keys are deleted, not after.
    contexts: list[JobContext] = []
    made = JobContext.from_settings

    def tracked(settings: Settings) -> JobContext:
        context = made(settings)
        contexts.append(context)
        return context

    monkeypatch.setattr(JobContext, "from_settings", tracked)
    yield prefix
    for context in contexts:
        if context.metrics is not None:
            context.metrics.close()
    # The project's own client: a module may point redis_url at Sentinels.
    client = connect(redis_url)
    try:
        delete_prefix(client, prefix)
    finally:
        client.close()


@pytest.fixture
def redis_client(redis_url: str) -> Iterator[Redis]:
    client = Redis.from_url(redis_url, decode_responses=True)
    yield client
    client.close()


@pytest.fixture
def make_store(redis_client: Redis, key_prefix: str) -> Callable[..., SessionStore]:
    def make(**options: Any) -> SessionStore:
        options.setdefault("prefix", key_prefix)
        return SessionStore(redis_client, **options)

    return make


@pytest.fixture
def store(make_store: Callable[..., SessionStore]) -> SessionStore:
    return make_store()


@pytest.fixture
def dead_letters(redis_client: Redis, store: SessionStore) -> DeadLetterStore:
    return DeadLetterStore(redis_client, keys=store.keys)
