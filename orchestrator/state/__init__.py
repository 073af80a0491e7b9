"""Durable state in Redis: recording sessions (with their history), dead letters, and what jobs
share about their runs (leases, update sequence numbers, per-run budgets)."""

from orchestrator.state.clock import RedisClock, redis_time
from orchestrator.state.connection import ReadRetry, RedisOptions, connect, redis_client
from orchestrator.state.dead_letters import DeadLetter, DeadLetterStore
from orchestrator.state.errors import (
    CorruptSessionError,
    IdempotencyKeyReusedError,
    NewerSchemaError,
    RestartRefusedError,
    SessionNotFoundError,
    StateBackendError,
    StateUnavailableError,
    StoredNotQueuedError,
)
from orchestrator.state.keys import Keys
from orchestrator.state.leases import SessionLeases
from orchestrator.state.results import (
    CreateResult,
    StopOutcome,
    StopRequestResult,
    TransitionResult,
)
from orchestrator.state.runs import RunBudgets
from orchestrator.state.schema import SCHEMA_VERSION
from orchestrator.state.sequences import UpdateSequences
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
    "RedisClock",
    "RestartRefusedError",
    "RunBudgets",
    "ReadRetry",
    "RedisOptions",
    "Session",
    "SessionLeases",
    "SessionNotFoundError",
    "SessionStore",
    "Source",
    "StateBackendError",
    "StateUnavailableError",
    "StoredNotQueuedError",
    "StopOutcome",
    "StopRequestResult",
    "TransitionResult",
    "UpdateSequences",
    "redis_time",
    "connect",
    "redis_client",
]
