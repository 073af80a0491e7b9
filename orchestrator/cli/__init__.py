"""``krtc-rec``: the command line of the orchestrator.

Each subcommand lives in its own module of this package and is loaded only when run, so that
``krtc-rec api`` does not import Celery or the sandbox server, and so that a command whose extra is
not installed (``krtc-orchestrator[flower]``...) says so when run (:mod:`orchestrator.cli.extras`).
"""

from __future__ import annotations

import importlib
from typing import Any

import click

from orchestrator.cli.extras import missing_extras, needs_extras

__all__ = ["main", "COMMANDS"]

#: name -> "module:attribute" of each subcommand.
COMMANDS: dict[str, str] = {
    "alerts": "orchestrator.cli.alerts:alerts",
    "api": "orchestrator.cli.api:api",
    "beat": "orchestrator.cli.beat:beat",
    "reconcile": "orchestrator.cli.reconcile:reconcile",
    "demo": "orchestrator.cli.demo:demo",
    "export": "orchestrator.cli.retention:export",
    "flower": "orchestrator.cli.flower:flower",
    "gc": "orchestrator.cli.retention:gc",
    "healthcheck": "orchestrator.cli.healthcheck:healthcheck",
    "metrics": "orchestrator.cli.metrics:metrics",
    "sandbox": "orchestrator.cli.sandbox:sandbox",
    "dlq": "orchestrator.cli.dlq:dlq",
    "events": "orchestrator.cli.events:events",
    "layout": "orchestrator.cli.sessions:layout",
    "list": "orchestrator.cli.views:list_sessions",
    "repair": "orchestrator.cli.repair:repair",
    "serve": "orchestrator.cli.serve:serve",
    "show": "orchestrator.cli.views:show",
    "start": "orchestrator.cli.sessions:start",
    "status": "orchestrator.cli.status:status",
    "stop": "orchestrator.cli.sessions:stop",
    "up": "orchestrator.cli.up:up",
    "update": "orchestrator.cli.sessions:update",
    "schedule": "orchestrator.cli.schedule:schedule",
    "worker": "orchestrator.cli.worker:worker",
}


class _LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = COMMANDS.get(cmd_name)
        if target is None:
            return None
        missing = missing_extras(cmd_name)
        if missing:
            return needs_extras(cmd_name, missing)
        module, _, attr = target.partition(":")
        command: Any = getattr(importlib.import_module(module), attr)
        assert isinstance(command, click.Command)
        return command


@click.group(cls=_LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="krtc-orchestrator")
def main() -> None:
    """Reliable recording for the Kingsoft Cloud KRTC cloud-recording API."""
