"""The session store on ``redis.asyncio``: what an async producer reads and writes.

It is :class:`~orchestrator.state.SessionStore`'s producer side (create, read, list, request a
stop, number an update, replay a dead letter) for event loops that must never block on Redis.
The Lua scripts, the key names, the script arguments and the reading of the answers are the sync
store's own (:mod:`orchestrator.state.plans`, :mod:`orchestrator.state.scripts`,
:class:`~orchestrator.state.keys.Keys`); only the round trips are awaited here. Workers and the
reconciler keep the sync store.
"""

from __future__ import annotations

import builtins
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar, cast

from redis.asyncio import Redis as AsyncRedis
from redis.asyncio.client import Pipeline as AsyncPipeline
from redis.asyncio.retry import Retry as AsyncRetry
from redis.backoff import ExponentialWithJitterBackoff
from redis.exceptions import ConnectionError

from orchestrator.settings import Settings
from orchestrator.state.backend import redis_errors
from orchestrator.state.changes import stop_args
from orchestrator.state.clock import DEFAULT_RESYNC_S
from orchestrator.state.codec import session_from_hash, text
from orchestrator.state.connection import (
    READ_BACKOFF_BASE_S,
    READ_BACKOFF_CAP_S,
    RedisOptions,
    close_async,
    connect_async,
)
from orchestrator.state.dead_letters import DeadLetter
from orchestrator.state.errors import CorruptSessionError, SessionNotFoundError
from orchestrator.state.events import EventLog, event_log_from_settings
from orchestrator.state.keys import DEFAULT_PREFIX, Keys
from orchestrator.state.plans import (
    IDENTITY_FIELDS,
    CreatePlan,
    identity_key,
    session_from_replies,
    stop_keys,
    stop_result,
)
from orchestrator.state.replication import AsyncReplicaAcks
from orchestrator.state.results import CreateResult, StopRequestResult
from orchestrator.state.scripts import COMPARE_AND_DELETE, CREATE, NEXT_SEQUENCE, REQUEST_STOP
from orchestrator.state.sequences import _REFUSING, SEQUENCE_FIELD_PREFIX, Numbered
from orchestrator.state.session import Phase, Session, Source
from orchestrator.state.store import (
    DEFAULT_HISTORY_LIMIT,
    DEFAULT_IDEMPOTENCY_TTL_S,
    DEFAULT_LIST_LIMIT,
    DEFAULT_RETENTION_S,
)

__all__ = ["AsyncRedisClock", "AsyncSessionStore"]

_T = TypeVar("_T")


class AsyncRedisClock:
    """Redis' ``TIME`` carried forward with ``time.monotonic()`` (as
    :class:`~orchestrator.state.RedisClock`), read again every ``resync_s`` seconds, awaited."""

    def __init__(self, redis: AsyncRedis, *, resync_s: float = DEFAULT_RESYNC_S) -> None:
        self._redis = redis
        self.resync_s = resync_s
        self._offset: float | None = None
        self._synced_at = 0.0

    async def __call__(self) -> float:
        """Now, unix seconds, on Redis' clock.

        Raises:
            StateUnavailableError: Redis has never answered this clock.
        """
        if self._offset is None or time.monotonic() - self._synced_at >= self.resync_s:
            before = time.monotonic()
            try:
                with redis_errors(self._redis):
                    seconds, micros = await self._redis.time()
            except Exception:
                if self._offset is None:
                    raise
            else:
                after = time.monotonic()
                self._offset = int(seconds) + int(micros) / 1e6 - (before + after) / 2
                self._synced_at = after
        assert self._offset is not None
        return time.monotonic() + self._offset


class AsyncSessionStore:
    """Sessions in Redis, for asyncio code (see the module's description).

    Args:
        redis: a ``redis.asyncio`` client.
        prefix, history_limit, retention_s, idempotency_ttl_s: as for ``SessionStore``.
        clock: awaitable unix time (default: :class:`AsyncRedisClock`).
        read_retries: times a read is sent again after a connection error.
        events: records lifecycle events in the scripts, as ``SessionStore`` does (a start
            cancelled before it was sent is ``recording.stopped``); ``None``: none.
        replica_acks: how the writes callers rely on wait for the replicas, as
            ``SessionStore.replica_acks`` (default: one acknowledgement when the primary has
            replicas, within 500 ms).
    """

    def __init__(
        self,
        redis: AsyncRedis,
        *,
        prefix: str = DEFAULT_PREFIX,
        history_limit: int = DEFAULT_HISTORY_LIMIT,
        retention_s: int = DEFAULT_RETENTION_S,
        idempotency_ttl_s: int = DEFAULT_IDEMPOTENCY_TTL_S,
        clock: Callable[[], Awaitable[float]] | None = None,
        read_retries: int = 3,
        events: EventLog | None = None,
        replica_acks: AsyncReplicaAcks | None = None,
    ) -> None:
        self.keys = Keys(prefix)
        self.events = events
        self.redis = redis
        self.history_limit = history_limit
        self.retention_s = retention_s
        self.idempotency_ttl_s = idempotency_ttl_s
        self.clock = clock if clock is not None else AsyncRedisClock(redis)
        self._retry = AsyncRetry(
            ExponentialWithJitterBackoff(base=READ_BACKOFF_BASE_S, cap=READ_BACKOFF_CAP_S),
            read_retries,
            supported_errors=(ConnectionError,),
        )
        self._create = redis.register_script(CREATE)
        self._compare_and_delete = redis.register_script(COMPARE_AND_DELETE)
        self._request_stop = redis.register_script(REQUEST_STOP)
        self._next_sequence = redis.register_script(NEXT_SEQUENCE)
        #: Waits for the replicas after a write a caller relies on (a create, a stop request).
        self.replica_acks = replica_acks or AsyncReplicaAcks(redis, self.keys)

    @classmethod
    def from_settings(cls, settings: Settings) -> AsyncSessionStore:
        """A store on a new async client of ``settings`` (as ``SessionStore.from_settings``)."""
        options = RedisOptions.from_settings(settings)
        client = connect_async(settings.redis_url, options)
        return cls(
            client,
            prefix=settings.redis_prefix,
            retention_s=settings.session_retention_s,
            idempotency_ttl_s=settings.session_retention_s,
            read_retries=options.read_retries,
            events=event_log_from_settings(settings),
            replica_acks=AsyncReplicaAcks.from_settings(
                client, Keys(settings.redis_prefix), settings
            ),
        )

    async def close(self) -> None:
        """Close the client's connections (and the Sentinels', for a ``sentinel://`` URL)."""
        await close_async(self.redis)

    async def create(self, **create: Any) -> CreateResult:
        """:meth:`SessionStore.create`, awaited (same arguments, same atomicity)."""
        plan = CreatePlan.build(
            self.keys,
            now=await self.clock(),
            history_limit=self.history_limit,
            idempotency_ttl_s=self.idempotency_ttl_s,
            events=self.events,
            **create,
        )
        for _ in range(2):
            with redis_errors(self.redis):
                reply = await self._create(keys=plan.keys, args=plan.args)
            done = plan.verdict(reply)
            if isinstance(done, CreateResult):
                return done
            existing_id, outcome = done
            existing = await self.get(existing_id)
            if existing is None:
                with redis_errors(self.redis):
                    await self._compare_and_delete(keys=plan.releasable, args=[existing_id])
                continue
            return plan.existing(existing, outcome)
        raise plan.exhausted()

    async def get(self, session_id: str, *, with_history: bool = False) -> Session | None:
        """:meth:`SessionStore.get`, awaited."""

        async def read() -> builtins.list[Any]:
            pipe = self.redis.pipeline(transaction=True)
            pipe.hgetall(self.keys.session(session_id))
            if with_history:
                pipe.lrange(self.keys.history(session_id), 0, -1)
            return await pipe.execute()

        try:
            replies = await self._read(read)
        except UnicodeDecodeError as exc:
            raise CorruptSessionError(session_id, "a stored value is not UTF-8 text") from exc
        return session_from_replies(session_id, replies, with_history=with_history)

    async def get_or_raise(self, session_id: str, *, with_history: bool = False) -> Session:
        """:meth:`SessionStore.get_or_raise`, awaited."""
        session = await self.get(session_id, with_history=with_history)
        if session is None:
            raise SessionNotFoundError(session_id)
        return session

    async def list(
        self, *, active_only: bool = False, limit: int = DEFAULT_LIST_LIMIT
    ) -> builtins.list[Session]:
        """Sessions, newest first (ids whose session expired are skipped; the sync store and
        the collector prune them)."""
        if limit < 1:
            raise ValueError(f"limit must be positive, got {limit}")

        async def read() -> builtins.list[Any]:
            if active_only:
                members = await cast("Awaitable[set[Any]]", self.redis.smembers(self.keys.active()))
                ids = sorted((text(m) for m in members), reverse=True)[:limit]
            else:
                raw = await self.redis.zrevrange(self.keys.sessions(), 0, limit - 1)
                ids = [text(i) for i in raw]
            pipe = self.redis.pipeline(transaction=False)
            for session_id in ids:
                pipe.hgetall(self.keys.session(session_id))
            return list(zip(ids, await pipe.execute(), strict=True))

        rows = await self._read(read)
        return [session_from_hash(i, raw) for i, raw in rows if raw]

    async def request_stop(
        self, session_id: str, *, why: str = "stop requested", source: Source = Source.PRODUCER
    ) -> StopRequestResult:
        """:meth:`SessionStore.request_stop`, awaited."""
        cancelled = (
            None if self.events is None else self.events.phase_change(session_id, Phase.STOPPED)
        )
        args = stop_args(
            now=await self.clock(),
            source=source,
            why=why,
            history_limit=self.history_limit,
            retention_s=self.retention_s,
            events=cancelled,
        )
        raw = await self._read(
            lambda: cast(
                "Awaitable[builtins.list[Any]]",
                self.redis.hmget(self.keys.session(session_id), IDENTITY_FIELDS),
            )
        )
        keys = stop_keys(self.keys, session_id, identity_key(self.keys, raw))
        with redis_errors(self.redis):
            reply = await self._request_stop(keys=keys, args=[session_id, args])
        return stop_result(session_id, reply)

    async def next_sequence(self, session_id: str, action: str) -> Numbered:
        """:meth:`UpdateSequences.next`, awaited."""
        with redis_errors(self.redis):
            number, phase = await self._next_sequence(
                keys=[self.keys.session(session_id)],
                args=[SEQUENCE_FIELD_PREFIX + action, _REFUSING],
            )
        if int(number) == -1:
            raise SessionNotFoundError(session_id)
        return Numbered(int(number), Phase(text(phase)))

    async def dead_letter(self, letter_id: str) -> DeadLetter | None:
        """:meth:`DeadLetterStore.get`, awaited."""
        raw = await self._read(lambda: self.redis.get(self.keys.dead_letter(letter_id)))
        return None if raw is None else DeadLetter.model_validate_json(text(raw))

    async def mark_replayed(self, letter: DeadLetter, task_id: str) -> None:
        """:meth:`DeadLetterStore.mark_replayed`, awaited (the same WATCH transaction)."""
        key = self.keys.dead_letter(letter.id)
        live_key = self.keys.dead_letter_live(letter.session_id, letter.action)

        async def append(pipe: AsyncPipeline) -> None:
            raw = await pipe.get(key)
            if raw is None:
                return
            current = DeadLetter.model_validate_json(text(raw))
            live_id = await pipe.get(live_key)
            updated = current.model_copy(update={"replays": [*current.replays, task_id]})
            pipe.multi()  # type: ignore[no-untyped-call]
            pipe.set(key, updated.model_dump_json(), xx=True)
            if live_id is not None and text(live_id) == current.id:
                pipe.delete(live_key)

        with redis_errors(self.redis):
            await self.redis.transaction(append, key, live_key)

    async def _read(self, read: Callable[[], Awaitable[_T]]) -> _T:
        """``read()`` (idempotent), again after a connection error, errors as state errors."""
        with redis_errors(self.redis):
            return cast(_T, await self._retry.call_with_retry(read, _ignore))


async def _ignore(error: Exception) -> None:
    return None
