"""``krtc-rec alerts``: the recent alerts, newest first, as a table or JSON.

Alerts are read from the recent-alerts list in Redis (the newest 1,000 raised, reminders
included; see docs/alerts.md). Filters apply to that list, then ``--limit`` keeps the newest
matches. An alert holds identifiers, a status and a reason scrubbed of secrets when it was
raised, so nothing printed here can hold a secret.
"""

from __future__ import annotations

import time

import click

from orchestrator.alerts.model import Alert, AlertKind
from orchestrator.alerts.store import DEFAULT_RECENT_LIMIT, AlertStore
from orchestrator.cli.output import echo_json, fail
from orchestrator.errors import OrchestratorError
from orchestrator.settings import load_settings
from orchestrator.state import Keys
from orchestrator.state.connection import redis_client

__all__ = ["alerts", "DEFAULT_ALERTS_LIMIT", "render_alerts"]

#: Alerts printed unless ``--limit`` says otherwise.
DEFAULT_ALERTS_LIMIT = 50
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
def alerts(as_json: bool, limit: int, kinds: tuple[str, ...], session_id: str | None) -> None:
    """List recent alerts, newest first (kinds: docs/alerts.md).

    Exit codes: 0 success (also when there is no alert); 2 invalid option or configuration;
    1 or 6 Redis unreachable.
    """
    try:
        settings = load_settings()
        redis = redis_client(settings)
        store = AlertStore(redis, keys=Keys(settings.redis_prefix))
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
