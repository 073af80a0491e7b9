"""``krtc-rec demo``: the end-to-end demo on a local stack."""

from __future__ import annotations

from collections.abc import Callable

import click

from orchestrator.cli.flower import DEFAULT_FLOWER_PORT
from orchestrator.cli.metrics import wait_for_signal
from orchestrator.cli.output import fail
from orchestrator.cli.up import DEFAULT_METRICS_PORT, serve_extras
from orchestrator.errors import OrchestratorError
from orchestrator.stack.local import LocalStack

__all__ = ["demo"]


def _keep(flower_port: int, metrics_port: int) -> Callable[[LocalStack], None]:
    def keep(stack: LocalStack) -> None:
        click.echo("")
        click.echo("The stack stays up until Ctrl-C, with beat, Flower and the metrics:")
        serve_extras(stack, flower_port=flower_port, metrics_port=metrics_port)
        try:
            wait_for_signal()
        except KeyboardInterrupt:
            pass

    return keep


@click.command()
@click.option(
    "--keep",
    is_flag=True,
    help="Leave the stack up after the scenario (with beat, Flower and metrics) until Ctrl-C.",
)
@click.option(
    "--flower-port",
    type=click.IntRange(min=1, max=65535),
    default=DEFAULT_FLOWER_PORT,
    show_default=True,
    help="Flower's port with --keep.",
)
@click.option(
    "--metrics-port",
    type=click.IntRange(min=1, max=65535),
    default=DEFAULT_METRICS_PORT,
    show_default=True,
    help="The metrics endpoint's port with --keep.",
)
def demo(keep: bool, flower_port: int, metrics_port: int) -> None:
    """Run the end-to-end demo: Redis (embedded if none answers), the sandbox and a worker.

    Needs no account and no configuration; leaves no process running and deletes its Redis
    keys. Exits 0 when every step behaved as expected.
    """
    from orchestrator.demo import run_demo

    try:
        code = run_demo(click.echo, keep=_keep(flower_port, metrics_port) if keep else None)
    except OrchestratorError as exc:
        fail(exc)
    raise SystemExit(code)
