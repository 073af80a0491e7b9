"""Redis clients never hang, recover lost connections for reads, and never send a write twice.

Against a server that never answers, a real Redis whose connection is killed, and a proxy that
loses an answer after the command ran (orchestrator.state.connection).
"""

from __future__ import annotations

import time
from urllib.parse import urlparse

import pytest
from redis import Redis

from orchestrator.krtc.enums import Action, Mode
from orchestrator.ratelimit import RateLimiter
from orchestrator.reconcile.rounds import RoundGate
from orchestrator.settings import Settings
from orchestrator.state import Keys, SessionStore, StateUnavailableError
from orchestrator.state.connection import redis_client
from tests.integration.tcp_faults import BlackHole, CuttingProxy

#: The timeouts of these tests: short, so that a hang would show as a failure, not a wait.
TIMEOUT_S = 0.5


def _settings(url: str, prefix: str, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "redis_url": url,
        "redis_prefix": prefix,
        "redis_connect_timeout_s": TIMEOUT_S,
        "redis_socket_timeout_s": TIMEOUT_S,
    }
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


def _elapsed(call: object) -> tuple[float, BaseException | None]:
    began = time.monotonic()
    try:
        call()  # type: ignore[operator]
    except Exception as exc:
        return time.monotonic() - began, exc
    return time.monotonic() - began, None


def test_a_read_from_a_server_that_never_answers_fails_within_the_timeout() -> None:
    with BlackHole() as hole:
        store = SessionStore.from_settings(_settings(hole.url, "black-hole"))

        seconds, error = _elapsed(lambda: store.get("01JD3YV0Q4"))

    assert isinstance(error, StateUnavailableError)
    assert "127.0.0.1" in str(error) and "Timeout" in str(error)
    # One socket timeout: a timeout is not retried (it would only double the wait).
    assert TIMEOUT_S <= seconds < 3 * TIMEOUT_S


def test_every_client_of_the_project_gives_up_on_a_silent_server() -> None:
    # Given the clients built from settings (store writes, rate limiter, round gate, metrics)
    with BlackHole() as hole:
        settings = _settings(hole.url, "black-hole", rate_limit_per_app=1.0)
        store = SessionStore.from_settings(settings)
        client = redis_client(settings)
        limiter = RateLimiter.from_settings(settings, client)
        gate = RoundGate(client, Keys("black-hole"), interval_s=30)
        calls = {
            "transition": lambda: store.transition("01JD3YV0Q4", record=False),
            "record_attempt": lambda: store.record_attempt("01JD3YV0Q4", Action.START),
            "rate limit": lambda: limiter.acquire("app"),
            "round gate": gate.begin,
        }
        # When each sends one command, Then each fails within the timeout
        for name, call in calls.items():
            seconds, error = _elapsed(call)
            assert isinstance(error, StateUnavailableError), name
            assert seconds < 3 * TIMEOUT_S, name


def test_a_killed_connection_is_replaced_transparently(
    redis_url: str, key_prefix: str, redis_client: Redis
) -> None:
    store = SessionStore.from_settings(_settings(redis_url, key_prefix))
    session = store.create(app_id="app", cname="c", uid="1", mode=Mode.MIX).session
    first_id = store.redis.client_id()

    redis_client.client_kill_filter(_id=first_id)

    assert store.get(session.id) == session
    assert store.redis.client_id() != first_id
    redis_client.client_kill_filter(_id=store.redis.client_id())
    assert store.record_attempt(session.id, "start") == 1, "writes reconnect too"


def test_a_read_whose_answer_is_lost_is_sent_again_on_a_new_connection(
    redis_url: str, key_prefix: str
) -> None:
    address = urlparse(redis_url)
    with CuttingProxy((address.hostname or "127.0.0.1", address.port or 6379)) as proxy:
        store = SessionStore.from_settings(_settings(proxy.url(14), key_prefix))
        session = store.create(app_id="app", cname="c", uid="1", mode=Mode.MIX).session
        # The pool's connection made (the create has one of its own, see state.pinned), so the
        # cut falls on the read, not on a new connection's handshake.
        assert store.get(session.id) is not None
        connections = proxy.connections
        proxy.cut_next()

        found = store.get(session.id, with_history=True)

        assert found is not None and found.id == session.id
        assert (proxy.cuts, proxy.connections) == (1, connections + 1)


def test_a_write_whose_answer_is_lost_fails_and_is_not_sent_twice(
    redis_url: str, key_prefix: str
) -> None:
    address = urlparse(redis_url)
    with CuttingProxy((address.hostname or "127.0.0.1", address.port or 6379)) as proxy:
        store = SessionStore.from_settings(_settings(proxy.url(14), key_prefix))
        session = store.create(app_id="app", cname="c", uid="1", mode=Mode.MIX).session
        assert store.get(session.id) is not None  # the pool's connection made, as above
        proxy.cut_next()

        with pytest.raises(StateUnavailableError):
            store.record_attempt(session.id, "start")

        time.sleep(0.3)  # the proxy lets Redis run the command before it drops the connection
        assert store.get_or_raise(session.id).attempts == {"start": 1}, "counted once"
        assert store.record_attempt(session.id, "start") == 2
