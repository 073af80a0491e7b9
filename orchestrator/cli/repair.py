"""``krtc-rec repair ID [--release]``: look at a stored session as it is, and release it.

For a session record that does not decode (corrupt, or written by a newer version), which jobs
dead-letter and the reconciler skips: the command prints every stored field and history entry as
stored, says what is wrong, and with ``--release`` marks the record ``failed``, takes it out of
the active sessions and frees its (appId, cname, uid) if the identity still names it, so the
channel can be recorded again. Nothing is decoded to do so. A session holds no secret (a start
names its storage by profile; an inline storage key is refused), so nothing is masked.
"""

from __future__ import annotations

import sys

import click

from orchestrator.cli.output import (
    EXIT_CONFLICT,
    EXIT_NOT_FOUND,
    echo_json,
    fail,
)
from orchestrator.cli.recorder import open_recorder
from orchestrator.cli.render import table
from orchestrator.errors import OrchestratorError
from orchestrator.state import Phase
from orchestrator.state.connection import RedisOptions
from orchestrator.state.raw import RawSession, RawSessions

__all__ = ["repair", "REPAIR_EXIT_CODES_HELP"]

REPAIR_EXIT_CODES_HELP = (
    "Exit codes: 0 shown, released, or nothing to release; 1 the confirmation was declined "
    "(nothing changed); 2 invalid configuration or Redis unreachable at start-up; 4 no such "
    "session; 5 --release refused: the session is readable and unfinished (give --force); "
    "6 Redis lost during the command."
)

_FINISHED = frozenset(p.value for p in Phase.finished())


def _state(raw: RawSession) -> str:
    if raw.problem is not None:
        return f"{raw.problem.condition}: {raw.problem.detail}"
    assert raw.session is not None
    return f"readable ({raw.session.phase.value})"


def _identity(raw: RawSession) -> str:
    who = "/".join(raw.identity) if raw.identity else "unknown (a field is missing)"
    if raw.identity_key is None:
        return f"{who}: no identity key names it"
    if raw.identity_holder is None:
        return f"{who}: free"
    if raw.holds_identity:
        return f"{who}: held by this session (a new start of the channel returns it)"
    return f"{who}: held by another session, {raw.identity_holder}"


def _render(raw: RawSession) -> str:
    head = table(
        [
            ("session", raw.session_id),
            ("state", _state(raw)),
            ("schema", raw.schema or "absent (1)"),
            ("active", "yes" if raw.active else "no"),
            ("identity", _identity(raw)),
        ]
    )
    fields = table([(f"  {name}", value) for name, value in sorted(raw.fields.items())])
    history = "\n".join(f"  {entry}" for entry in raw.history) or "  (none)"
    return (
        f"{head}\n\nstored fields (as stored)\n{fields}\n\n"
        f"history ({len(raw.history)} entries as stored, oldest first)\n{history}"
    )


def _as_json(raw: RawSession) -> dict[str, object]:
    return {
        "session_id": raw.session_id,
        "readable": raw.is_readable,
        "problem": None if raw.problem is None else str(raw.problem),
        "schema": raw.schema,
        "active": raw.active,
        "identity": list(raw.identity) if raw.identity else None,
        "identity_holder": raw.identity_holder,
        "fields": raw.fields,
        "history": raw.history,
    }


def _refusal(raw: RawSession) -> str | None:
    """Why a release without --force is refused (``None``: it is not)."""
    if raw.is_readable and not raw.is_finished:
        assert raw.session is not None
        return (
            f"session {raw.session_id} is readable and {raw.session.phase.value}: nothing to "
            "repair. Stop it with `krtc-rec stop`; --force releases it anyway (a recording "
            "that runs is not stopped)"
        )
    return None


@click.command(epilog=REPAIR_EXIT_CODES_HELP)
@click.argument("session_id", metavar="ID")
@click.option(
    "--release",
    is_flag=True,
    help="Mark it failed, take it out of the active sessions and free its identity.",
)
@click.option("--yes", is_flag=True, help="Do not ask for confirmation (with --release).")
@click.option("--force", is_flag=True, help="Release a session that is readable and unfinished.")
@click.option("--json", "as_json", is_flag=True, help="Print what is stored as JSON.")
def repair(session_id: str, release: bool, yes: bool, force: bool, as_json: bool) -> None:
    """Show session ID as stored and what is wrong with it; --release frees its channel.

    For a record that does not decode (corrupt, or written by a newer version): its jobs go to
    the dead letters and the reconciler skips it (alert corrupt_session). After a look,
    --release marks it failed (writing only phase, last_error and a history entry), removes it
    from the active sessions and deletes its identity key if that still names it, so that a new
    start of its appId/cname/uid creates a new session. It does not stop a recording that may
    still run: the stored sid is shown, for `krtc-rec api stop`.
    """
    recorder = open_recorder()
    store = recorder.store
    try:
        records = RawSessions.from_url(
            recorder.settings.redis_url,
            keys=store.keys,
            history_limit=store.history_limit,
            retention_s=store.retention_s,
            options=RedisOptions.from_settings(recorder.settings),
        )
        raw = records.read(session_id)
    except OrchestratorError as exc:
        fail(exc)
    if raw is None:
        click.echo(f"error: no session {session_id!r} (never created, or expired)", err=True)
        sys.exit(EXIT_NOT_FOUND)
    if as_json:
        echo_json(_as_json(raw))
    else:
        click.echo(_render(raw))
    if not release:
        return
    refusal = None if force else _refusal(raw)
    if refusal is not None:
        click.echo(f"error: {refusal}", err=True)
        sys.exit(EXIT_CONFLICT)
    if raw.is_finished and not raw.active and not raw.holds_identity:
        click.echo(f"nothing to release: session {session_id} has finished", err=True)
        return
    if not yes:
        click.confirm(
            f"Release session {session_id}: mark it failed and free its channel?",
            abort=True,
            err=True,
        )
    problem = "released though readable (--force)" if raw.problem is None else str(raw.problem)
    try:
        result = records.release(
            session_id,
            why=f"released by an operator (krtc-rec repair): {problem}",
            identity_key=raw.identity_key,
        )
    except OrchestratorError as exc:
        fail(exc)
    phase = (
        f"kept {result.phase_found}"
        if result.phase_found in _FINISHED
        else f"marked failed (phase was {result.phase_found or 'absent'})"
    )
    active = "removed from" if result.removed_from_active else "was not in"
    freed = (
        "identity freed"
        if result.identity_released
        else "identity left as it is (it did not name this session)"
    )
    click.echo(f"released session {session_id}: {phase}, {active} the active sessions, {freed}")
