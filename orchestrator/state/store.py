"""The session store: the durable state of recording sessions, in Redis.

Every change that touches more than one key, or that must not race, is one Lua script
(:mod:`orchestrator.state.scripts`); reads are pipelined. The store keeps no state of its own
besides its settings, so any number of producers, workers and reconcilers can share one Redis.

Redis should run with persistence (AOF) and ``maxmemory-policy noeviction``: an evicted session
hash is a lost recording session. The store copes with such a loss where it can (a stale
identity or idempotency key is released on the next create; a dangling id is pruned from the
lists) but cannot bring the session back.
"""

from __future__ import annotations

import builtins
import functools
from collections.abc import Callable, Iterable, Mapping, Sequence
from enum import Enum
from typing import Any, Final, TypeVar, cast

from redis import Redis

from orchestrator.krtc.enums import Action, Mode
from orchestrator.settings import DEFAULT_SESSION_RETENTION_S, Settings
from orchestrator.state.backend import redis_errors
from orchestrator.state.changes import (
    adopt_args,
    describe_changes,
    hash_pairs,
    stop_args,
    transition_args,
)
from orchestrator.state.clock import RedisClock
from orchestrator.state.codec import (
    attempts_field,
    history_from_list,
    session_from_hash,
    text,
)
from orchestrator.state.connection import ReadRetry, RedisOptions, connect
from orchestrator.state.errors import (
    CorruptSessionError,
    SessionNotFoundError,
)
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
from orchestrator.state.replication import ReplicaAcks
from orchestrator.state.results import (
    AdoptOutcome,
    AdoptResult,
    CreateResult,
    StopRequestResult,
    TransitionResult,
)
from orchestrator.state.scripts import Scripts
from orchestrator.state.session import (
    DEFAULT_MAX_RESTARTS,
    Desired,
    HistoryEntry,
    Phase,
    Session,
    Source,
)

__all__ = [
    "DEFAULT_HISTORY_LIMIT",
    "DEFAULT_RETENTION_S",
    "DEFAULT_IDEMPOTENCY_TTL_S",
    "DEFAULT_LIST_LIMIT",
    "UNSET",
    "SessionStore",
]

#: History entries kept per session (the oldest are dropped).
DEFAULT_HISTORY_LIMIT = 100
#: Seconds a finished session (and its history) is kept: ``KRTC_SESSION_RETENTION_S``. The
#: collector (:mod:`orchestrator.retention`) deletes it then; its keys also expire then.
DEFAULT_RETENTION_S = DEFAULT_SESSION_RETENTION_S
#: Seconds an idempotency key keeps naming the session it created (from the start).
DEFAULT_IDEMPOTENCY_TTL_S = DEFAULT_SESSION_RETENTION_S
#: Sessions returned by :meth:`SessionStore.list` unless told otherwise.
DEFAULT_LIST_LIMIT = 100


class _Unset(Enum):
    UNSET = "UNSET"

    def __repr__(self) -> str:
        return "UNSET"


#: "Leave this field as it is" (``None`` means "clear it").
UNSET: Final = _Unset.UNSET

_FINISHED = sorted(p.value for p in Phase.finished())

_T = TypeVar("_T")


class SessionStore:
    """Recording sessions in Redis.

    Args:
        redis: the client (with or without ``decode_responses``); pass it explicitly, the store
            keeps no global connection.
        prefix: the first segment of every key (setting ``redis_prefix``).
        history_limit: history entries kept per session.
        retention_s: seconds a finished session is kept.
        idempotency_ttl_s: seconds an idempotency key is remembered; at most ``retention_s``, so
            that a key never outlives the session it names.
        clock: the time in unix seconds (injectable for tests); by default Redis' own clock
            (:class:`RedisClock`), so that every process compares times on one clock.
        read_retry: how reads are retried after a connection error (writes never are: see
            :mod:`orchestrator.state.connection`).
        events: records lifecycle events in the changes' scripts (``None``: no event is
            recorded; see :mod:`orchestrator.state.events`).
        replica_acks: how the writes callers rely on wait for the replicas (default: one
            acknowledgement when the primary has replicas, within 500 ms); see
            :mod:`orchestrator.state.replication`.

    Raises:
        ValueError: a limit is not positive, or ``idempotency_ttl_s > retention_s``.
    """

    def __init__(
        self,
        redis: Redis,
        *,
        prefix: str = DEFAULT_PREFIX,
        history_limit: int = DEFAULT_HISTORY_LIMIT,
        retention_s: int = DEFAULT_RETENTION_S,
        idempotency_ttl_s: int = DEFAULT_IDEMPOTENCY_TTL_S,
        clock: Callable[[], float] | None = None,
        read_retry: ReadRetry | None = None,
        events: EventLog | None = None,
        replica_acks: ReplicaAcks | None = None,
    ) -> None:
        for name, value in (
            ("history_limit", history_limit),
            ("retention_s", retention_s),
            ("idempotency_ttl_s", idempotency_ttl_s),
        ):
            if value < 1:
                raise ValueError(f"{name} must be at least 1, got {value}")
        if idempotency_ttl_s > retention_s:
            raise ValueError(
                f"idempotency_ttl_s ({idempotency_ttl_s}) must not exceed retention_s "
                f"({retention_s}): a key would outlive the session it names"
            )
        self.keys = Keys(prefix)
        self.history_limit = history_limit
        self.retention_s = retention_s
        self.idempotency_ttl_s = idempotency_ttl_s
        self._redis = redis
        self._clock: Callable[[], float] = clock if clock is not None else RedisClock(redis)
        self._read_retry = read_retry or ReadRetry()
        self._scripts = Scripts.register(redis)
        self.events = events
        #: Waits for the replicas after a write a caller relies on (the producers' and jobs').
        self.replica_acks = replica_acks or ReplicaAcks(redis, self.keys)

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        prefix: str = DEFAULT_PREFIX,
        history_limit: int = DEFAULT_HISTORY_LIMIT,
        retention_s: int = DEFAULT_RETENTION_S,
        idempotency_ttl_s: int = DEFAULT_IDEMPOTENCY_TTL_S,
        clock: Callable[[], float] | None = None,
        **redis_options: Any,
    ) -> SessionStore:
        """A store on a new client for ``url`` (``redis://[:password@]host:port/db``).

        Args:
            url: the Redis URL (setting ``redis_url``, env ``REDIS_URL``).
            prefix, history_limit, retention_s, idempotency_ttl_s, clock: as for the class.
            **redis_options: ``redis.Redis`` arguments over the default options (see
                :func:`orchestrator.state.connection.connect`).
        """
        client = connect(url, **redis_options)
        return cls(
            client,
            prefix=prefix,
            history_limit=history_limit,
            retention_s=retention_s,
            idempotency_ttl_s=idempotency_ttl_s,
            clock=clock,
        )

    @classmethod
    def from_settings(cls, settings: Settings, **options: Any) -> SessionStore:
        """A store on a new client of ``settings`` (its Redis URL, prefix, timeouts, read
        retries, and session retention, which is also the idempotency keys' time to live);
        ``options`` as for the class."""
        redis_options = RedisOptions.from_settings(settings)
        # An idempotency key is remembered as long as a finished session is kept.
        options.setdefault("retention_s", settings.session_retention_s)
        options.setdefault("idempotency_ttl_s", options["retention_s"])
        options.setdefault("events", event_log_from_settings(settings))
        client = connect(settings.redis_url, redis_options)
        options.setdefault(
            "replica_acks", ReplicaAcks.from_settings(client, Keys(settings.redis_prefix), settings)
        )
        return cls(
            client,
            prefix=settings.redis_prefix,
            read_retry=ReadRetry(redis_options.read_retries),
            **options,
        )

    @property
    def clock(self) -> Callable[[], float]:
        """The store's clock (Redis' time unless one was injected): share it, so that every
        time the process writes or compares is on the deployment's one clock."""
        return self._clock

    @property
    def redis(self) -> Redis:
        """The Redis client (shared with the dead letters and the workers' counters)."""
        return self._redis

    def ping(self) -> None:
        """Check that Redis answers.

        Raises:
            StateUnavailableError: it does not.
        """
        self._read(self._redis.ping)

    # -- creating ------------------------------------------------------------------------------

    def create(
        self,
        *,
        app_id: str,
        cname: str,
        uid: str,
        mode: Mode,
        request: Mapping[str, Any] | None = None,
        idempotency_key: str | None = None,
        max_duration_s: int | None = None,
        restarted_from: str | None = None,
        restart_on_failure: bool = False,
        max_restarts: int = DEFAULT_MAX_RESTARTS,
        restarts: int = 0,
        source: Source = Source.PRODUCER,
        why: str = "start requested",
        outbox: Callable[[str], tuple[str, str]] | None = None,
        restart_of: Session | None = None,
    ) -> CreateResult:
        """Create a pending session, unless one exists already (spec D11).

        Atomic: of any number of concurrent creates for one identity, exactly one creates.

        Args:
            app_id, cname, uid: the identity; at most one unfinished session has it.
            mode: the recording mode.
            request: the start request body in wire form; it must not contain secrets.
            idempotency_key: the producer's key: the same key gives back the same session for
                ``idempotency_ttl_s`` seconds, even after it finished.
            max_duration_s: an upper bound on the recording's length, for the reconciler.
            restarted_from: the session this one restarts (restart policy, spec D14).
            restart_on_failure: restart the recording as a new session if it exits abnormally.
            max_restarts: restarts its chain may make in all.
            restarts: restarts its chain made before this session.
            source, why: recorded in the first history entry.
            outbox: given the new session's id, ``(list key, message)`` to push in the same
                script, only if the session is created (a queued start; see
                :mod:`orchestrator.tasking.message`).
            restart_of: create the session as the restart of this failed session (spec D14),
                in one atomic step that also links both (``restarted_from``/``restarted_to``)
                and reads the failed session's state at that moment: it must be ``failed``,
                not restarted yet, and still desired ``recording`` (a stop requested meanwhile
                means no restart).

        Returns:
            ``(session, created)``; when not created, the session that the idempotency key
            names, else the unfinished session that holds the identity.

        Raises:
            ValueError: app_id, cname or uid is empty, max_duration_s is not positive, or
                max_restarts or restarts is negative.
            IdempotencyKeyReusedError: the key names a session of another identity or mode.
            RestartRefusedError: ``restart_of`` may not be restarted (now).
            StateUnavailableError: Redis is unreachable.
        """
        plan = CreatePlan.build(
            self.keys,
            now=self._clock(),
            history_limit=self.history_limit,
            idempotency_ttl_s=self.idempotency_ttl_s,
            app_id=app_id,
            cname=cname,
            uid=uid,
            mode=mode,
            request=request,
            idempotency_key=idempotency_key,
            max_duration_s=max_duration_s,
            restarted_from=restarted_from,
            restart_on_failure=restart_on_failure,
            max_restarts=max_restarts,
            restarts=restarts,
            source=source,
            why=why,
            outbox=outbox,
            restart_of=restart_of,
            events=self.events,
        )
        for _ in range(2):
            with redis_errors(self._redis):
                reply = self._scripts.create(keys=plan.keys, args=plan.args)
            done = plan.verdict(reply)
            if isinstance(done, CreateResult):
                return done
            existing_id, outcome = done
            existing = self.get(existing_id)
            if existing is None:
                # The key names a session that is gone (evicted or deleted by hand): release
                # the key unless someone has taken it meanwhile, and try once more.
                with redis_errors(self._redis):
                    self._scripts.compare_and_delete(keys=plan.releasable, args=[existing_id])
                continue
            return plan.existing(existing, outcome)
        raise plan.exhausted()

    # -- reading -------------------------------------------------------------------------------

    def get(self, session_id: str, *, with_history: bool = False) -> Session | None:
        """The session, or ``None`` if there is none (never created, or expired).

        Args:
            session_id: the id.
            with_history: also read the history (in the same round trip).

        Raises:
            CorruptSessionError: the stored session does not decode.
            StateUnavailableError: Redis is unreachable.
        """

        def read() -> builtins.list[Any]:
            if not with_history:  # one command: no MULTI/EXEC to send and parse
                return [self._redis.hgetall(self.keys.session(session_id))]
            pipe = self._redis.pipeline(transaction=True)
            pipe.hgetall(self.keys.session(session_id))
            pipe.lrange(self.keys.history(session_id), 0, -1)
            return pipe.execute()

        try:
            replies = self._read(read)
        except UnicodeDecodeError as exc:
            # A client with decode_responses met bytes that are not UTF-8 (the message is
            # not kept: it quotes them).
            raise CorruptSessionError(session_id, "a stored value is not UTF-8 text") from exc
        return session_from_replies(session_id, replies, with_history=with_history)

    def get_or_raise(self, session_id: str, *, with_history: bool = False) -> Session:
        """Like :meth:`get`, but a missing session is an error.

        Raises:
            SessionNotFoundError: there is no such session.
        """
        session = self.get(session_id, with_history=with_history)
        if session is None:
            raise SessionNotFoundError(session_id)
        return session

    def history(self, session_id: str, limit: int | None = None) -> list[HistoryEntry]:
        """The history of a session, oldest first.

        Args:
            session_id: the id.
            limit: return only the newest ``limit`` entries.

        Raises:
            SessionNotFoundError: there is no such session.
        """
        if limit is not None and limit < 1:
            raise ValueError(f"limit must be positive, got {limit}")

        def read() -> builtins.list[Any]:
            pipe = self._redis.pipeline(transaction=True)
            pipe.exists(self.keys.session(session_id))
            pipe.lrange(self.keys.history(session_id), -limit if limit else 0, -1)
            return pipe.execute()

        exists, raw = self._read(read)
        if not exists:
            raise SessionNotFoundError(session_id)
        return history_from_list(session_id, raw)

    def active_ids(self) -> list[str]:
        """The ids of the unfinished sessions, oldest first."""
        members = cast(
            "set[str | bytes]", self._read(lambda: self._redis.smembers(self.keys.active()))
        )
        return sorted(text(m) for m in members)

    def find_active(self, app_id: str, cname: str, uid: str) -> Session | None:
        """The unfinished session of (appId, cname, uid), if there is one (spec D11)."""
        session_id = cast(
            "str | bytes | None",
            self._read(lambda: self._redis.get(self.keys.identity(app_id, cname, uid))),
        )
        if session_id is None:
            return None
        session = self.get(text(session_id))
        return None if session is None or session.is_finished else session

    def list(
        self, *, active_only: bool = False, limit: int = DEFAULT_LIST_LIMIT
    ) -> builtins.list[Session]:
        """Sessions, newest first.

        Ids whose session has expired are skipped and pruned from the index they came from.

        Args:
            active_only: only the unfinished sessions.
            limit: at most this many.
        """
        if limit < 1:
            raise ValueError(f"limit must be positive, got {limit}")
        found: builtins.list[Session] = []
        gone: builtins.list[str] = []
        if active_only:
            ids = self.active_ids()[::-1]
        start = 0
        while len(found) < limit:
            want = limit - len(found)
            if active_only:
                page = ids[start : start + want]
            else:
                raw = cast(
                    "builtins.list[str | bytes]",
                    self._read(
                        functools.partial(
                            self._redis.zrevrange, self.keys.sessions(), start, start + want - 1
                        )
                    ),
                )
                page = [text(i) for i in raw]
            if not page:
                break
            start += len(page)
            loaded, missing = self._load(page)
            found += loaded
            gone += missing
        # Pruned only now: removing ids from the sorted set while paging through it by rank
        # would shift the ranks, and the page after a pruned id would skip as many sessions.
        # Removing members is idempotent: safe to send again like a read.
        if gone:
            if active_only:
                self._read(lambda: self._redis.srem(self.keys.active(), *gone))
            else:
                self._read(lambda: self._redis.zrem(self.keys.sessions(), *gone))
        return found

    # -- changing ------------------------------------------------------------------------------

    def transition(
        self,
        session_id: str,
        *,
        to: Phase | None = None,
        allowed_from: Iterable[Phase] | None = None,
        why: str = "",
        source: Source = Source.TASK,
        sid: str | None | _Unset = UNSET,
        desired: Desired | _Unset = UNSET,
        last_status: int | None | _Unset = UNSET,
        files: Sequence[Mapping[str, Any]] | None | _Unset = UNSET,
        last_error: Mapping[str, Any] | None | _Unset = UNSET,
        restarted_to: str | None | _Unset = UNSET,
        record: bool = True,
        identity: tuple[str, str, str] | None = None,
        count_attempt: str | None = None,
    ) -> TransitionResult:
        """Compare-and-set the phase, update fields and append a history entry, atomically.

        A session in a final phase never leaves it (the change of phase is refused; field
        updates still apply). Reaching a final phase releases the identity and starts the
        retention period.

        Args:
            session_id: the session.
            to: the new phase (``None``: keep the phase).
            allowed_from: apply only if the session is in one of these phases (``None``: any).
            why, source: recorded in the history entry.
            sid, desired, last_status, files, last_error, restarted_to: new values; ``UNSET``
                leaves a field as it is and ``None`` clears it.
            record: append a history entry (set to false for routine updates that change no
                phase, such as a poll that saw the same status).
            identity: the session's (appId, cname, uid) when the caller has it (saves a read).
            count_attempt: an action whose attempt counter is bumped, if the change applies
                (the count is in the returned session's ``attempts``).

        Raises:
            SessionNotFoundError: there is no such session.
        """
        candidates: dict[str, Any] = {
            "sid": sid,
            "desired": desired,
            "last_status": last_status,
            "files": files if files is None or files is UNSET else [dict(f) for f in files],
            "last_error": (
                last_error if last_error is None or last_error is UNSET else dict(last_error)
            ),
            "restarted_to": restarted_to,
        }
        changes = {k: v for k, v in candidates.items() if v is not UNSET}
        now = self._clock()
        entry = None
        if record:
            entry = HistoryEntry(
                at=now, what=describe_changes(changes), why=why, source=source
            ).model_dump(mode="json")
        args = transition_args(
            now=now,
            to=to,
            allowed_from=allowed_from,
            changes=changes,
            entry=entry,
            history_limit=self.history_limit,
            retention_s=self.retention_s,
            incr=None if count_attempt is None else attempts_field(count_attempt),
            events=None if self.events is None else self.events.phase_change(session_id, to),
        )
        session_key = self.keys.session(session_id)
        keys = [session_key, self.keys.history(session_id), self.keys.active()]
        identity_key = self.keys.identity(*identity) if identity else self._identity_key(session_id)
        if identity_key is not None:
            keys.append(identity_key)
        keys.append(self.keys.finished())
        with redis_errors(self._redis):
            applied, found, flat = self._scripts.transition(keys=keys, args=[session_id, args])
        if int(applied) == -1:
            raise SessionNotFoundError(session_id)
        session = session_from_hash(session_id, hash_pairs(flat))
        return TransitionResult(bool(int(applied)), Phase(text(found)), session)

    def request_stop(
        self, session_id: str, *, why: str = "stop requested", source: Source = Source.PRODUCER
    ) -> StopRequestResult:
        """Record that the recording should stop (spec D13); cancel it if never started.

        Returns:
            what was done; :attr:`StopRequestResult.needs_stop_call` says whether a stop task
            must be enqueued.

        Raises:
            SessionNotFoundError: there is no such session.
        """
        args = stop_args(
            now=self._clock(),
            source=source,
            why=why,
            history_limit=self.history_limit,
            retention_s=self.retention_s,
            events=self.phase_event(session_id, Phase.STOPPED),
        )
        keys = stop_keys(self.keys, session_id, self._identity_key(session_id))
        with redis_errors(self._redis):
            reply = self._scripts.request_stop(keys=keys, args=[session_id, args])
        return stop_result(session_id, reply)

    def adopt_sid(
        self,
        session_id: str,
        sid: str,
        *,
        why: str,
        identity: tuple[str, str, str] | None = None,
        source: Source = Source.TASK,
    ) -> AdoptResult:
        """Store the sid of a start answer, whatever the session did meanwhile.

        An unfinished session without a sid (pending, starting, or orphaned by a concurrent
        409) moves to ``recording`` with it. A finished session keeps its phase but gets the
        sid if it had none. The result says when the recording must be stopped: the session
        is finished or gone, it already had another sid, or its stop was requested meanwhile.

        Args:
            session_id: the session.
            sid: the sid the start answer gave.
            why: for the history.
            identity: the session's (appId, cname, uid) when the caller has it.
            source: who is storing it.
        """
        args = adopt_args(
            sid=sid,
            now=self._clock(),
            source=source,
            why=why,
            history_limit=self.history_limit,
            retention_s=self.retention_s,
            events=self.phase_event(session_id, Phase.RECORDING),
        )
        keys = [self.keys.session(session_id), self.keys.history(session_id), self.keys.active()]
        if identity is not None:
            keys.append(self.keys.identity(*identity))
        with redis_errors(self._redis):
            outcome, found, flat = self._scripts.adopt_sid(keys=keys, args=[session_id, args])
        result = AdoptOutcome(text(outcome))
        if result == AdoptOutcome.MISSING:
            return AdoptResult(result, None, None)
        session = session_from_hash(session_id, hash_pairs(flat))
        return AdoptResult(result, Phase(text(found)), session)

    def record_attempt(self, session_id: str, action: Action | str) -> int:
        """Count one call of ``action`` for the session and return the count so far.

        Raises:
            SessionNotFoundError: there is no such session.
        """
        name = Action(action).value if isinstance(action, Action) else action
        with redis_errors(self._redis):
            count = self._scripts.record_attempt(
                keys=[self.keys.session(session_id)],
                args=[attempts_field(name), repr(self._clock())],
            )
        if int(count) == -1:
            raise SessionNotFoundError(session_id)
        return int(count)

    def note(
        self, session_id: str, what: str, *, why: str = "", source: Source = Source.TASK
    ) -> None:
        """Append a history entry that changes nothing else (an attempt, a retry, an alert)."""
        now = self._clock()
        entry = HistoryEntry(at=now, what=what, why=why, source=source).model_dump(mode="json")
        args = transition_args(
            now=now,
            to=None,
            allowed_from=None,
            changes={},
            entry=entry,
            history_limit=self.history_limit,
            retention_s=self.retention_s,
        )
        keys = [self.keys.session(session_id), self.keys.history(session_id), self.keys.active()]
        with redis_errors(self._redis):
            applied, _, _ = self._scripts.transition(keys=keys, args=[session_id, args])
        if int(applied) == -1:
            raise SessionNotFoundError(session_id)

    # -- helpers -------------------------------------------------------------------------------

    def phase_event(self, session_id: str, to: Phase) -> dict[str, Any] | None:
        """The ``events`` parameter of a script that may move the session to ``to`` (``None``
        when events are off): the scripts that decide the phase themselves (stop, adopt)."""
        return None if self.events is None else self.events.phase_change(session_id, to)

    def _identity_key(self, session_id: str) -> str | None:
        raw = cast(
            "builtins.list[str | bytes | None]",
            self._read(lambda: self._redis.hmget(self.keys.session(session_id), IDENTITY_FIELDS)),
        )
        return identity_key(self.keys, raw)

    def read_hashes(
        self, ids: Sequence[str]
    ) -> builtins.list[dict[str, str] | dict[bytes, bytes] | None]:
        """The stored hashes of ``ids``, not decoded (``None``: no such session), in order; one
        round trip (a pipeline without ``MULTI``: each hash is read atomically, not the set).

        For callers that read many sessions and decode each on its own (the reconciler: a
        record that does not decode must not stop the others), with
        :func:`orchestrator.state.codec.session_from_hash`.

        Raises:
            StateUnavailableError: Redis is unreachable.
            UnicodeDecodeError: a stored value is not UTF-8 (a client with
                ``decode_responses``); which one is not known: read them one by one.
        """

        def read() -> builtins.list[Any]:
            pipe = self._redis.pipeline(transaction=False)
            for session_id in ids:
                pipe.hgetall(self.keys.session(session_id))
            return pipe.execute()

        return [raw or None for raw in self._read(read)] if ids else []

    def get_many(self, ids: builtins.list[str]) -> builtins.list[Session]:
        """The sessions of ``ids`` that exist, in the order given (one round trip)."""
        return self._load(ids)[0]

    def _load(self, ids: builtins.list[str]) -> tuple[builtins.list[Session], builtins.list[str]]:
        """The sessions of ``ids`` that exist, and the ids whose session is gone."""

        def read() -> builtins.list[Any]:
            pipe = self._redis.pipeline(transaction=False)
            for session_id in ids:
                pipe.hgetall(self.keys.session(session_id))
            return pipe.execute()

        replies = self._read(read)
        found: builtins.list[Session] = []
        gone: builtins.list[str] = []
        for session_id, raw in zip(ids, replies, strict=True):
            if raw:
                found.append(session_from_hash(session_id, raw))
            else:
                gone.append(session_id)
        return found, gone

    def _read(self, read: Callable[[], _T]) -> _T:
        """``read()`` (idempotent: nothing but reads), retried after a connection error, with
        redis-py's exceptions turned into state errors."""
        with redis_errors(self._redis):
            return self._read_retry(read)
