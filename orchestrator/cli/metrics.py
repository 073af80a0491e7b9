"""``krtc-rec metrics``: Prometheus metrics of the whole cluster at ``/metrics``, from Redis."""

from __future__ import annotations

import signal
import threading

import click

from orchestrator.cli.output import fail
from orchestrator.errors import OrchestratorError
from orchestrator.settings import load_settings

__all__ = ["metrics", "wait_for_signal"]


def wait_for_signal() -> None:
    """Block until SIGINT (Ctrl-C) or SIGTERM."""
    done = threading.Event()
    previous = {
        sig: signal.signal(sig, lambda *_: done.set()) for sig in (signal.SIGINT, signal.SIGTERM)
    }
    try:
        while not done.wait(1.0):
            pass
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


@click.command()
@click.option(
    "--port",
    type=click.IntRange(min=0, max=65535),
    default=9808,
    show_default=True,
    help="Port to listen on (0: any free port).",
)
@click.option(
    "--host",
    default="0.0.0.0",
    show_default=True,
    help="Address to listen on. The metrics hold no secret (counts, phases, durations).",
)
def metrics(port: int, host: str) -> None:
    """Serve Prometheus metrics for every worker of the deployment at http://HOST:PORT/metrics.

    Stateless: each scrape reads Redis (REDIS_URL, KRTC_REDIS_PREFIX), where every worker records
    its API calls, so one instance covers the cluster whatever the number of workers. A scrape
    answers 503 while Redis cannot be read. Metric names: docs/operations.md.
    """
    try:
        settings = load_settings()
        from orchestrator.metrics.server import MetricsServer

        server = MetricsServer.from_settings(settings, host=host, port=port)
    except OrchestratorError as exc:
        fail(exc)
    except OSError as exc:
        raise click.ClickException(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    server.start()
    click.echo(f"metrics: serving {server.url} (keys under {settings.redis_prefix}:)")
    try:
        wait_for_signal()
    finally:
        server.stop()
        click.echo("metrics: stopped")
