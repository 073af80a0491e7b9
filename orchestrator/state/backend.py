"""The boundary with redis-py: its exceptions become :class:`StateError` subclasses here.

Messages name the server as ``host:port`` (or the socket path) and never a password, even if
one was in the URL.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from redis import Redis
from redis.asyncio import Redis as AsyncRedis
from redis.exceptions import ConnectionError, RedisError, TimeoutError

from orchestrator.errors import StateError
from orchestrator.state.errors import StateBackendError, StateUnavailableError

__all__ = ["describe", "redis_errors", "state_error"]


def describe(client: Redis | AsyncRedis) -> str:
    """Where ``client`` connects, as ``host:port`` or a socket path, without credentials."""
    pool = client.connection_pool
    service = getattr(pool, "service_name", None)
    if isinstance(service, str):
        return f"the primary {service!r} (Sentinel)"
    kwargs = pool.connection_kwargs
    if kwargs.get("path"):
        return str(kwargs["path"])
    return f"{kwargs.get('host', 'localhost')}:{kwargs.get('port', 6379)}"


def _scrub(message: str, client: Redis | AsyncRedis) -> str:
    password = client.connection_pool.connection_kwargs.get("password")
    if isinstance(password, str) and password:
        message = message.replace(password, "**********")
    return message


def state_error(exc: RedisError, client: Redis | AsyncRedis) -> StateError:
    """The state error that stands for redis-py's ``exc`` (what :func:`redis_errors` raises):
    :class:`StateUnavailableError` when the server could not be reached or did not answer in
    time, :class:`StateBackendError` when it answered with an error."""
    detail = _scrub(str(exc) or type(exc).__name__, client)
    if isinstance(exc, ConnectionError | TimeoutError):
        return StateUnavailableError(
            f"Redis at {describe(client)} is unreachable: {detail} "
            "(recording sessions cannot be read or changed until it is back; check REDIS_URL)"
        )
    return StateBackendError(f"Redis at {describe(client)} refused a command: {detail}")


@contextmanager
def redis_errors(client: Redis | AsyncRedis) -> Iterator[None]:
    """Turn redis-py exceptions raised inside the block into state errors (:func:`state_error`).

    Raises:
        StateUnavailableError: the server could not be reached or did not answer in time.
        StateBackendError: the server answered with an error.
    """
    try:
        yield
    except RedisError as exc:
        raise state_error(exc, client) from exc
