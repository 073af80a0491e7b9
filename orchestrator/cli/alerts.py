"""``krtc-rec alerts``: the recent alerts, newest first, as a table or JSON.

Alerts are read from the recent-alerts list in Redis (the newest 1,000 raised, reminders
included; see docs/alerts.md). Filters apply to that list, then ``--limit`` keeps the newest
matches. An alert holds identifiers, a status and a reason scrubbed of secrets when it was
raised, so nothing printed here can hold a secret. ``--undelivered`` lists the deliveries given
up instead (sink, attempts, last error).

After printing, the command runs an alerter for up to ``--deliver-for`` seconds: it delivers
what is due in the outbox of every configured sink, such as the alerts of a process that died
before delivering them (docs/alerts.md, "Delivery").
"""

from __future__ import annotations

import time

import click
from redis import Redis

from orchestrator.alerts.alerter import Alerter
from orchestrator.alerts.model import Alert, AlertKind
from orchestrator.alerts.outbox import Undelivered
from orchestrator.alerts.store import DEFAULT_RECENT_LIMIT, AlertStore
from orchestrator.cli.output import echo_json, fail
from orchestrator.errors import OrchestratorError
from orchestrator.settings import Settings, load_settings
from orchestrator.state import Keys, SessionStore
from orchestrator.state.connection import redis_client

__all__ = [
    "alerts",
    "DEFAULT_ALERTS_LIMIT",
    "DEFAULT_DELIVER_FOR_S",
    "render_alerts",
    "render_undelivered",
]

#: Alerts printed unless ``--limit`` says otherwise.
DEFAULT_ALERTS_LIMIT = 50
#: Seconds spent delivering what waits in the outbox, after printing.
DEFAULT_DELIVER_FOR_S = 5.0
#: Characters of a reason shown in the table (``--json`` prints it whole).
REASON_WIDTH = 60

_COLUMNS = ("AT", "KIND", "SEVERITY", "SESSION", "CNAME", "UID", "SID", "STATUS", "REASON")


def _cell(value: object) -> str:
    return "-" if value is None or value == "" else str(value)


def _reason(alert: Alert) -> str:
    text = " ".join(alert.reason.split())
    if alert.is_reminder:
        text = f"(reminder #{alert.reminder}) {text}"
    return text if len(text) <= REASON_WIDTH else text[: REASON_WIDTH - 1] + "…"


def render_alerts(alerts: list[Alert]) -> str:
    """Alerts as an aligned table, one per line, with a header."""
    rows = [list(_COLUMNS)]
    for alert in alerts:
        at = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(alert.at))
        rows.append(
            [
                at,
                alert.kind.value,
                alert.severity.value,
                alert.session_id,
                _cell(alert.cname),
                _cell(alert.uid),
                _cell(alert.sid),
                _cell(alert.server_status),
                _reason(alert),
            ]
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(_COLUMNS) - 1)]
    return "\n".join(
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=False)) + "  " + row[-1]
        for row in rows
    )


def render_undelivered(records: list[Undelivered]) -> str:
    """Given-up deliveries as an aligned table, with a header."""
    rows = [["AT", "SINK", "ATTEMPTS", "KIND", "SESSION", "ALERT", "ERROR"]]
    for record in records:
        alert = record.alert
        rows.append(
            [
                time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(record.at)),
                record.sink,
                str(record.attempts),
                alert.kind.value if alert else "-",
                alert.session_id if alert else "-",
                alert.id if alert else "-",
                " ".join(record.error.split())[:REASON_WIDTH],
            ]
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    return "\n".join(
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=False)) + "  " + row[-1]
        for row in rows
    )


def _undelivered_json(record: Undelivered) -> dict[str, object]:
    return {
        "sink": record.sink,
        "attempts": record.attempts,
        "error": record.error,
        "at": record.at,
        "alert": record.alert.model_dump(mode="json") if record.alert else None,
    }


def _deliver(settings: Settings, redis: Redis, seconds: float) -> None:
    """Deliver what is due in the outbox for up to ``seconds``; the rest stays queued."""
    if seconds <= 0:
        return
    alerter = Alerter.from_settings(settings, SessionStore(redis, prefix=settings.redis_prefix))
    if not alerter.dispatcher.sinks:
        return
    waiting = alerter.dispatcher.pending()
    if waiting:
        click.echo(f"delivering {waiting} queued alert deliveries...", err=True)
    if not alerter.close(seconds):
        left = alerter.dispatcher.pending()
        click.echo(f"{left} alert deliveries still queued (retried by the workers)", err=True)


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array of alerts.")
@click.option(
    "--limit",
    type=click.IntRange(min=1),
    default=DEFAULT_ALERTS_LIMIT,
    show_default=True,
    help="At most this many alerts (the newest).",
)
@click.option(
    "--kind",
    "kinds",
    type=click.Choice([k.value for k in AlertKind]),
    multiple=True,
    help="Only alerts of this kind (repeatable).",
)
@click.option("--session", "session_id", metavar="ID", help="Only alerts of this session.")
@click.option(
    "--undelivered",
    is_flag=True,
    help="List the deliveries given up (sink, attempts, last error) instead.",
)
@click.option(
    "--deliver-for",
    type=click.FloatRange(min=0),
    default=DEFAULT_DELIVER_FOR_S,
    show_default=True,
    metavar="S",
    help="Then deliver what waits in the outbox for up to S seconds (0: do not).",
)
def alerts(
    as_json: bool,
    limit: int,
    kinds: tuple[str, ...],
    session_id: str | None,
    undelivered: bool,
    deliver_for: float,
) -> None:
    """List recent alerts, newest first (kinds: docs/alerts.md).

    Exit codes: 0 success (also when there is no alert); 2 invalid option or configuration;
    1 or 6 Redis unreachable.
    """
    try:
        settings = load_settings()
        redis = redis_client(settings)
        store = AlertStore(redis, keys=Keys(settings.redis_prefix))
        if undelivered:
            records = store.outbox.undelivered(limit)
            if as_json:
                echo_json([_undelivered_json(r) for r in records])
            elif records:
                click.echo(render_undelivered(records))
            else:
                click.echo("no undelivered alerts", err=True)
            _deliver(settings, redis, deliver_for)
            return
        found = store.recent(DEFAULT_RECENT_LIMIT if kinds or session_id else limit)
    except OrchestratorError as exc:
        fail(exc)
    matching = [
        a
        for a in found
        if (not kinds or a.kind.value in kinds)
        and (session_id is None or a.session_id == session_id)
    ][:limit]
    if as_json:
        echo_json([a.model_dump(mode="json") for a in matching])
    elif matching:
        click.echo(render_alerts(matching))
    else:
        click.echo("no alerts", err=True)
    try:
        _deliver(settings, redis, deliver_for)
    except OrchestratorError as exc:
        fail(exc)
