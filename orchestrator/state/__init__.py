"""Durable state in Redis: recording sessions (with their history) and dead letters."""

from orchestrator.state.dead_letters import DeadLetter, DeadLetterStore
from orchestrator.state.errors import (
    CorruptSessionError,
    IdempotencyKeyReusedError,
    NewerSchemaError,
    SessionNotFoundError,
    StateBackendError,
    StateUnavailableError,
)
from orchestrator.state.keys import Keys
from orchestrator.state.results import (
    CreateResult,
    StopOutcome,
    StopRequestResult,
    TransitionResult,
)
from orchestrator.state.schema import SCHEMA_VERSION
from orchestrator.state.session import Desired, HistoryEntry, Phase, Session, Source
from orchestrator.state.store import UNSET, SessionStore

__all__ = [
    "SCHEMA_VERSION",
    "UNSET",
    "CorruptSessionError",
    "CreateResult",
    "DeadLetter",
    "DeadLetterStore",
    "Desired",
    "HistoryEntry",
    "IdempotencyKeyReusedError",
    "Keys",
    "NewerSchemaError",
    "Phase",
    "Session",
    "SessionNotFoundError",
    "SessionStore",
    "Source",
    "StateBackendError",
    "StateUnavailableError",
    "StopOutcome",
    "StopRequestResult",
    "TransitionResult",
]
