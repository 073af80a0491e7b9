"""How every command prints: JSON on stdout, errors on stderr, and the documented exit codes."""

from __future__ import annotations

import json
import sys
from typing import Any, NoReturn

import click

from orchestrator.errors import ConfigError, OrchestratorError
from orchestrator.krtc.errors import (
    ConflictError,
    KrtcApiError,
    NotFoundError,
    PermanentError,
    TransientError,
)
from orchestrator.krtc.validation import RequestValidationError

__all__ = [
    "EXIT_OK",
    "EXIT_INVALID",
    "EXIT_PERMANENT",
    "EXIT_NOT_FOUND",
    "EXIT_CONFLICT",
    "EXIT_TRANSIENT",
    "EXIT_CODES_HELP",
    "echo_json",
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

EXIT_CODES_HELP = (
    "Exit codes: 0 success; 2 invalid input or configuration (nothing sent); "
    "3 permanent API error (400/401/403); 4 not found (404); 5 conflict (409); "
    "6 transient failure (500s, timeouts) after a few quick retries."
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
    return 1


def fail(error: OrchestratorError) -> NoReturn:
    """Report ``error`` on stderr in its documented form and exit with its code."""
    if isinstance(error, KrtcApiError):
        echo_json({"error": error.to_dict()}, err=True)
    elif isinstance(error, RequestValidationError):
        click.echo(f"error: {error}", err=True)
    else:
        click.echo(f"error: {error}", err=True)
    sys.exit(exit_code_for(error))
