"""``krtc-rec show|list``: read recording sessions (tables for people, ``--json`` for scripts)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from orchestrator.cli.output import QUEUE_EXIT_CODES_HELP, echo_json, fail
from orchestrator.cli.recorder import open_recorder
from orchestrator.cli.render import render_session, render_sessions, session_json
from orchestrator.errors import OrchestratorError
from orchestrator.state import Phase, Session

if TYPE_CHECKING:
    from orchestrator.producer import Recorder

__all__ = ["show", "list_sessions", "sessions_in", "DEFAULT_LIST_LIMIT"]

#: Sessions ``list`` prints unless ``--limit`` says otherwise.
DEFAULT_LIST_LIMIT = 50


def sessions_in(
    recorder: Recorder, phases: frozenset[Phase], *, active_only: bool, limit: int
) -> list[Session]:
    """The newest ``limit`` sessions whose phase is one of ``phases`` (all when empty).

    The store filters on activity only, so phases are filtered here, reading further back until
    ``limit`` sessions match or there are no more.
    """
    if not phases:
        return recorder.list(active_only=active_only, limit=limit)
    # Unfinished phases are all in the (small) set of active sessions.
    active_only = active_only or not any(p.is_finished for p in phases)
    fetch = limit
    while True:
        found = recorder.list(active_only=active_only, limit=fetch)
        matching = [s for s in found if s.phase in phases]
        if len(matching) >= limit or len(found) < fetch:
            return matching[:limit]
        fetch *= 4


@click.command(epilog=QUEUE_EXIT_CODES_HELP)
@click.argument("session_id", metavar="ID")
@click.option("--json", "as_json", is_flag=True, help="Print the session as JSON.")
def show(session_id: str, as_json: bool) -> None:
    """Show session ID with its history of changes (oldest first)."""
    recorder = open_recorder()
    try:
        session = recorder.get(session_id, with_history=True)
    except OrchestratorError as exc:
        fail(exc)
    if as_json:
        echo_json(session_json(session))
    else:
        click.echo(render_session(session))


@click.command("list", epilog=QUEUE_EXIT_CODES_HELP)
@click.option("--active", is_flag=True, help="Only unfinished sessions (not stopped or failed).")
@click.option(
    "--phase",
    "phases",
    multiple=True,
    type=click.Choice([p.value for p in Phase]),
    help="Only sessions in this phase (repeatable).",
)
@click.option(
    "--limit",
    type=click.IntRange(min=1),
    default=DEFAULT_LIST_LIMIT,
    show_default=True,
    help="At most this many sessions.",
)
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array of sessions.")
def list_sessions(active: bool, phases: tuple[str, ...], limit: int, as_json: bool) -> None:
    """List recording sessions, newest first."""
    recorder = open_recorder()
    wanted = frozenset(Phase(p) for p in phases)
    try:
        sessions = sessions_in(recorder, wanted, active_only=active, limit=limit)
    except OrchestratorError as exc:
        fail(exc)
    if as_json:
        echo_json([session_json(s) for s in sessions])
    elif sessions:
        click.echo(render_sessions(sessions))
    else:
        click.echo("no sessions", err=True)
