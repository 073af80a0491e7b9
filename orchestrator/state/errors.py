"""Errors of the session store.

::

    OrchestratorError
    └── StateError                      (orchestrator.errors)
        ├── SessionNotFoundError        no session with that id (never created, or expired)
        ├── IdempotencyKeyReusedError   an idempotency key came back with another identity
        ├── CorruptSessionError         a stored session cannot be decoded
        ├── RestartRefusedError         a failed session may not be restarted (now)
        │   └── NewerSchemaError        it was written by a newer version (schema above ours)
        └── StateUnavailableError       Redis cannot be reached (connection refused, timeout)
            ├── StoredNotQueuedError    stored, but its task could not be queued
            └── (the message names host:port, never a password)

``StateBackendError`` (also a ``StateError``) covers any other refusal by Redis, such as a
script error or a key of the wrong type. ``redis`` exceptions never leave ``orchestrator.state``.
"""

from __future__ import annotations

from orchestrator.errors import StateError

__all__ = [
    "SessionNotFoundError",
    "IdempotencyKeyReusedError",
    "CorruptSessionError",
    "NewerSchemaError",
    "StateUnavailableError",
    "StateBackendError",
    "RestartRefusedError",
    "StoredNotQueuedError",
]


class SessionNotFoundError(StateError):
    """No session is stored under the id.

    Attributes:
        session_id: the id that was looked up.
    """

    def __init__(self, session_id: str) -> None:
        self.session_id = session_id
        super().__init__(
            f"recording session {session_id!r} not found "
            "(never created, or its retention period has passed)"
        )


class IdempotencyKeyReusedError(StateError):
    """An idempotency key was sent again for a different recording.

    The key already names a session of another (appId, cname, uid, mode); reusing it for a new
    recording is a bug in the caller, so nothing is created.

    Attributes:
        idempotency_key: the key.
        session_id: the session the key already belongs to.
    """

    def __init__(self, idempotency_key: str, session_id: str) -> None:
        self.idempotency_key = idempotency_key
        self.session_id = session_id
        super().__init__(
            f"idempotency key {idempotency_key!r} already belongs to session {session_id!r}, "
            "which records another appId/cname/uid/mode; use a new key for a new recording"
        )


class CorruptSessionError(StateError):
    """A stored session (or one of its history entries) does not decode.

    Code that meets one never rewrites the record: jobs dead-letter it, the reconciler skips it,
    and ``krtc-rec repair`` lets a person release it.

    Attributes:
        session_id: the session concerned.
        detail: what does not decode (a field name and the problem, never the stored value).
    """

    def __init__(self, session_id: str, detail: str) -> None:
        self.session_id = session_id
        self.detail = detail
        super().__init__(f"stored recording session {session_id!r} is {self.condition}: {detail}")

    @property
    def condition(self) -> str:
        """``"corrupt"``, or ``"from a newer version"`` for a :class:`NewerSchemaError`."""
        return "corrupt"


class NewerSchemaError(CorruptSessionError):
    """A stored session was written by a newer version of the orchestrator (a higher schema).

    It is treated like a corrupt one: never decoded, rewritten or looped on by this code.

    Attributes:
        schema: the version of the record.
        known: the highest version this code reads.
    """

    def __init__(self, session_id: str, schema: int, known: int) -> None:
        self.schema = schema
        self.known = known
        super().__init__(
            session_id,
            f"schema {schema}, this version reads up to {known}; "
            "a worker of the newer version must handle it",
        )

    @property
    def condition(self) -> str:
        return "from a newer version"


class StateUnavailableError(StateError):
    """Redis, which holds the sessions, cannot be reached; trying again later may succeed."""


class StoredNotQueuedError(StateUnavailableError):
    """What was asked is stored (a session, a stop request), but its task could not be queued;
    the reconciler queues it once the broker answers again."""


class StateBackendError(StateError):
    """Redis answered with an error (for example a failed script or a key of the wrong type)."""


class RestartRefusedError(StateError):
    """A failed session may not be restarted: its stop was requested, or it is not failed.

    Attributes:
        session_id: the failed session.
        why: ``stop_requested`` or ``not_failed``.
    """

    def __init__(self, session_id: str, why: str) -> None:
        self.session_id = session_id
        self.why = why
        super().__init__(f"session {session_id} is not restarted: {why.replace('_', ' ')}")
