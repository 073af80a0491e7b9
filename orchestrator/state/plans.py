"""What the session store sends to Redis and how the answers read: no I/O here.

:class:`~orchestrator.state.SessionStore` (redis-py) and
:class:`~orchestrator.state.aio.AsyncSessionStore` (``redis.asyncio``) build the same script
calls and read the same answers with these functions: a create is a :class:`CreatePlan` (the new
session, the CREATE script's KEYS and ARGV, and :meth:`CreatePlan.verdict` on its answer); only
the round trips differ.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from orchestrator.krtc.enums import Mode
from orchestrator.state.changes import hash_pairs
from orchestrator.state.codec import history_from_list, session_from_hash, session_to_fields, text
from orchestrator.state.errors import (
    IdempotencyKeyReusedError,
    RestartRefusedError,
    SessionNotFoundError,
    StateBackendError,
)
from orchestrator.state.events import EventLog, EventType
from orchestrator.state.ids import new_session_id
from orchestrator.state.jsontext import compact_text
from orchestrator.state.keys import Keys
from orchestrator.state.results import CreateResult, StopOutcome, StopRequestResult
from orchestrator.state.session import (
    DEFAULT_MAX_RESTARTS,
    Desired,
    HistoryEntry,
    Phase,
    Session,
    Source,
)

__all__ = [
    "IDENTITY_FIELDS",
    "CreatePlan",
    "identity_key",
    "session_from_replies",
    "stop_keys",
    "stop_result",
]


#: JSON text of the CREATE script's argument (and of the first history entry): compact, UTF-8 as
#: is, like the hash values it carries.
_ARGUMENT = compact_text


def _first_entry(now: float, session: Session, why: str, source: Source) -> str:
    """The JSON text of a new session's first history entry, as
    :meth:`HistoryEntry.model_dump_json` writes it.

    The usual arguments (a time on the clock, a text reason, a :class:`Source`) are written
    directly, without building and validating a :class:`HistoryEntry`; anything else goes
    through the model, which validates it as it always did.
    """
    what = f"created (phase {session.phase.value}, desired {session.desired.value})"
    if type(now) is float and 1.0 <= now < 1e15 and type(why) is str and type(source) is Source:
        return _ARGUMENT({"at": now, "what": what, "why": why, "source": source.value})
    return HistoryEntry(at=now, what=what, why=why, source=source).model_dump_json()


@dataclass(frozen=True)
class CreatePlan:
    """One create: the session it would store and the script call that stores it.

    Attributes:
        session: the new session (pending).
        keys, args: the CREATE script's KEYS and ARGV.
        releasable: the keys that may name a session that is gone (identity, idempotency key).
        idempotency_key: the producer's key, if any.
        restart_of: the failed session this one restarts, if any.
    """

    session: Session
    keys: list[str]
    args: list[str | int | float]
    releasable: list[str]
    idempotency_key: str | None
    restart_of: Session | None

    @classmethod
    def build(
        cls,
        keys: Keys,
        *,
        now: float,
        history_limit: int,
        idempotency_ttl_s: int,
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
        events: EventLog | None = None,
    ) -> CreatePlan:
        """The plan of :meth:`SessionStore.create` with these arguments (see there); ``events``
        records the ``recording.restarted`` event of a restart (``None``: events are off).

        Raises:
            ValueError: as :meth:`SessionStore.create`.
        """
        if restart_of is not None:
            restarted_from = restart_of.id
        for name, value in (("app_id", app_id), ("cname", cname), ("uid", uid)):
            if not value:
                raise ValueError(f"{name} must not be empty")
        if max_duration_s is not None and max_duration_s < 1:
            raise ValueError(f"max_duration_s must be positive, got {max_duration_s}")
        if idempotency_key == "":
            raise ValueError("idempotency_key must not be empty (pass None for no key)")
        if max_restarts < 0 or restarts < 0:
            raise ValueError(
                f"max_restarts and restarts must not be negative, got {max_restarts}, {restarts}"
            )
        session = Session(
            id=new_session_id(now),
            app_id=app_id,
            cname=cname,
            uid=uid,
            mode=Mode(mode),
            request=dict(request or {}),
            idempotency_key=idempotency_key,
            max_duration_s=max_duration_s,
            restarted_from=restarted_from,
            restart_on_failure=restart_on_failure,
            max_restarts=max_restarts,
            restarts=restarts,
            created_at=now,
            updated_at=now,
            phase_since=now,
        )
        script_keys = [
            keys.session(session.id),
            keys.history(session.id),
            keys.identity(app_id, cname, uid),
            keys.active(),
            keys.sessions(),
        ]
        releasable = script_keys[2:3]
        # The script's one argument (see scripts.CREATE): one JSON text costs far less to send
        # than an argument per hash field.
        options: dict[str, Any] = {
            "id": session.id,
            "now": repr(now),
            "ttl": str(idempotency_ttl_s),
            "entry": _first_entry(now, session, why, source),
            "hash": session_to_fields(session),
            "idem": 0,
            "outbox": 0,
            "failed": 0,
        }
        if idempotency_key is not None:
            script_keys.append(keys.idempotency(idempotency_key))
            releasable.append(script_keys[-1])
            options["idem"] = len(script_keys)
        if outbox is not None:
            queue_key, options["message"] = outbox(session.id)
            script_keys.append(queue_key)
            options["outbox"] = len(script_keys)
        if restart_of is not None:
            script_keys += [keys.session(restart_of.id), keys.history(restart_of.id)]
            options["failed"] = len(script_keys) - 1
            options["limit"] = history_limit
            options["failed_phase"] = Phase.FAILED.value
            options["recording"] = Desired.RECORDING.value
            options["link"] = HistoryEntry(
                at=now,
                what=f"set restarted_to {session.id}",
                why=f"restarted as session {session.id}: {why}",
                source=source,
            ).model_dump(mode="json")
            if events is not None:
                options["events"] = events.spec(
                    restart_of.id,
                    session=session.id,
                    type=EventType.RECORDING_RESTARTED.value,
                )
        args: list[str | int | float] = [_ARGUMENT(options)]
        return cls(session, script_keys, args, releasable, idempotency_key, restart_of)

    def verdict(self, reply: Any) -> CreateResult | tuple[str, str]:
        """The result of the script's answer, or ``(existing id, outcome)``: the session to
        read and pass to :meth:`existing` with the outcome.

        Raises:
            RestartRefusedError: ``restart_of`` may not be restarted (now).
        """
        existing_id, outcome = (text(v) for v in reply)
        # The id is ours if the script ran before (a retried call whose answer was lost).
        if outcome == "created" or existing_id == self.session.id:
            # The plan's session is the one stored; it has no history (build gives it none).
            return CreateResult(self.session, True)
        if outcome in ("stop_requested", "not_failed"):
            assert self.restart_of is not None
            raise RestartRefusedError(self.restart_of.id, outcome)
        return existing_id, outcome

    def existing(self, existing: Session, outcome: str) -> CreateResult:
        """The result when the identity or the idempotency key names ``existing``.

        Raises:
            IdempotencyKeyReusedError: the key names a session of another identity or mode.
        """
        if outcome == "idempotent" and (existing.identity, existing.mode) != (
            self.session.identity,
            self.session.mode,
        ):
            assert self.idempotency_key is not None
            raise IdempotencyKeyReusedError(self.idempotency_key, existing.id)
        return CreateResult(existing, False)

    def exhausted(self) -> StateBackendError:
        """The error when the keys keep naming sessions that do not exist."""
        s = self.session
        return StateBackendError(
            f"could not create a session for {s.app_id}/{s.cname}/{s.uid}: its identity or "
            "idempotency key keeps naming sessions that do not exist"
        )


def session_from_replies(
    session_id: str, replies: list[Any], *, with_history: bool
) -> Session | None:
    """The session read by ``HGETALL`` (and ``LRANGE`` of its history), or ``None``."""
    if not replies[0]:
        return None
    history = history_from_list(session_id, replies[1]) if with_history else None
    return session_from_hash(session_id, replies[0], history)


def stop_keys(keys: Keys, session_id: str, identity_key: str | None) -> list[str]:
    """The REQUEST_STOP script's KEYS (``identity_key``: the session's identity, if read)."""
    found = [keys.session(session_id), keys.history(session_id), keys.active()]
    if identity_key is not None:
        found.append(identity_key)
    found.append(keys.finished())
    return found


def identity_key(keys: Keys, raw: list[Any]) -> str | None:
    """The identity key of a session from ``HMGET app_id cname uid`` (``None``: gone)."""
    if any(v is None for v in raw):
        return None
    app_id, cname, uid = (text(v) for v in raw)
    return keys.identity(app_id, cname, uid)


#: The fields :func:`identity_key` reads.
IDENTITY_FIELDS = ["app_id", "cname", "uid"]


def stop_result(session_id: str, reply: Any) -> StopRequestResult:
    """The REQUEST_STOP script's answer.

    Raises:
        SessionNotFoundError: there is no such session.
    """
    outcome, found, flat = reply
    if text(outcome) == "missing":
        raise SessionNotFoundError(session_id)
    session = session_from_hash(session_id, hash_pairs(flat))
    return StopRequestResult(StopOutcome(text(outcome)), Phase(text(found)), session)
