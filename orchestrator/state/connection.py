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

High availability: ``REDIS_URL`` may name Redis Sentinels instead of a server, in Celery's form
``sentinel://[:password@]host1:26379;sentinel://host2:26379;.../db`` (:class:`SentinelUrl`).
The client is then redis-py's ``Sentinel(...).master_for(master_name)``: every new connection
asks the Sentinels where the primary is, so after a failover the next command reaches the new
primary (until the Sentinels know it, commands fail with ``StateUnavailableError``).
:func:`connect_async` does the same with ``redis.asyncio.sentinel.Sentinel`` (close its clients
with :func:`close_async`).
"""

from __future__ import annotations

import re
import socket
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, TypeVar
from urllib.parse import quote, unquote, urlsplit

from redis import Redis
from redis.asyncio import Redis as AsyncRedis
from redis.asyncio.retry import Retry as AsyncRetry
from redis.asyncio.sentinel import Sentinel as AsyncSentinel
from redis.asyncio.sentinel import SentinelConnectionPool as AsyncSentinelConnectionPool
from redis.backoff import ExponentialWithJitterBackoff, NoBackoff
from redis.exceptions import ConnectionError
from redis.retry import Retry
from redis.sentinel import Sentinel, SentinelConnectionPool

from orchestrator.settings import (
    DEFAULT_REDIS_CONNECT_TIMEOUT_S,
    DEFAULT_REDIS_HEALTH_CHECK_INTERVAL_S,
    DEFAULT_REDIS_MASTER_NAME,
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
    "SentinelUrl",
    "broker_url",
    "close_async",
    "connect",
    "connect_async",
    "is_sentinel_url",
    "redis_client",
    "redis_py_url",
    "same_server",
]

#: The scheme of a Sentinel address in ``REDIS_URL`` (Celery's form; one per Sentinel).
SENTINEL_SCHEME = "sentinel"
#: Port of a Sentinel whose address names none.
DEFAULT_SENTINEL_PORT = 26379

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
        master_name: the primary the Sentinels monitor (a ``sentinel://`` URL only).
        sentinel_password: the Sentinels' password (``None``: the data nodes' password, from
            the URL).
    """

    connect_timeout_s: float = DEFAULT_REDIS_CONNECT_TIMEOUT_S
    socket_timeout_s: float = DEFAULT_REDIS_SOCKET_TIMEOUT_S
    health_check_interval_s: int = DEFAULT_REDIS_HEALTH_CHECK_INTERVAL_S
    read_retries: int = DEFAULT_REDIS_READ_RETRIES
    master_name: str = DEFAULT_REDIS_MASTER_NAME
    sentinel_password: str | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> RedisOptions:
        """The options of ``settings``."""
        return cls(
            connect_timeout_s=settings.redis_connect_timeout_s,
            socket_timeout_s=settings.redis_socket_timeout_s,
            health_check_interval_s=settings.redis_health_check_interval_s,
            read_retries=settings.redis_read_retries,
            master_name=settings.redis_master_name,
            sentinel_password=(
                settings.redis_sentinel_password.get_secret_value()
                if settings.redis_sentinel_password is not None
                else None
            ),
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

    def sentinel_kwargs(self, url: SentinelUrl) -> dict[str, Any]:
        """The options of the clients that ask the Sentinels (redis-py's ``sentinel_kwargs``):
        the same timeouts, the Sentinels' password, and no retry.

        ``retry`` is ``None``, not a ``Retry``: redis-py's connections (sync and asyncio alike)
        then retry nothing, whereas its clients' default retries a connect timeout 3 times
        with a backoff of up to 10 s (about 6 s per lookup while one Sentinel's host is down).
        The manager asks the next Sentinel anyway. ``None`` suits every consumer of these
        options: :func:`connect`, :func:`connect_async`, kombu's and the result backend's sync
        ``Sentinel`` (workers, beat, producers) and Flower's ``redis.asyncio`` one (a sync
        ``Retry`` there would break it; Flower only fills in ``retry`` when it is absent).
        """
        kwargs: dict[str, Any] = {
            "socket_connect_timeout": self.connect_timeout_s,
            "socket_timeout": self.socket_timeout_s,
            "socket_keepalive": True,
            "socket_keepalive_options": _keepalive_options(),
            "retry": None,
        }
        password = self.sentinel_password if self.sentinel_password is not None else url.password
        if password:
            kwargs["password"] = password
        return kwargs

    def sentinel_transport_options(self, url: SentinelUrl) -> dict[str, Any]:
        """kombu's and the result backend's transport options for a Sentinel URL."""
        return {"master_name": self.master_name, "sentinel_kwargs": self.sentinel_kwargs(url)}


@dataclass(frozen=True)
class SentinelUrl:
    """A ``sentinel://`` ``REDIS_URL``: the Sentinels' addresses, the data nodes' credentials
    and the database.

    Celery's form is accepted: ``sentinel://[[user]:password@]host[:port][/db]`` for each
    Sentinel, separated by ``;``. The credentials (of the data nodes) may be given on any one
    address and the database on any (usually the last); when given more than once they must
    agree.

    Attributes:
        hosts: ``(host, port)`` of each Sentinel, in the order given.
        password: the data nodes' password, if any.
        username: the data nodes' ACL user, if any.
        db: the database number.
    """

    hosts: tuple[tuple[str, int], ...]
    password: str | None = None
    username: str | None = None
    db: int = 0

    @classmethod
    def parse(cls, url: str) -> SentinelUrl:
        """Parse ``url``.

        Raises:
            ValueError: not a Sentinel URL, no address, or contradicting parts (the message
                never repeats a password).
        """
        hosts: list[tuple[str, int]] = []
        found: dict[str, set[str]] = {"password": set(), "username": set(), "db": set()}
        for chunk in (part.strip() for part in url.split(";")):
            if not chunk:
                continue
            parts = urlsplit(chunk)
            if parts.scheme != SENTINEL_SCHEME or not parts.hostname:
                raise ValueError(
                    "a Sentinel REDIS_URL is sentinel://[:password@]host:port[/db], one per "
                    "Sentinel, separated by ';'"
                )
            hosts.append((parts.hostname, parts.port or DEFAULT_SENTINEL_PORT))
            if parts.password:
                found["password"].add(unquote(parts.password))
            if parts.username:
                found["username"].add(unquote(parts.username))
            db = parts.path.strip("/")
            if db:
                if not db.isdigit():
                    raise ValueError(f"the database of a Sentinel REDIS_URL is a number: {db!r}")
                found["db"].add(str(int(db)))
        if not hosts:
            raise ValueError("a Sentinel REDIS_URL names at least one Sentinel")
        for name, values in found.items():
            if len(values) > 1:
                raise ValueError(f"the addresses of a Sentinel REDIS_URL give different {name}s")
        return cls(
            hosts=tuple(hosts),
            password=next(iter(found["password"]), None),
            username=next(iter(found["username"]), None),
            db=int(next(iter(found["db"]), "0")),
        )

    def for_celery(self) -> str:
        """The URL again, with the credentials and the database on every address: kombu reads
        them from the first address, Celery's result backend from the first, and the issue's
        form puts the database on the last."""
        auth = ""
        if self.password or self.username:
            auth = f"{quote(self.username or '', safe='')}:{quote(self.password or '', safe='')}@"
        return ";".join(f"{SENTINEL_SCHEME}://{auth}{h}:{p}/{self.db}" for h, p in self.hosts)


#: ``ssl_cert_reqs=CERT_...`` in a URL's query (Celery's spelling), with the level.
_CELERY_CERT_REQS = re.compile(r"([?&]ssl_cert_reqs=)CERT_(NONE|OPTIONAL|REQUIRED)(?=&|#|$)", re.I)


def redis_py_url(url: str) -> str:
    """``url`` with ``ssl_cert_reqs=CERT_REQUIRED`` (``CERT_OPTIONAL``, ``CERT_NONE``) spelled
    as redis-py takes it, ``required`` (``optional``, ``none``); anything else as it is.

    Celery's docs spell it ``CERT_REQUIRED``, and its broker and result backend take both
    spellings, but redis-py refuses that one ("Invalid SSL Certificate Requirements Flag") on
    the first command. So a ``REDIS_URL`` copied from Celery's docs serves the store too.
    """
    return _CELERY_CERT_REQS.sub(lambda m: m.group(1) + m.group(2).lower(), url)


def is_sentinel_url(url: str) -> bool:
    """Whether ``url`` names Sentinels (``sentinel://...``) rather than a Redis server."""
    return url.strip().startswith(f"{SENTINEL_SCHEME}://")


def broker_url(url: str) -> str:
    """``url`` as Celery's broker and result backend should get it (see
    :meth:`SentinelUrl.for_celery`); any other URL as it is."""
    return SentinelUrl.parse(url).for_celery() if is_sentinel_url(url) else url


def same_server(client: Redis | AsyncRedis, url: str, master_name: str | None = None) -> bool:
    """Whether ``client`` writes to the server (or Sentinel-monitored primary) and database of
    ``url``.

    Args:
        client: a client built by :func:`connect`.
        url: a Redis or Sentinel URL.
        master_name: the primary's name, for a Sentinel URL.
    """
    from redis.connection import parse_url

    pool = client.connection_pool
    ours = pool.connection_kwargs
    if is_sentinel_url(url):
        try:
            theirs = SentinelUrl.parse(url)
        except ValueError:
            return False
        return (
            isinstance(pool, SentinelConnectionPool | AsyncSentinelConnectionPool)
            and pool.service_name == (master_name or DEFAULT_REDIS_MASTER_NAME)
            and int(ours.get("db", 0)) == theirs.db
        )
    if isinstance(pool, SentinelConnectionPool | AsyncSentinelConnectionPool):
        return False
    try:
        broker = parse_url(url)  # type: ignore[no-untyped-call]
    except ValueError:
        return False
    return (
        broker.get("host", "localhost") == ours.get("host", "localhost")
        and int(broker.get("port", 6379)) == int(ours.get("port", 6379))
        and int(broker.get("db", 0)) == int(ours.get("db", 0))
        and broker.get("path") == ours.get("path")
    )


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
        url: ``redis://[:password@]host:port/db``, ``rediss://...`` (TLS; certificate options
            in the query: ``ssl_cert_reqs``, ``ssl_ca_certs``, ``ssl_certfile``,
            ``ssl_keyfile``; ``ssl_cert_reqs=CERT_REQUIRED``, Celery's spelling, works too:
            :func:`redis_py_url`), ``unix:///path``, or Sentinels (:class:`SentinelUrl`):
            then a client that follows the primary ``options.master_name``.
        options: timeouts and health checks (default: the defaults of the settings).
        decode_responses: answer ``str`` instead of ``bytes``.
        **overrides: more ``redis.Redis`` arguments, winning over ``options``.

    Raises:
        ValueError: ``url`` is not a Redis URL.
    """
    options = options or RedisOptions()
    if is_sentinel_url(url):
        hosts, sentinel_kwargs, kwargs = _sentinel_args(
            url, options, {"decode_responses": decode_responses, **overrides}
        )
        manager = Sentinel(  # type: ignore[no-untyped-call]
            hosts, sentinel_kwargs=sentinel_kwargs, **kwargs
        )
        client: Redis = manager.master_for(  # type: ignore[no-untyped-call]
            options.master_name, redis_class=Redis
        )
        return client
    kwargs = _client_kwargs(url, options, overrides)
    return Redis.from_url(redis_py_url(url), decode_responses=decode_responses, **kwargs)


def connect_async(
    url: str,
    options: RedisOptions | None = None,
    *,
    decode_responses: bool = True,
    **overrides: Any,
) -> AsyncRedis:
    """A ``redis.asyncio`` client of ``url``, with the same options as :func:`connect`: a
    ``sentinel://`` URL gives a client that follows the primary ``options.master_name``
    (redis-py's ``redis.asyncio.sentinel.Sentinel``). Close it with :func:`close_async`.

    Raises:
        ValueError: ``url`` is not a Redis URL.
    """
    options = options or RedisOptions()
    overrides = {"retry": AsyncRetry(NoBackoff(), 0), **overrides}
    if is_sentinel_url(url):
        hosts, sentinel_kwargs, kwargs = _sentinel_args(
            url, options, {"decode_responses": decode_responses, **overrides}
        )
        manager = AsyncSentinel(  # type: ignore[no-untyped-call]
            hosts, sentinel_kwargs=sentinel_kwargs, **kwargs
        )
        sentinel_client: AsyncRedis = manager.master_for(
            options.master_name, redis_class=AsyncRedis
        )
        return sentinel_client
    kwargs = _client_kwargs(url, options, overrides)
    client: AsyncRedis = AsyncRedis.from_url(
        redis_py_url(url), decode_responses=decode_responses, **kwargs
    )
    return client


async def close_async(client: AsyncRedis) -> None:
    """Close ``client``'s connections, and for a Sentinel client those to the Sentinels too
    (the client owns its pool; the Sentinels' clients belong to the pool's manager)."""
    await client.aclose()
    manager = getattr(client.connection_pool, "sentinel_manager", None)
    for sentinel in getattr(manager, "sentinels", ()):
        await sentinel.aclose()


def _sentinel_args(
    url: str, options: RedisOptions, overrides: dict[str, Any]
) -> tuple[list[tuple[str, int]], dict[str, Any], dict[str, Any]]:
    """What redis-py's ``Sentinel`` (sync or asyncio) is built with for ``url``: the Sentinels'
    addresses, the options of the clients that ask them, and the data nodes' connection options.

    The clients that ask the Sentinels get no retry (:meth:`RedisOptions.sentinel_kwargs`): the
    manager asks the next Sentinel anyway, and redis-py's default (3 retries, backoff up to
    10 s) would hold every new connection for seconds while one Sentinel is down.
    """
    sentinels = SentinelUrl.parse(url)
    kwargs = options.client_kwargs()
    kwargs.update(overrides)
    kwargs["db"] = sentinels.db
    if sentinels.password:
        kwargs["password"] = sentinels.password
    if sentinels.username:
        kwargs["username"] = sentinels.username
    return list(sentinels.hosts), options.sentinel_kwargs(sentinels), kwargs


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
