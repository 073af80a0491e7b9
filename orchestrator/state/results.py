"""What the store's changing operations report back."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import NamedTuple

from orchestrator.state.session import Phase, Session

__all__ = [
    "CreateResult",
    "TransitionResult",
    "StopOutcome",
    "StopRequestResult",
    "AdoptOutcome",
    "AdoptResult",
]


class CreateResult(NamedTuple):
    """The outcome of :meth:`SessionStore.create`; unpacks as ``session, created``.

    When ``created`` is false, ``session`` is the existing one: a replay of the same idempotency
    key if ``session.idempotency_key`` is the key that was given, otherwise the unfinished
    session that holds the identity (a conflict, spec D11).
    """

    session: Session
    created: bool


@dataclass(frozen=True)
class TransitionResult:
    """The outcome of :meth:`SessionStore.transition`.

    Attributes:
        applied: whether the change was made (false: the phase found was not allowed, or the
            session is finished and a change of phase was asked for).
        found: the phase the session was in before.
        session: the session as it is now (after the change, if applied).
    """

    applied: bool
    found: Phase
    session: Session

    @property
    def phase_changed(self) -> bool:
        """Whether the change moved the session to another phase."""
        return self.applied and self.session.phase != self.found


class StopOutcome(StrEnum):
    """What :meth:`SessionStore.request_stop` did."""

    #: The start had not been sent (phase pending): the session is now stopped.
    CANCELLED = "cancelled"
    #: ``desired`` is now ``stopped``; a stop call is needed.
    REQUESTED = "requested"
    #: ``desired`` was already ``stopped``; nothing changed (a stop may still be needed).
    ALREADY_REQUESTED = "already_requested"
    #: The session had already finished; nothing changed.
    FINISHED = "finished"


@dataclass(frozen=True)
class StopRequestResult:
    """The outcome of :meth:`SessionStore.request_stop`.

    Attributes:
        outcome: what was done.
        found: the phase the session was in before.
        session: the session as it is now; ``session.sid`` is what a stop call needs.
    """

    outcome: StopOutcome
    found: Phase
    session: Session

    @property
    def needs_stop_call(self) -> bool:
        """Whether the caller should enqueue a stop task (spec D13: a stop is never dropped).

        True while the session is unfinished and its stop was requested, now or before; a
        repeated stop task is harmless (a stop of a stopped recording answers 404, a success).
        """
        return (
            self.outcome in (StopOutcome.REQUESTED, StopOutcome.ALREADY_REQUESTED)
            and not self.session.is_finished
        )


class AdoptOutcome(StrEnum):
    """What :meth:`SessionStore.adopt_sid` did with the sid of a start answer."""

    #: No such session (lost): the recording the sid names must be stopped.
    MISSING = "missing"
    #: The session already had this sid.
    SAME = "same"
    #: The session has another sid: this one names a duplicate recording, to be stopped.
    OTHER = "other"
    #: The session is finished (sid stored if it had none): the recording must be stopped.
    FINISHED = "finished"
    #: The session is now recording with this sid.
    RECORDING = "recording"
    #: As ``RECORDING``, but its stop was requested meanwhile: a stop must be queued.
    MUST_STOP = "must_stop"


@dataclass(frozen=True)
class AdoptResult:
    """The outcome of :meth:`SessionStore.adopt_sid`.

    Attributes:
        outcome: what was done.
        found: the phase the session was in before (``None`` when it is missing).
        session: the session as it is now (``None`` when it is missing).
    """

    outcome: AdoptOutcome
    found: Phase | None
    session: Session | None

    @property
    def is_stray(self) -> bool:
        """Whether the sid names a recording no unfinished session follows: stop it now."""
        return self.outcome in (AdoptOutcome.MISSING, AdoptOutcome.OTHER, AdoptOutcome.FINISHED)
