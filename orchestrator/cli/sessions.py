"""``krtc-rec start|stop|update|layout``: queue recording jobs through the producer API.

Each command validates its input first (field errors on stderr, exit 2, nothing stored or
queued), then queues the job and returns at once, printing the session id (the session JSON with
``--json``). ``--wait`` then blocks until the session settles and exits non-zero unless it
settled where it was meant to.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from typing import IO, TYPE_CHECKING, Any

import click

from orchestrator.cli.output import (
    EXIT_NOT_REACHED,
    EXIT_OK,
    EXIT_WAIT_TIMEOUT,
    QUEUE_EXIT_CODES_HELP,
    echo_json,
    fail,
)
from orchestrator.cli.recorder import open_recorder, read_documents, read_object
from orchestrator.cli.render import format_error, session_json
from orchestrator.errors import OrchestratorError
from orchestrator.krtc.validation import FieldError, RequestValidationError
from orchestrator.state import Phase, Session

if TYPE_CHECKING:
    from orchestrator.producer import Recorder

__all__ = ["start", "stop", "update", "layout", "DEFAULT_WAIT_TIMEOUT_S"]

#: Seconds ``--wait`` waits unless ``--timeout`` says otherwise.
DEFAULT_WAIT_TIMEOUT_S = 60.0
#: Phases a start settles in: it runs, it cannot, or it ended before running.
_START_SETTLED = frozenset({Phase.RECORDING, Phase.ORPHANED, Phase.STOPPED, Phase.FAILED})
#: Phases a stop settles in (a refused stop stays ``stopping``: the reconciler stops it later).
_STOP_SETTLED = Phase.finished()
_STOP_WHY = "stop requested (krtc-rec stop)"

_file_option = click.option(
    "--file",
    "source",
    type=click.File("r", encoding="utf-8"),
    required=True,
    help="The JSON input; - reads stdin.",
)
_json_option = click.option(
    "--json", "as_json", is_flag=True, help="Print the session as JSON instead of its id."
)
_wait_option = click.option(
    "--wait", is_flag=True, help="Block until the session settles; exit non-zero unless it worked."
)
_timeout_option = click.option(
    "--timeout",
    type=click.FloatRange(min=0),
    default=DEFAULT_WAIT_TIMEOUT_S,
    show_default=True,
    help="Seconds --wait waits for each session (exit 7 when they run out).",
)


def _print_session(session: Session, *, as_json: bool, one_line: bool = False) -> None:
    if not as_json:
        click.echo(session.id)
    elif one_line:
        click.echo(json.dumps(session_json(session), ensure_ascii=False))
    else:
        echo_json(session_json(session))


def _settle(
    recorder: Recorder,
    session_id: str,
    *,
    wanted: Phase,
    settled: frozenset[Phase],
    timeout_s: float,
) -> tuple[Session, int]:
    """Wait until the session settles and report on stderr unless in ``wanted``.

    Returns:
        the session as last seen, and the exit code.
    """
    from orchestrator.producer import WaitTimeoutError

    try:
        session = recorder.wait(session_id, settled, timeout=timeout_s)
    except WaitTimeoutError as exc:
        click.echo(f"error: {exc}", err=True)
        return exc.session, EXIT_WAIT_TIMEOUT
    except OrchestratorError as exc:
        fail(exc)
    if session.phase != wanted:
        error = f": {format_error(session.last_error)}" if session.last_error else ""
        click.echo(
            f"error: session {session.id} is {session.phase.value}, not {wanted.value}{error}",
            err=True,
        )
        return session, EXIT_NOT_REACHED
    return session, EXIT_OK


def _validate_starts(documents: list[Any]) -> None:
    from orchestrator.producer import validated_start_body

    many = len(documents) > 1
    problems: list[FieldError] = []
    for line, document in enumerate(documents, 1):
        where = f"line {line}: " if many else ""
        if not isinstance(document, dict):
            problems.append(FieldError(f"{where}(body)", "must be a JSON object"))
            continue
        try:
            validated_start_body(document)
        except RequestValidationError as exc:
            problems += [FieldError(where + e.path, e.message) for e in exc.errors]
    if problems:
        raise RequestValidationError("start request" + ("s" if many else ""), problems)


def _dedupe_note(session: Session, idempotency_key: str | None) -> str:
    if idempotency_key is not None and session.idempotency_key == idempotency_key:
        return (
            f"already started with idempotency key {idempotency_key!r}: session {session.id} "
            f"is {session.phase.value} (not queued again)"
        )
    return (
        f"already recording: session {session.id} (not queued again; it is {session.phase.value})"
    )


@click.command(epilog=QUEUE_EXIT_CODES_HELP)
@_file_option
@click.option(
    "--idempotency-key",
    help="Return the session this key created before (for a retried request) instead of "
    "starting again; one request only.",
)
@click.option(
    "--max-duration",
    "max_duration_s",
    type=click.IntRange(min=1),
    help="Upper bound on the recording's length in seconds.",
)
@_wait_option
@_timeout_option
@_json_option
def start(
    source: IO[str],
    idempotency_key: str | None,
    max_duration_s: int | None,
    wait: bool,
    timeout: float,
    as_json: bool,
) -> None:
    """Queue recordings: the start request (the spec's shape) of --file, or JSON Lines.

    The storage is named by a profile, "storageConfig": {"profile": "NAME"}, that the workers
    resolve from KRTC_STORAGE_PROFILES. Every request is validated before any is queued. A
    recording of the same appId, cname and uid that has not finished is returned instead of
    starting again (noted on stderr). With several requests, one session is printed per line.
    --wait blocks until each session records (exit 0), or fails, is orphaned or stopped (8).
    """
    try:
        documents = read_documents(source, "start request")
        _validate_starts(documents)
    except OrchestratorError as exc:
        fail(exc)
    if idempotency_key is not None and (not idempotency_key or len(documents) > 1):
        raise click.BadParameter(
            "a non-empty key, for one request only", param_hint="--idempotency-key"
        )
    recorder = open_recorder()
    code = EXIT_OK
    for document in documents:
        try:
            session, created = recorder.start_once(
                document, idempotency_key=idempotency_key, max_duration_s=max_duration_s
            )
        except OrchestratorError as exc:
            fail(exc)
        if not created:
            click.echo(_dedupe_note(session, idempotency_key), err=True)
        if not as_json:
            click.echo(session.id)
        if wait:
            session, outcome = _settle(
                recorder,
                session.id,
                wanted=Phase.RECORDING,
                settled=_START_SETTLED,
                timeout_s=timeout,
            )
            code = code or outcome
        if as_json:
            _print_session(session, as_json=True, one_line=len(documents) > 1)
    sys.exit(code)


@click.command(epilog=QUEUE_EXIT_CODES_HELP)
@click.argument("session_id", metavar="ID")
@_wait_option
@_timeout_option
@_json_option
def stop(session_id: str, wait: bool, timeout: float, as_json: bool) -> None:
    """Stop the recording of session ID (never dropped: retried until it lands).

    A start not sent yet is cancelled. A session the restart policy replaced passes the stop on
    to its successor, which is the session printed (named on stderr). Stopping a finished session
    changes nothing (noted on stderr). --wait blocks until the session is stopped (exit 0) or
    failed (8); a stop the API refuses leaves it stopping, for the reconciler and the dead
    letters, and --wait times out (7).
    """
    recorder = open_recorder()
    try:
        before = recorder.get(session_id)
        session = recorder.stop(session_id, why=_STOP_WHY)
    except OrchestratorError as exc:
        fail(exc)
    if session.id != session_id:
        click.echo(
            f"session {session_id} was restarted as session {session.id}: stopping that one",
            err=True,
        )
    elif before.is_finished:
        click.echo(
            f"session {session_id} is already {before.phase.value}: nothing to stop", err=True
        )
    code = EXIT_OK
    if wait:
        session, code = _settle(
            recorder, session.id, wanted=Phase.STOPPED, settled=_STOP_SETTLED, timeout_s=timeout
        )
    _print_session(session, as_json=as_json)
    sys.exit(code)


def _queue_change(
    session_id: str,
    source: IO[str],
    as_json: bool,
    send: Callable[[Recorder], Callable[[str, dict[str, Any]], Session]],
) -> None:
    try:
        client_request = read_object(source, "clientRequest")
    except OrchestratorError as exc:
        fail(exc)
    recorder = open_recorder()
    try:
        session = send(recorder)(session_id, client_request)
    except OrchestratorError as exc:
        fail(exc)
    _print_session(session, as_json=as_json)


@click.command(epilog=QUEUE_EXIT_CODES_HELP)
@click.argument("session_id", metavar="ID")
@_file_option
@_json_option
def update(session_id: str, source: IO[str], as_json: bool) -> None:
    """Queue new subscription lists for session ID: the clientRequest JSON of --file.

    For example {"streamSubscribe": {"audioUidList": {"subscribeAudioUids": ["#allstream#"]}}}.
    A finished or stopping recording cannot be updated (exit 5).
    """
    _queue_change(session_id, source, as_json, lambda r: r.update)


@click.command(epilog=QUEUE_EXIT_CODES_HELP)
@click.argument("session_id", metavar="ID")
@_file_option
@_json_option
def layout(session_id: str, source: IO[str], as_json: bool) -> None:
    """Queue a new mix layout for session ID: the clientRequest JSON of --file.

    For example {"mixedVideoLayout": 1}. Mix mode only; a finished or stopping recording cannot
    be updated (exit 5).
    """
    _queue_change(session_id, source, as_json, lambda r: r.update_layout)
