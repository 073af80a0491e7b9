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
    recorder: Recorder,
    phases: frozenset[Phase],
    *,
    active_only: bool,
    limit: int,
    fields: dict[str, str] | None = None,
) -> list[Session]:
    """The newest ``limit`` sessions whose phase is one of ``phases`` (all when empty) and whose
    ``fields`` (``app_id``, ``cname``, ``uid``, ``sid``) have the values given.

    The store filters on activity only, so the rest is filtered here, reading further back until
    ``limit`` sessions match or there are no more.
    """
    wanted = {name: value for name, value in (fields or {}).items() if value is not None}
    if not phases and not wanted:
        return recorder.list(active_only=active_only, limit=limit)
    # Unfinished phases are all in the (small) set of active sessions.
    if phases:
        active_only = active_only or not any(p.is_finished for p in phases)

    def matches(session: Session) -> bool:
        if phases and session.phase not in phases:
            return False
        return all(getattr(session, name) == value for name, value in wanted.items())

    fetch = limit
    while True:
        found = recorder.list(active_only=active_only, limit=fetch)
        matching = [s for s in found if matches(s)]
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
@click.option("--app-id", help="Only sessions of this appId.")
@click.option("--cname", help="Only sessions of this channel.")
@click.option("--uid", help="Only sessions recording with this uid.")
@click.option("--sid", help="Only the session of this server recording id.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array of sessions.")
def list_sessions(
    active: bool,
    phases: tuple[str, ...],
    limit: int,
    app_id: str | None,
    cname: str | None,
    uid: str | None,
    sid: str | None,
    as_json: bool,
) -> None:
    """List recording sessions, newest first (filters combine)."""
    recorder = open_recorder()
    wanted = frozenset(Phase(p) for p in phases)
    fields = {"app_id": app_id, "cname": cname, "uid": uid, "sid": sid}
    try:
        sessions = sessions_in(
            recorder,
            wanted,
            active_only=active,
            limit=limit,
            fields={k: v for k, v in fields.items() if v is not None},
        )
    except OrchestratorError as exc:
        fail(exc)
    if as_json:
        echo_json([session_json(s) for s in sessions])
    elif sessions:
        click.echo(render_sessions(sessions))
    else:
        click.echo("no sessions", err=True)
