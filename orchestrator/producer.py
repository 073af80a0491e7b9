"""The producer API: what a web app imports to record channels through the queue.

::

    from orchestrator import Recorder

    recorder = Recorder.from_env()                 # REDIS_URL, KRTC_* settings
    session = recorder.start(body)                 # validated, stored, queued; returns at once
    recorder.wait(session.id, "recording", timeout=30)
    recorder.stop(session.id)                      # never dropped (spec D13)

Every method validates first: invalid input raises :class:`RequestValidationError` with
field-level errors and nothing is stored or queued. Storage credentials are never queued: a
start names a storage profile (``"storageConfig": {"profile": "NAME"}``) that the workers
resolve from ``KRTC_STORAGE_PROFILES``.
"""

from __future__ import annotations

import builtins
import copy
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from celery import Celery
from kombu.exceptions import OperationalError as KombuOperationalError

from orchestrator.errors import OrchestratorError, StateError
from orchestrator.krtc.enums import Action, Mode, StorageVendor
from orchestrator.krtc.models import StartRequest
from orchestrator.krtc.validation import FieldError, RequestValidationError, parse_request
from orchestrator.outbox import celery_message
from orchestrator.queues import send_task
from orchestrator.settings import Settings, load_settings
from orchestrator.state import (
    CreateResult,
    DeadLetter,
    DeadLetterStore,
    Phase,
    Session,
    SessionStore,
    Source,
    StateUnavailableError,
)
from orchestrator.state.session import DEFAULT_MAX_RESTARTS
from orchestrator.storage_profiles import PROFILE_KEY, profile_name

__all__ = [
    "Recorder",
    "WaitTimeoutError",
    "SessionFinishedError",
    "validated_start_body",
]

_REPLAY_TASKS = {"start": "krtc.start", "stop": "krtc.stop"}
# A syntactically valid storageConfig that stands in for a profile while validating.
_PLACEHOLDER_STORAGE = {
    "vendor": int(StorageVendor.KINGSOFT_CLOUD),
    "region": 0,
    "bucket": "profile-placeholder",
    "accessKey": "profile-placeholder",
    "secretKey": "profile-placeholder",
}
_PLACEHOLDER_SID = "0" * 20


class WaitTimeoutError(OrchestratorError, TimeoutError):
    """:meth:`Recorder.wait` ran out of time; ``session`` is the last state seen."""

    def __init__(self, session: Session, wanted: Iterable[Phase], timeout_s: float) -> None:
        self.session = session
        names = ", ".join(sorted(p.value for p in wanted))
        super().__init__(
            f"session {session.id} is still {session.phase.value} after {timeout_s:g}s "
            f"(waited for {names})"
        )


class Recorder:
    """Queue recording jobs and read their sessions.

    Args:
        settings: the configuration (``REDIS_URL``, ``KRTC_REDIS_PREFIX``...).
        store: the session store (default: on ``settings.redis_url``).
        celery: the app that sends tasks (default: a broker-only app for ``settings``).
    """

    def __init__(
        self,
        settings: Settings,
        *,
        store: SessionStore | None = None,
        celery: Celery | None = None,
    ) -> None:
        self.settings = settings
        self.store = store or SessionStore.from_settings(settings)
        self.dead_letters = DeadLetterStore(self.store.redis, keys=self.store.keys)
        if celery is None:
            from workers.app import create_app

            celery = create_app(settings, with_tasks=False)
        self.celery = celery
        #: Whether starts are queued by the store's create script (the broker is the store's
        #: Redis, as with the default configuration).
        self._outbox = _same_redis(self.store, str(celery.conf.broker_url))

    @classmethod
    def from_env(cls, **overrides: Any) -> Recorder:
        """A recorder configured from the environment (``overrides`` win)."""
        return cls(load_settings(**overrides))

    # -- jobs ----------------------------------------------------------------------------------

    def start(
        self,
        request: Mapping[str, Any],
        *,
        idempotency_key: str | None = None,
        max_duration_s: int | None = None,
        restart_on_failure: bool = False,
        max_restarts: int = DEFAULT_MAX_RESTARTS,
    ) -> Session:
        """Validate a start request (wire form, spec §4), store a session and queue its start.

        While a session for the same (appId, cname, uid) is unfinished, that session is
        returned and nothing is queued (spec D11); so is the session an ``idempotency_key``
        created before.

        Args:
            request: the start body; its storage is named by profile.
            idempotency_key: the same key gives back the same session (see
                :meth:`SessionStore.create`).
            max_duration_s: the reconciler stops the recording after this many seconds
                (``KRTC_MAX_DURATION`` applies when not given).
            restart_on_failure: when the recording exits abnormally (status 20), the reconciler
                starts a new session for the same channel, linked to this one in both histories.
            max_restarts: restarts the chain may make in all (a restarted session that fails
                again is restarted while fewer have been made).

        Raises:
            RequestValidationError: the request breaks the API contract (field-level errors).
            IdempotencyKeyReusedError: the key belongs to another recording.
            StateUnavailableError: Redis is unreachable.
        """
        return self.start_once(
            request,
            idempotency_key=idempotency_key,
            max_duration_s=max_duration_s,
            restart_on_failure=restart_on_failure,
            max_restarts=max_restarts,
        ).session

    def start_once(
        self,
        request: Mapping[str, Any],
        *,
        idempotency_key: str | None = None,
        max_duration_s: int | None = None,
        restart_on_failure: bool = False,
        max_restarts: int = DEFAULT_MAX_RESTARTS,
    ) -> CreateResult:
        """:meth:`start`, also telling whether this call created the session and queued it.

        Returns:
            ``(session, created)``: ``created`` is false when an unfinished session of the same
            identity, or the session of ``idempotency_key``, was returned and nothing queued.

        Raises:
            As :meth:`start`.
        """
        body = validated_start_body(request)
        session, created = self.store.create(
            app_id=body["appId"],
            cname=body["cname"],
            uid=body["uid"],
            mode=Mode(body["mode"]),
            request=body,
            idempotency_key=idempotency_key,
            max_duration_s=max_duration_s,
            restart_on_failure=restart_on_failure,
            max_restarts=max_restarts,
            outbox=self._start_message if self._outbox else None,
        )
        if created and not self._outbox:
            self._send("krtc.start", [session.id])
        return CreateResult(session, created)

    def _start_message(self, session_id: str) -> tuple[str, str]:
        # The start is queued by the create script itself: one round trip, and queued if and
        # only if the session was created.
        message = celery_message(self.celery, "krtc.start", [session_id])
        return message.key, message.payload

    def stop(self, session_id: str, *, why: str = "stop requested") -> Session:
        """Stop a recording: cancel it if its start was never sent, else queue a stop.

        Raises:
            SessionNotFoundError: there is no such session.
        """
        result = self.store.request_stop(session_id, why=why, source=Source.PRODUCER)
        if result.needs_stop_call:
            self._send("krtc.stop", [session_id])
        return result.session

    def update(self, session_id: str, client_request: Mapping[str, Any]) -> Session:
        """Queue new subscription lists (``clientRequest`` of spec §5)."""
        return self._queue_update(Action.UPDATE, "krtc.update", session_id, client_request)

    def update_layout(self, session_id: str, client_request: Mapping[str, Any]) -> Session:
        """Queue a new mix layout (``clientRequest`` of spec §7; mix mode only)."""
        return self._queue_update(
            Action.UPDATE_LAYOUT, "krtc.update_layout", session_id, client_request
        )

    # -- reading -------------------------------------------------------------------------------

    def get(self, session_id: str, *, with_history: bool = False) -> Session:
        """The session.

        Raises:
            SessionNotFoundError: there is no such session.
        """
        return self.store.get_or_raise(session_id, with_history=with_history)

    def list(self, *, active_only: bool = False, limit: int = 100) -> list[Session]:
        """Sessions, newest first."""
        return self.store.list(active_only=active_only, limit=limit)

    def wait(
        self,
        session_id: str,
        phase: Phase | str | Iterable[Phase | str],
        timeout: float = 30.0,
        *,
        poll_s: float = 0.1,
        sleep: Callable[[float], None] = time.sleep,
    ) -> Session:
        """Block until the session is in ``phase`` (or one of several phases).

        Raises:
            WaitTimeoutError: not reached in ``timeout`` seconds (holds the last state seen).
            SessionNotFoundError: there is no such session.
        """
        phases = {Phase(phase)} if isinstance(phase, str) else {Phase(p) for p in phase}
        deadline = time.monotonic() + timeout
        while True:
            session = self.get(session_id)
            if session.phase in phases:
                return session
            if time.monotonic() >= deadline:
                raise WaitTimeoutError(session, phases, timeout)
            sleep(poll_s)

    # -- dead letters --------------------------------------------------------------------------

    def replay(self, letter_id: str) -> str:
        """Queue a dead letter's job again (a new task id); returns the new task id.

        Raises:
            KeyError: there is no such letter.
        """
        letter: DeadLetter | None = self.dead_letters.get(letter_id)
        if letter is None:
            raise KeyError(f"no dead letter {letter_id!r}")
        task_id = self._send(letter.task, list(letter.args))
        self.dead_letters.mark_replayed(letter_id, task_id)
        return task_id

    # -- helpers -------------------------------------------------------------------------------

    def _queue_update(
        self, action: Action, task: str, session_id: str, client_request: Mapping[str, Any]
    ) -> Session:
        session = self.get(session_id)
        ref = {
            "appId": session.app_id,
            "cname": session.cname,
            "sid": session.sid or _PLACEHOLDER_SID,
            "mode": session.mode.value,
            "clientRequest": dict(client_request),
        }
        if action == Action.UPDATE_LAYOUT:
            ref["uid"] = session.uid
        wire = parse_request(action, ref).to_wire()
        if session.is_finished or session.phase == Phase.STOPPING:
            raise SessionFinishedError(session)
        self._send(task, [session_id, wire["clientRequest"]])
        return session

    def _send(self, task: str, args: builtins.list[Any]) -> str:
        try:
            return send_task(self.celery, task, args)
        except KombuOperationalError as exc:
            # The session (and a stop request) is stored already: the reconciler queues the
            # job again once the broker is back, so nothing is lost; say so.
            raise StateUnavailableError(
                f"{task} for session {args[0]} is stored but could not be queued "
                f"({type(exc).__name__}); the reconciler queues it again once Redis is back"
            ) from None


class SessionFinishedError(StateError):
    """The recording has ended (or is stopping): it cannot be updated."""

    def __init__(self, session: Session) -> None:
        self.session = session
        super().__init__(
            f"session {session.id} is {session.phase.value}: an ended or stopping recording "
            "cannot be updated"
        )


def validated_start_body(request: Mapping[str, Any]) -> dict[str, Any]:
    """The start body in wire form after validation, with a storage profile kept by name.

    Raises:
        RequestValidationError: field-level errors (an inline storage ``secretKey`` is one:
            storage credentials must not be queued).
    """
    body = copy.deepcopy(dict(request))
    client_request = body.get("clientRequest")
    storage = client_request.get("storageConfig") if isinstance(client_request, dict) else None
    name = profile_name(body)
    if name is not None:
        problems = []
        if not isinstance(storage, dict) or set(storage) != {PROFILE_KEY}:
            problems.append(
                FieldError(
                    "clientRequest.storageConfig",
                    'a storage profile is given alone: {"profile": "NAME"}',
                )
            )
        if (
            not isinstance(storage, dict)
            or not isinstance(storage.get(PROFILE_KEY), str)
            or not name
        ):
            problems.append(
                FieldError(
                    "clientRequest.storageConfig.profile", "must be a non-empty profile name"
                )
            )
        if problems:
            raise RequestValidationError(f"{Action.START.value} request", problems)
        assert isinstance(client_request, dict)
        client_request["storageConfig"] = dict(_PLACEHOLDER_STORAGE)
    elif isinstance(storage, dict):
        raise RequestValidationError(
            f"{Action.START.value} request",
            [
                FieldError(
                    "clientRequest.storageConfig",
                    "inline storage credentials are not queued (they would be kept in Redis); "
                    'name a storage profile instead: {"profile": "NAME"}, defined in the file '
                    "KRTC_STORAGE_PROFILES names",
                )
            ],
        )
    parsed = parse_request(Action.START, body)
    assert isinstance(parsed, StartRequest)
    wire = parsed.to_wire()
    if name is not None:
        wire["clientRequest"]["storageConfig"] = {PROFILE_KEY: name}
    return wire


def _same_redis(store: SessionStore, broker_url: str) -> bool:
    """Whether the broker is the Redis server and database the store writes to."""
    from redis.connection import parse_url

    try:
        broker = parse_url(broker_url)  # type: ignore[no-untyped-call]
    except ValueError:
        return False
    ours = store.redis.connection_pool.connection_kwargs
    return (
        broker.get("host", "localhost") == ours.get("host", "localhost")
        and int(broker.get("port", 6379)) == int(ours.get("port", 6379))
        and int(broker.get("db", 0)) == int(ours.get("db", 0))
        and broker.get("path") == ours.get("path")
    )
