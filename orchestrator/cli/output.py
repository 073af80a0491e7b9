"""How every command prints: JSON on stdout, errors on stderr, and the documented exit codes."""

from __future__ import annotations

import json
import sys
from typing import Any, NoReturn

import click

from orchestrator.errors import ConfigError, OrchestratorError, StateError
from orchestrator.krtc.errors import (
    ConflictError,
    KrtcApiError,
    NotFoundError,
    PermanentError,
    TransientError,
)
from orchestrator.krtc.validation import RequestValidationError
from orchestrator.state.errors import (
    CorruptSessionError,
    SessionNotFoundError,
    StateBackendError,
    StateUnavailableError,
)

__all__ = [
    "EXIT_OK",
    "EXIT_INVALID",
    "EXIT_PERMANENT",
    "EXIT_NOT_FOUND",
    "EXIT_CONFLICT",
    "EXIT_TRANSIENT",
    "EXIT_WAIT_TIMEOUT",
    "EXIT_NOT_REACHED",
    "EXIT_CODES_HELP",
    "QUEUE_EXIT_CODES_HELP",
    "echo_json",
    "error_json",
    "fail",
    "exit_code_for",
]

EXIT_OK = 0
#: Invalid input or configuration: nothing was sent or queued.
EXIT_INVALID = 2
EXIT_PERMANENT = 3
EXIT_NOT_FOUND = 4
EXIT_CONFLICT = 5
EXIT_TRANSIENT = 6
#: ``--wait`` ran out of time; the job is still queued or under way.
EXIT_WAIT_TIMEOUT = 7
#: ``--wait`` saw the session settle in another phase than the one wanted (failed, orphaned...).
EXIT_NOT_REACHED = 8

EXIT_CODES_HELP = (
    "Exit codes: 0 success; 2 invalid input or configuration (nothing sent); "
    "3 permanent API error (400/401/403); 4 not found (404); 5 conflict (409); "
    "6 transient failure (500s, timeouts) after a few quick retries."
)

#: The exit codes of the commands that queue jobs or read sessions (start, stop, show, dlq...).
QUEUE_EXIT_CODES_HELP = (
    "Exit codes: 0 success; 2 invalid input or configuration (nothing stored or queued); 4 no "
    "such session or dead letter; 5 the session's state forbids it (finished, or an idempotency "
    "key reused for another recording); 6 Redis unreachable (at start-up or during the command: "
    "try again); 7 --wait timed out; 8 --wait ended in another phase (failed, orphaned, stopped)."
)


def echo_json(data: Any, *, err: bool = False) -> None:
    """Print ``data`` as indented JSON (non-ASCII kept as is)."""
    click.echo(json.dumps(data, indent=2, ensure_ascii=False), err=err)


def exit_code_for(error: BaseException) -> int:
    """The documented exit code of an error."""
    if isinstance(error, RequestValidationError | ConfigError):
        return EXIT_INVALID
    if isinstance(error, ConflictError):
        return EXIT_CONFLICT
    if isinstance(error, NotFoundError):
        return EXIT_NOT_FOUND
    if isinstance(error, TransientError):
        return EXIT_TRANSIENT
    if isinstance(error, PermanentError | KrtcApiError):
        return EXIT_PERMANENT
    if isinstance(error, SessionNotFoundError):
        return EXIT_NOT_FOUND
    if isinstance(error, StateUnavailableError):
        return EXIT_TRANSIENT
    if isinstance(error, StateBackendError | CorruptSessionError):
        return 1
    if isinstance(error, StateError):
        # What is left forbids the operation: a finished session, a reused idempotency key.
        return EXIT_CONFLICT
    if isinstance(error, TimeoutError):
        return EXIT_WAIT_TIMEOUT
    return 1


def error_json(error: OrchestratorError) -> dict[str, Any]:
    """``{"error": {...}}``: how a command run with ``--json`` reports ``error`` on stderr."""
    if isinstance(error, KrtcApiError):
        body: dict[str, Any] = dict(error.to_dict())
    else:
        body = {"kind": type(error).__name__, "reason": str(error)}
    if isinstance(error, RequestValidationError):
        body["errors"] = [e.to_dict() for e in error.errors]
    body["exit_code"] = exit_code_for(error)
    return {"error": body}


def _wants_json() -> bool:
    context = click.get_current_context(silent=True)
    return bool(context is not None and context.params.get("as_json"))


def fail(error: OrchestratorError) -> NoReturn:
    """Report ``error`` on stderr in its documented form and exit with its code.

    API errors are always JSON; with ``--json`` every error is (:func:`error_json`).
    """
    if isinstance(error, KrtcApiError) and not _wants_json():
        echo_json({"error": error.to_dict()}, err=True)
    elif _wants_json():
        echo_json(error_json(error), err=True)
    else:
        click.echo(f"error: {error}", err=True)
    sys.exit(exit_code_for(error))
