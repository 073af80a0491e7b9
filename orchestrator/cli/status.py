"""``krtc-rec status``: is the deployment healthy? (a doctor)."""

from __future__ import annotations

import json
import sys

import click

from orchestrator.cli.output import EXIT_OK, EXIT_TRANSIENT, fail
from orchestrator.errors import OrchestratorError

__all__ = ["status", "EXIT_UNHEALTHY"]

#: A check failed (each failed line says what to do).
EXIT_UNHEALTHY = 1


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print the checks as JSON.")
def status(as_json: bool) -> None:
    """Check the deployment: Redis (reachable, AOF, noeviction, memory), workers and the queues
    they consume, queue depths, the last reconcile round and schedule tick, dead letters, alerts
    of the last hour, and this host's clock against Redis.

    Each failed check says what to do. Exit codes: 0 every check passed; 1 a check failed;
    2 invalid configuration; 6 Redis unreachable (as for every command).
    """
    try:
        from orchestrator.doctor import diagnose, healthy
        from orchestrator.settings import load_settings
        from orchestrator.state import SessionStore
        from orchestrator.tasking.app import sending_app

        settings = load_settings()
        store = SessionStore.from_settings(settings)
        checks = diagnose(settings, store, sending_app(settings))
    except OrchestratorError as exc:
        fail(exc)
    ok = healthy(checks)
    if as_json:
        click.echo(json.dumps({"healthy": ok, "checks": [c.to_json() for c in checks]}))
    else:
        width = max(len(c.name) for c in checks)
        for check in checks:
            mark = "ok  " if check.ok else "FAIL"
            click.echo(f"{mark}  {check.name:<{width}}  {check.detail}")
            if check.fix:
                click.echo(f"      {'':<{width}}  -> {check.fix}")
        click.echo("healthy" if ok else "unhealthy", err=True)
    unreachable = not checks[0].ok and "unreachable" in checks[0].detail
    sys.exit(EXIT_OK if ok else EXIT_TRANSIENT if unreachable else EXIT_UNHEALTHY)
