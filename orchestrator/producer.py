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
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from celery import Celery

from orchestrator.errors import OrchestratorError, StateError
from orchestrator.krtc.enums import Action, Mode, StorageVendor
from orchestrator.krtc.models import StartRequest
from orchestrator.krtc.validation import FieldError, RequestValidationError, parse_request
from orchestrator.metrics.skew import SkewReporter, process_name
from orchestrator.settings import Settings, load_settings
from orchestrator.state import (
    CreateResult,
    DeadLetter,
    DeadLetterStore,
    Phase,
    RedisClock,
    Session,
    SessionStore,
    Source,
    UpdateSequences,
)
from orchestrator.state.session import DEFAULT_MAX_RESTARTS
from orchestrator.storage_profiles import PROFILE_KEY, profile_name
from orchestrator.tasking.app import sending_app
from orchestrator.tasking.starts import StartQueue
from orchestrator.tasking.stops import stop_chain

__all__ = [
    "Recorder",
    "WaitTimeoutError",
    "SessionFinishedError",
    "start_options",
    "update_args",
    "validated_start_body",
    "waited",
    "wanted_phases",
]

_REPLAY_TASKS = {"start": "krtc.start", "stop": "krtc.stop"}
#: The action names updates are numbered (and their jobs run) under.
_SEQUENCE_ACTIONS = {Action.UPDATE: "update", Action.UPDATE_LAYOUT: "update-layout"}
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
        self.sequences = UpdateSequences(self.store.redis, keys=self.store.keys)
        if celery is None:
            celery = sending_app(settings)
        self.celery = celery
        #: Creates sessions and queues their starts (the one path; see tasking.starts).
        self.starts = StartQueue(self.store, celery, lane=settings.start_lane)
        clock = self.store.clock
        if isinstance(clock, RedisClock):
            # Times come from Redis; this host's clock is still checked, and a skew reported.
            SkewReporter(
                self.store.redis,
                self.store.keys,
                clock,
                process_name("producer"),
                alert=self._alert,
            ).install()

    def _alert(self, kind: str, subject: str, reason: str) -> None:
        from orchestrator.alerts import Alerter

        Alerter.from_settings(self.settings, self.store).hook(kind, subject, reason)

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
        return self.starts.create(
            **start_options(
                request,
                idempotency_key=idempotency_key,
                max_duration_s=max_duration_s,
                restart_on_failure=restart_on_failure,
                max_restarts=max_restarts,
            )
        )

    def stop(self, session_id: str, *, why: str = "stop requested") -> Session:
        """Stop a recording: cancel it if its start was never sent, else queue a stop.

        A session replaced by the restart policy (spec D14) passes the stop on to its
        successor: ``stop(original_id)`` stops the recording that runs now.

        Returns:
            The session that was stopped: ``session_id``'s, or the live successor's (its
            ``restarted_from`` names the one before it).

        Raises:
            SessionNotFoundError: there is no such session.
        """
        return stop_chain(
            self.store, self._send, session_id, why=why, source=Source.PRODUCER
        ).session

    def update(self, session_id: str, client_request: Mapping[str, Any]) -> Session:
        """Queue new subscription lists (``clientRequest`` of spec §5).

        Updates of a session are numbered in the order of these calls: a later one is never
        overwritten by an earlier one that is retried or arrives late (that one is not sent).

        Raises:
            RequestValidationError: the request breaks the API contract.
            SessionNotFoundError: there is no such session.
            SessionFinishedError: the recording has ended or is stopping.
        """
        return self._queue_update(Action.UPDATE, "krtc.update", session_id, client_request)

    def update_layout(self, session_id: str, client_request: Mapping[str, Any]) -> Session:
        """Queue a new mix layout (``clientRequest`` of spec §7; mix mode only).

        Numbered like :meth:`update` (per session, separately from it): the last layout
        queued is the one that stays.

        Raises:
            As :meth:`update`.
        """
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
        phases = wanted_phases(phase)
        deadline = time.monotonic() + timeout
        while True:
            session = self.get(session_id)
            if waited(session, phases, deadline, timeout):
                return session
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
        update = update_args(action, session, client_request)
        # Numbered in one script that also checks the phase again (it may have changed since
        # the read above); the job sends it only if no newer one was applied.
        numbered = self.sequences.next(session_id, _SEQUENCE_ACTIONS[action])
        if numbered.is_refused:
            raise SessionFinishedError(self.get(session_id))
        self._send(task, [*update, numbered.sequence])
        return session

    def _send(self, task: str, args: builtins.list[Any]) -> str:
        return self.starts.send(task, args)


class SessionFinishedError(StateError):
    """The recording has ended (or is stopping): it cannot be updated."""

    def __init__(self, session: Session) -> None:
        self.session = session
        super().__init__(
            f"session {session.id} is {session.phase.value}: an ended or stopping recording "
            "cannot be updated"
        )


def wanted_phases(phase: Phase | str | Iterable[Phase | str]) -> set[Phase]:
    """The phases ``wait`` takes: one (a name or a :class:`Phase`) or several."""
    return {Phase(phase)} if isinstance(phase, str) else {Phase(p) for p in phase}


def waited(session: Session, phases: set[Phase], deadline: float, timeout_s: float) -> bool:
    """Whether ``wait`` is over: the session is in one of ``phases``.

    Raises:
        WaitTimeoutError: it is not, and the ``time.monotonic()`` deadline has passed.
    """
    if session.phase in phases:
        return True
    if time.monotonic() >= deadline:
        raise WaitTimeoutError(session, phases, timeout_s)
    return False


def update_args(action: Action, session: Session, client_request: Mapping[str, Any]) -> list[Any]:
    """The first task arguments of an update or layout update (the sequence number follows).

    Raises:
        RequestValidationError: the request breaks the API contract.
        SessionFinishedError: the recording has ended or is stopping.
    """
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
    return [session.id, wire["clientRequest"]]


def start_options(request: Mapping[str, Any], **options: Any) -> dict[str, Any]:
    """The session-create arguments of a start (after validation, see
    :func:`validated_start_body`)."""
    body = validated_start_body(request)
    return {
        "app_id": body["appId"],
        "cname": body["cname"],
        "uid": body["uid"],
        "mode": Mode(body["mode"]),
        "request": body,
        **options,
    }


def validated_start_body(request: Mapping[str, Any]) -> dict[str, Any]:
    """The start body in wire form after validation, with a storage profile kept by name.

    Raises:
        RequestValidationError: field-level errors (an inline storage ``secretKey`` is one:
            storage credentials must not be queued).
    """
    # Nothing is changed in the caller's request: the body is copied where a profile is
    # replaced, and what is returned is built anew by the model.
    body = dict(request)
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
        body["clientRequest"] = {**client_request, "storageConfig": dict(_PLACEHOLDER_STORAGE)}
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
