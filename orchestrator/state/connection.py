"""The project's Redis clients, all built here from the settings.

Every client gets a connect timeout, a socket timeout, TCP keepalive and a health check of idle
pooled connections, so that no thread waits for minutes on a dead server or a half-open
connection: a command fails with ``StateUnavailableError`` after at most
:attr:`RedisOptions.longest_wait_s`.

Retries are decided per command, not per client. redis-py's client-level ``Retry`` sends any
command again after a connection error or a timeout, and it cannot tell whether the first one ran
(the answer may be what was lost). Most of our writes are Lua scripts that are not safe to run
twice: ``RECORD_ATTEMPT`` and the metrics counters add one again, ``TRANSITION`` and
``REQUEST_STOP`` answer "not applied" to their own retry (so the caller would skip a restart or a
stop), the rate limiter reserves a second slot, and the round gate would count a batch twice.
(``CREATE`` and ``COMPARE_AND_DELETE`` would survive it, but that is no reason for a rule with
exceptions.) So every client is built with no client-level retry (redis-py 6 retries every
command 3 times by default), and reads, which are idempotent, are retried where they are made,
with :class:`ReadRetry`: after a *connection error* only (reset, refused, closed), which fails
fast, never after a timeout, which would double the wait. A connection that died while idle in
the pool is replaced before anything is sent on it (redis-py checks it), so writes recover from
a Redis restart too.
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, TypeVar

from redis import Redis
from redis.asyncio import Redis as AsyncRedis
from redis.asyncio.retry import Retry as AsyncRetry
from redis.backoff import ExponentialWithJitterBackoff, NoBackoff
from redis.exceptions import ConnectionError
from redis.retry import Retry

from orchestrator.settings import (
    DEFAULT_REDIS_CONNECT_TIMEOUT_S,
    DEFAULT_REDIS_HEALTH_CHECK_INTERVAL_S,
    DEFAULT_REDIS_READ_RETRIES,
    DEFAULT_REDIS_SOCKET_TIMEOUT_S,
    Settings,
)

__all__ = [
    "READ_BACKOFF_BASE_S",
    "READ_BACKOFF_CAP_S",
    "KEEPALIVE_IDLE_S",
    "RedisOptions",
    "ReadRetry",
    "connect",
    "connect_async",
    "redis_client",
]

T = TypeVar("T")

#: Seconds before the first retry of a read (exponential with full jitter from there).
READ_BACKOFF_BASE_S = 0.05
#: Longest pause between two attempts at a read.
READ_BACKOFF_CAP_S = 0.5
#: Seconds a connection is idle before TCP keepalive probes it (then every 10 s, 3 probes).
KEEPALIVE_IDLE_S = 30


def _keepalive_options() -> dict[int, int]:
    """Keepalive timings where the platform names them (Linux does; others keep theirs)."""
    wanted = {"TCP_KEEPIDLE": KEEPALIVE_IDLE_S, "TCP_KEEPINTVL": 10, "TCP_KEEPCNT": 3}
    return {getattr(socket, name): value for name, value in wanted.items() if hasattr(socket, name)}


@dataclass(frozen=True)
class RedisOptions:
    """How the project talks to Redis (settings ``redis_*``).

    Attributes:
        connect_timeout_s: seconds to open a connection.
        socket_timeout_s: seconds to wait for one answer.
        health_check_interval_s: seconds a pooled connection may be idle before a PING checks
            it (0: never).
        read_retries: times a read is sent again after a connection error.
    """

    connect_timeout_s: float = DEFAULT_REDIS_CONNECT_TIMEOUT_S
    socket_timeout_s: float = DEFAULT_REDIS_SOCKET_TIMEOUT_S
    health_check_interval_s: int = DEFAULT_REDIS_HEALTH_CHECK_INTERVAL_S
    read_retries: int = DEFAULT_REDIS_READ_RETRIES

    @classmethod
    def from_settings(cls, settings: Settings) -> RedisOptions:
        """The options of ``settings``."""
        return cls(
            connect_timeout_s=settings.redis_connect_timeout_s,
            socket_timeout_s=settings.redis_socket_timeout_s,
            health_check_interval_s=settings.redis_health_check_interval_s,
            read_retries=settings.redis_read_retries,
        )

    def with_timeouts(self, seconds: float) -> RedisOptions:
        """These options with both timeouts set to ``seconds`` (for clients that must not wait,
        such as the metrics recorder's)."""
        return replace(self, connect_timeout_s=seconds, socket_timeout_s=seconds)

    @property
    def longest_wait_s(self) -> float:
        """The longest one command (or read, with its retries) waits before it fails.

        A timeout ends it (connect plus answer, at worst); connection errors come at once and
        only cost the pauses between retries.
        """
        return (
            self.connect_timeout_s
            + self.socket_timeout_s
            + self.read_retries * (READ_BACKOFF_CAP_S)
        )

    def client_kwargs(self) -> dict[str, Any]:
        """Keyword arguments of ``redis.Redis`` (and ``from_url``)."""
        return {
            "socket_connect_timeout": self.connect_timeout_s,
            "socket_timeout": self.socket_timeout_s,
            "socket_keepalive": True,
            "socket_keepalive_options": _keepalive_options(),
            "health_check_interval": self.health_check_interval_s,
            # No command is sent twice by the client: see the module's description.
            "retry": Retry(NoBackoff(), 0),
        }

    def transport_options(self) -> dict[str, Any]:
        """The same limits as kombu's Redis transport options (the broker's connections)."""
        options: dict[str, Any] = {
            "socket_connect_timeout": self.connect_timeout_s,
            "socket_timeout": self.socket_timeout_s,
            "socket_keepalive": True,
            "socket_keepalive_options": _keepalive_options(),
        }
        # kombu also runs its own check every that many seconds: 0 would spin; keep its default.
        if self.health_check_interval_s > 0:
            options["health_check_interval"] = self.health_check_interval_s
        return options


class ReadRetry:
    """Runs an idempotent read again after a connection error, with a short jittered backoff.

    Timeouts are not retried (the wait would double), nor is anything that changes data.

    Args:
        retries: attempts after the first.
    """

    def __init__(self, retries: int = DEFAULT_REDIS_READ_RETRIES) -> None:
        if retries < 0:
            raise ValueError(f"retries must not be negative, got {retries}")
        self.retries = retries
        self._retry = Retry(
            ExponentialWithJitterBackoff(base=READ_BACKOFF_BASE_S, cap=READ_BACKOFF_CAP_S),
            retries,
            supported_errors=(ConnectionError,),
        )

    def __call__(self, read: Callable[[], T]) -> T:
        """``read()``, again after each connection error while retries are left.

        Raises:
            redis.exceptions.RedisError: the last error (callers turn it into a state error).
        """
        # redis-py has already closed the failed connection: the next attempt opens a new one.
        return self._retry.call_with_retry(read, _ignore)


def _ignore(error: Exception) -> None:
    return None


def connect(
    url: str,
    options: RedisOptions | None = None,
    *,
    decode_responses: bool = True,
    **overrides: Any,
) -> Redis:
    """A client of ``url`` with ``options`` (the one way this project builds a Redis client).

    Args:
        url: ``redis://[:password@]host:port/db``, ``rediss://...`` or ``unix:///path``.
        options: timeouts and health checks (default: the defaults of the settings).
        decode_responses: answer ``str`` instead of ``bytes``.
        **overrides: more ``redis.Redis`` arguments, winning over ``options``.

    Raises:
        ValueError: ``url`` is not a Redis URL.
    """
    kwargs = _client_kwargs(url, options, overrides)
    return Redis.from_url(url, decode_responses=decode_responses, **kwargs)


def connect_async(
    url: str,
    options: RedisOptions | None = None,
    *,
    decode_responses: bool = True,
    **overrides: Any,
) -> AsyncRedis:
    """A ``redis.asyncio`` client of ``url``, with the same options as :func:`connect`."""
    kwargs = _client_kwargs(url, options, {"retry": AsyncRetry(NoBackoff(), 0), **overrides})
    client: AsyncRedis = AsyncRedis.from_url(url, decode_responses=decode_responses, **kwargs)
    return client


def _client_kwargs(
    url: str, options: RedisOptions | None, overrides: dict[str, Any]
) -> dict[str, Any]:
    kwargs = (options or RedisOptions()).client_kwargs()
    if url.startswith("unix://"):
        # A Unix socket has no TCP keepalive (redis-py refuses the options there).
        for name in ("socket_keepalive", "socket_keepalive_options"):
            kwargs.pop(name)
    kwargs.update(overrides)
    return kwargs


def redis_client(settings: Settings, *, decode_responses: bool = True, **overrides: Any) -> Redis:
    """A client of ``settings.redis_url`` with the options of ``settings`` (see :func:`connect`)."""
    return connect(
        settings.redis_url,
        RedisOptions.from_settings(settings),
        decode_responses=decode_responses,
        **overrides,
    )
