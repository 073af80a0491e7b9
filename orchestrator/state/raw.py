"""Session records as stored: read and released without decoding them.

For records this code cannot decode (corrupt, or written by a newer version: see
:mod:`orchestrator.state.schema`), everything else refuses to act, so that nothing guesses at
them. A person looks at what is stored (:meth:`RawSessions.read`) and may release the record
(:meth:`RawSessions.release`): it leaves the active set, its identity key is deleted if it still
names it (so the channel can be recorded again), and it is marked ``failed`` with a history
entry, by writing those fields only (the RELEASE_RAW script never reads the others).
"""

from __future__ import annotations

import builtins
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

from redis import Redis

from orchestrator.state.backend import redis_errors
from orchestrator.state.codec import history_from_list, session_from_hash
from orchestrator.state.connection import RedisOptions, connect
from orchestrator.state.errors import CorruptSessionError
from orchestrator.state.keys import Keys
from orchestrator.state.schema import SCHEMA_FIELD
from orchestrator.state.scripts import RELEASE_RAW
from orchestrator.state.session import HistoryEntry, Phase, Session, Source
from orchestrator.state.store import DEFAULT_HISTORY_LIMIT, DEFAULT_RETENTION_S

__all__ = ["IDENTITY_FIELDS", "RawSession", "ReleaseResult", "RawSessions"]

#: The hash fields that make up a session's identity (spec D11), in key order.
IDENTITY_FIELDS = ("app_id", "cname", "uid")


@dataclass(frozen=True)
class RawSession:
    """One session record as stored, with what is wrong with it.

    Attributes:
        session_id: the id.
        fields: the hash, field by field, as text.
        history: the history entries as stored (JSON text), oldest first.
        active: whether the id is in the set of unfinished sessions.
        identity: ``(app_id, cname, uid)`` from the stored fields; ``None`` if one is missing.
        identity_key: the identity key of the record (from its fields, else the one that names
            it); ``None`` when neither is found.
        identity_holder: the session id that key holds (``None``: the key is absent).
        session: the decoded session, when the record decodes.
        problem: why it does not decode (``None`` when it does); a history entry that does not
            decode is a problem too, though jobs (which do not read the history) are not
            stopped by it.
    """

    session_id: str
    fields: dict[str, str]
    history: list[str]
    active: bool
    identity: tuple[str, str, str] | None
    identity_key: str | None
    identity_holder: str | None
    session: Session | None
    problem: CorruptSessionError | None

    @property
    def schema(self) -> str | None:
        """The stored schema version, as stored (``None``: absent, version 1)."""
        return self.fields.get(SCHEMA_FIELD)

    @property
    def holds_identity(self) -> bool:
        """Whether its identity key names this session (a new start of its channel is blocked)."""
        return self.identity_holder == self.session_id

    @property
    def is_readable(self) -> bool:
        """Whether the record (hash and history) decodes."""
        return self.problem is None

    @property
    def is_finished(self) -> bool:
        """Whether the record decodes to a session in a final phase."""
        return self.session is not None and self.session.is_finished


@dataclass(frozen=True)
class ReleaseResult:
    """What :meth:`RawSessions.release` did.

    Attributes:
        found: the record existed (when false, nothing was written but the index entries).
        phase_found: the stored phase before (as stored, ``""`` if absent).
        removed_from_active: the id was in the active set and was removed.
        identity_released: the identity key named the session and was deleted.
    """

    found: bool
    phase_found: str
    removed_from_active: bool
    identity_released: bool


class RawSessions:
    """Reads and releases session records without decoding them.

    Args:
        redis: the client; without ``decode_responses`` (see :meth:`from_url`), so that a value
            that is not UTF-8 is shown, not an error.
        keys: the key names (share the session store's: ``store.keys``).
        history_limit: history entries kept per session (use the store's).
        retention_s: seconds a released record is kept (use the store's).
        clock: unix time (injectable for tests).
    """

    def __init__(
        self,
        redis: Redis,
        *,
        keys: Keys,
        history_limit: int = DEFAULT_HISTORY_LIMIT,
        retention_s: int = DEFAULT_RETENTION_S,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._redis = redis
        self.keys = keys
        self.history_limit = history_limit
        self.retention_s = retention_s
        self._clock = clock
        self._release = redis.register_script(RELEASE_RAW)

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        keys: Keys,
        history_limit: int = DEFAULT_HISTORY_LIMIT,
        retention_s: int = DEFAULT_RETENTION_S,
        options: RedisOptions | None = None,
        **redis_options: Any,
    ) -> RawSessions:
        """Records on a new client for ``url`` that returns bytes (nothing is decoded).

        Args:
            url: the Redis URL (setting ``redis_url``).
            keys, history_limit, retention_s: as for the class.
            options: timeouts and health checks (:class:`RedisOptions`).
            **redis_options: more ``redis.Redis`` arguments.
        """
        client = connect(url, options, decode_responses=False, **redis_options)
        return cls(client, keys=keys, history_limit=history_limit, retention_s=retention_s)

    def identity_of(self, session_id: str) -> tuple[str, str, str] | None:
        """``(app_id, cname, uid)`` as stored, or ``None`` if a field (or the record) is missing.

        Raises:
            StateUnavailableError: Redis is unreachable.
        """
        with redis_errors(self._redis):
            raw = cast(
                "builtins.list[str | bytes | None]",
                self._redis.hmget(self.keys.session(session_id), list(IDENTITY_FIELDS)),
            )
        values = [_lenient(v) for v in raw if v is not None]
        if len(values) != len(IDENTITY_FIELDS):
            return None
        return (values[0], values[1], values[2])

    def read(self, session_id: str) -> RawSession | None:
        """The record as stored, or ``None`` if there is none.

        Raises:
            StateUnavailableError: Redis is unreachable.
        """
        with redis_errors(self._redis):
            pipe = self._redis.pipeline(transaction=True)
            pipe.hgetall(self.keys.session(session_id))
            pipe.lrange(self.keys.history(session_id), 0, -1)
            pipe.sismember(self.keys.active(), session_id)
            raw_hash, raw_history, active = pipe.execute()
        if not raw_hash:
            return None
        fields = {_lenient(k): _lenient(v) for k, v in raw_hash.items()}
        history = [_lenient(item) for item in raw_history]
        session: Session | None = None
        problem: CorruptSessionError | None = None
        try:
            session = session_from_hash(
                session_id, raw_hash, history_from_list(session_id, history)
            )
        except CorruptSessionError as exc:
            problem = exc
        identity = self._identity(fields)
        identity_key = self.keys.identity(*identity) if identity else self._find_key(session_id)
        holder = None
        if identity_key is not None:
            with redis_errors(self._redis):
                value = cast("str | bytes | None", self._redis.get(identity_key))
            holder = None if value is None else _lenient(value)
        return RawSession(
            session_id=session_id,
            fields=fields,
            history=history,
            active=bool(active),
            identity=identity,
            identity_key=identity_key,
            identity_holder=holder,
            session=session,
            problem=problem,
        )

    def release(
        self,
        session_id: str,
        *,
        why: str,
        identity_key: str | None,
        source: Source = Source.OPERATOR,
    ) -> ReleaseResult:
        """Mark the record failed (unless already final), take it out of the active set and
        delete ``identity_key`` if it still names the session; in one script.

        Args:
            session_id: the session.
            why: recorded in the history entry and in ``last_error``.
            identity_key: the session's identity key (:attr:`RawSession.identity_key`), if
                known.
            source: who releases it.

        Raises:
            StateUnavailableError: Redis is unreachable.
        """
        now = self._clock()
        error = {"kind": "released", "status": None, "code": None, "reason": why, "at": now}
        entry = HistoryEntry(
            at=now,
            what="released: no longer active, its identity freed if it named this session",
            why=why,
            source=source,
        )
        params: dict[str, Any] = {
            "now": repr(now),
            "failed": Phase.FAILED.value,
            "phases": [p.value for p in Phase],
            "finished": sorted(p.value for p in Phase.finished()),
            "last_error": json.dumps(error, separators=(",", ":"), sort_keys=True),
            "entry": entry.model_dump(mode="json"),
            "limit": self.history_limit,
            "retention": self.retention_s,
        }
        keys = [self.keys.session(session_id), self.keys.history(session_id), self.keys.active()]
        if identity_key is not None:
            keys.append(identity_key)
        keys.append(self.keys.finished())
        with redis_errors(self._redis):
            found, phase, removed, released = self._release(
                keys=keys, args=[session_id, json.dumps(params)]
            )
        return ReleaseResult(bool(int(found)), _lenient(phase), bool(removed), bool(released))

    @staticmethod
    def _identity(fields: dict[str, str]) -> tuple[str, str, str] | None:
        values = [fields.get(name) for name in IDENTITY_FIELDS]
        if any(not v for v in values):
            return None
        return (str(values[0]), str(values[1]), str(values[2]))

    def _find_key(self, session_id: str) -> str | None:
        """The identity key that names the session, found by a scan (its fields are missing)."""
        with redis_errors(self._redis):
            for name in self._redis.scan_iter(match=self.keys.identities(), count=1000):
                value = cast("str | bytes | None", self._redis.get(name))
                if value is not None and _lenient(value) == session_id:
                    return _lenient(name)
        return None


def _lenient(value: str | bytes) -> str:
    """Text for display: bytes that are not UTF-8 are shown with replacement characters."""
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value
