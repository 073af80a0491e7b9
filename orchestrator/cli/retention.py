"""``krtc-rec gc`` and ``krtc-rec export``: retention, now, and what to keep before it.

``gc`` runs the collector once, now (no gate: beat's runs go on as they are), and prints what it
deleted, or with ``--dry-run`` would delete, by kind. It never deletes an active session, nor a
record younger than its retention. ``export`` writes the sessions that finished in a time range,
with their history, as JSON Lines, oldest first: run it before the collector deletes them.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import IO

import click

from orchestrator.cli.output import echo_json, fail
from orchestrator.cli.render import session_json
from orchestrator.errors import ConfigError, OrchestratorError
from orchestrator.settings import Settings, load_settings
from orchestrator.state import SessionStore, StateUnavailableError

__all__ = ["gc", "export", "parse_time"]


def parse_time(value: str) -> float:
    """Unix seconds from ``value``: a number of seconds, or an ISO 8601 time (UTC if naive).

    Raises:
        click.BadParameter: neither.
    """
    try:
        return float(value)
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise click.BadParameter(
            f"{value!r} is neither unix seconds nor an ISO 8601 time (2026-01-31T00:00:00Z)"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def _open_store() -> tuple[Settings, SessionStore]:
    try:
        settings = load_settings()
        try:
            store = SessionStore.from_settings(settings)
        except ValueError:
            raise ConfigError("REDIS_URL: not a Redis URL") from None
        try:
            store.ping()
        except StateUnavailableError as exc:
            raise ConfigError(f"cannot reach Redis: {exc}") from None
    except OrchestratorError as exc:
        fail(exc)
    return settings, store


@click.command()
@click.option("--dry-run", is_flag=True, help="Count what would be deleted; delete nothing.")
@click.option("--json", "as_json", is_flag=True, help="Print the counts as JSON.")
def gc(dry_run: bool, as_json: bool) -> None:
    """Delete now what outlived its retention (KRTC_*_RETENTION_S); print the counts by kind.

    Deletes in bounded batches, like beat's runs; a run that had more to do says so, and the
    next run goes on. Never deletes an active session.
    """
    from orchestrator.retention import Collector, RetentionPolicy

    settings, store = _open_store()
    collector = Collector(
        store.redis,
        store.keys,
        policy=RetentionPolicy.from_settings(settings),
        clock=store.clock,
    )
    try:
        report = collector.run(dry_run=dry_run)
    except OrchestratorError as exc:
        fail(exc)
    if as_json:
        echo_json(report.to_json())
        return
    verb = "would delete" if dry_run else "deleted"
    for kind, count in report.deleted.items():
        click.echo(f"{kind:<14} {count}")
    click.echo(f"{verb} {report.total} record{'' if report.total == 1 else 's'}", err=True)


@click.command()
@click.option(
    "--since",
    required=True,
    help="Sessions that finished at or after this time (unix seconds or ISO 8601).",
)
@click.option("--until", help="... and at or before this time (default: now).")
@click.option(
    "--output",
    type=click.File("w", encoding="utf-8"),
    default="-",
    show_default=True,
    help="Where to write the JSON Lines (- is stdout).",
)
def export(since: str, until: str | None, output: IO[str]) -> None:
    """Write the sessions that finished in a time range, with their history, as JSON Lines.

    One session a line, oldest finish first, with ``finished_at`` (unix seconds, Redis' clock).
    A record that does not decode is written as ``{"id", "finished_at", "error"}``.
    """
    from orchestrator.retention import finished_sessions

    low = parse_time(since)
    high = None if until is None else parse_time(until)
    _, store = _open_store()
    written = 0
    try:
        for finished_at, session, session_id in finished_sessions(store, since=low, until=high):
            if session is None:
                if store.redis.exists(store.keys.session(session_id)):
                    line = {"id": session_id, "finished_at": finished_at, "error": "unreadable"}
                else:
                    continue  # deleted meanwhile
            else:
                line = {**session_json(session), "finished_at": finished_at}
            output.write(json.dumps(line, ensure_ascii=False) + "\n")
            written += 1
    except OrchestratorError as exc:
        fail(exc)
    output.flush()
    click.echo(f"exported {written} session{'' if written == 1 else 's'}", err=True)
