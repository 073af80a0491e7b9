"""``krtc-rec events list|replay``: lifecycle events and their webhook deliveries.

Events are recorded only while ``KRTC_EVENTS_WEBHOOK_URL`` is set. ``list`` shows each event with
where its delivery stands (``pending``, ``delivered``, ``dead``: given up after
``KRTC_EVENTS_RETRY_FOR_S``); ``replay`` queues one again with the same ``webhook-id``, after the
events of its session still waiting, for a worker to deliver.
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from typing import Any

import click

from orchestrator.cli.output import EXIT_NOT_FOUND, QUEUE_EXIT_CODES_HELP, echo_json, fail
from orchestrator.cli.recorder import open_recorder
from orchestrator.errors import OrchestratorError
from orchestrator.events import Delivery, Event, EventOutbox

__all__ = ["events", "DEFAULT_EVENTS_LIMIT"]

#: Events ``events list`` prints unless ``--limit`` says otherwise.
DEFAULT_EVENTS_LIMIT = 100


def _outbox() -> EventOutbox:
    store = open_recorder().store
    return EventOutbox(store.redis, keys=store.keys)


def _json(event: Event, delivery: Delivery) -> dict[str, Any]:
    return {
        "id": event.id,
        "subject": event.subject,
        "delivery": {
            "state": delivery.state,
            "attempts": delivery.attempts,
            "error": delivery.error,
        },
        **event.payload(),
    }


def _when(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M:%S")


@click.group(epilog=QUEUE_EXIT_CODES_HELP)
def events() -> None:
    """Lifecycle events sent to KRTC_EVENTS_WEBHOOK_URL (Standard Webhooks)."""


@events.command("list", epilog=QUEUE_EXIT_CODES_HELP)
@click.option("--session", "session_id", metavar="ID", help="Only the events of session ID.")
@click.option(
    "--limit",
    type=click.IntRange(min=1),
    default=DEFAULT_EVENTS_LIMIT,
    show_default=True,
    help="At most this many events.",
)
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array of events.")
def list_events(session_id: str | None, limit: int, as_json: bool) -> None:
    """List events, newest first, with their delivery state."""
    try:
        found = _outbox().list(session=session_id, limit=limit)
    except OrchestratorError as exc:
        fail(exc)
    if as_json:
        echo_json([_json(e, d) for e, d in found])
        return
    if not found:
        click.echo("no events", err=True)
        return
    for event, delivery in found:
        line = (
            f"{_when(event.at_ms)}  {event.id}  {event.type:<20} {event.subject}  "
            f"{delivery.state} ({delivery.attempts} attempt(s))"
        )
        if delivery.error:
            line += f"  {delivery.error}"
        click.echo(line)


@events.command(epilog=QUEUE_EXIT_CODES_HELP)
@click.argument("event_id", metavar="EVENT_ID")
@click.option("--json", "as_json", is_flag=True, help='Print {"id", "outcome"}.')
def replay(event_id: str, as_json: bool) -> None:
    """Queue event EVENT_ID for delivery again (the same webhook-id)."""
    try:
        outcome = _outbox().replay(event_id)
    except OrchestratorError as exc:
        fail(exc)
    if outcome == "missing":
        click.echo(f"error: no event {event_id!r} (never recorded, or expired)", err=True)
        sys.exit(EXIT_NOT_FOUND)
    if as_json:
        echo_json({"id": event_id, "outcome": outcome})
    elif outcome == "queued":
        click.echo(f"event {event_id} is still waiting for delivery: nothing changed")
    else:
        click.echo(f"event {event_id} queued again; a worker delivers it")
