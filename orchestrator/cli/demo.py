"""``krtc-rec demo``: the end-to-end demo on a local stack."""

from __future__ import annotations

import signal
import threading

import click

from orchestrator.cli.output import fail
from orchestrator.errors import OrchestratorError
from orchestrator.stack.local import LocalStack

__all__ = ["demo"]


def _wait_for_ctrl_c(stack: LocalStack) -> None:
    assert stack.settings is not None
    click.echo("")
    click.echo("The stack stays up until Ctrl-C:")
    click.echo(f"  REDIS_URL={stack.settings.redis_url} KRTC_REDIS_PREFIX={stack.prefix}")
    click.echo(f"  sandbox control: {stack.sandbox_control_url}/recordings")
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    try:
        done.wait()
    except KeyboardInterrupt:
        pass


@click.command()
@click.option("--keep", is_flag=True, help="Leave the stack up after the scenario, until Ctrl-C.")
def demo(keep: bool) -> None:
    """Run the end-to-end demo: Redis (embedded if none answers), the sandbox and a worker.

    Needs no account and no configuration; leaves no process running and deletes its Redis
    keys. Exits 0 when every step behaved as expected.
    """
    from orchestrator.demo import run_demo

    try:
        code = run_demo(click.echo, keep=_wait_for_ctrl_c if keep else None)
    except OrchestratorError as exc:
        fail(exc)
    raise SystemExit(code)
