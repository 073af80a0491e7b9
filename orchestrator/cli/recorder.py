"""What the queue commands share: a :class:`Recorder` from the environment, JSON input.

Redis unreachable is one exit code for every command, 6, whether it is found at start-up (nothing
stored or queued) or during the command: try again once Redis answers. A ``REDIS_URL`` that is not
a Redis URL is a configuration error (exit 2).
"""

from __future__ import annotations

import json
from typing import IO, TYPE_CHECKING, Any

from orchestrator.cli.output import fail
from orchestrator.errors import ConfigError, OrchestratorError
from orchestrator.krtc.validation import FieldError, RequestValidationError
from orchestrator.settings import load_settings
from orchestrator.state import SessionStore, StateUnavailableError

if TYPE_CHECKING:
    from orchestrator.producer import Recorder

__all__ = ["open_recorder", "connect_recorder", "read_documents", "read_object"]

_EMPTY_HINT = "is empty: give the JSON with --file PATH or on stdin (--file -)"


def connect_recorder() -> Recorder:
    """A recorder configured from the environment, its Redis checked.

    Raises:
        ConfigError: a setting is invalid, or ``REDIS_URL`` is not a Redis URL.
        StateUnavailableError: nothing answers there (exit 6, like a Redis lost later).
    """
    settings = load_settings()
    from orchestrator.producer import Recorder  # Celery loads only for the commands that queue

    try:
        # The timeouts are the settings' (KRTC_REDIS_CONNECT_TIMEOUT_S, ..._SOCKET_TIMEOUT_S).
        store = SessionStore.from_settings(settings)
    except ValueError:
        # redis-py's message is not echoed: the URL may hold a password.
        raise ConfigError(
            "REDIS_URL: not a Redis URL (expected redis://[:password@]host:port/db, "
            "rediss://... or unix:///path)"
        ) from None
    try:
        store.ping()
    except StateUnavailableError as exc:
        raise StateUnavailableError(f"cannot reach Redis: {exc}") from None
    return Recorder(settings, store=store)


def open_recorder() -> Recorder:
    """:func:`connect_recorder` for a command: on a configuration error, report it and exit 2."""
    try:
        return connect_recorder()
    except OrchestratorError as exc:
        fail(exc)


def read_documents(source: IO[str], subject: str) -> list[Any]:
    """The JSON documents of ``source``: one JSON value, or JSON Lines (one value a line).

    Raises:
        RequestValidationError: the input is empty or not JSON (the messages never echo the
            input, which may hold secrets).
    """
    text = source.read()
    if not text.strip():
        raise RequestValidationError(subject, [FieldError("(body)", _EMPTY_HINT)])
    try:
        return [json.loads(text)]
    except json.JSONDecodeError as whole:
        lines = [(n, line) for n, line in enumerate(text.splitlines(), 1) if line.strip()]
        documents = []
        for _, line in lines:
            try:
                documents.append(json.loads(line))
            except json.JSONDecodeError:
                # Not JSON Lines either: report the error of the whole text, which points at
                # the spot (line and column) where it goes wrong.
                problem = (
                    f"is not valid JSON ({whole.msg}: line {whole.lineno} column {whole.colno})"
                )
                raise RequestValidationError(subject, [FieldError("(body)", problem)]) from None
        return documents


def read_object(source: IO[str], subject: str) -> dict[str, Any]:
    """The single JSON object of ``source``.

    Raises:
        RequestValidationError: the input is empty, not JSON, or not one object.
    """
    documents = read_documents(source, subject)
    if len(documents) != 1 or not isinstance(documents[0], dict):
        raise RequestValidationError(subject, [FieldError("(body)", "must be one JSON object")])
    return documents[0]
