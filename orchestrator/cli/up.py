"""``krtc-rec up``: the local stack for development, until Ctrl-C.

Redis (``REDIS_URL``, else 127.0.0.1:6379 if it answers, else an embedded server), the sandbox,
N workers, beat, Flower and the metrics endpoint; what ``krtc-rec demo --keep`` leaves up too.
It prints where everything is and writes the settings to an env file (mode 0600) instead of
printing secrets.
"""

from __future__ import annotations

import os
import secrets
import signal
import tempfile
import uuid
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import click

from orchestrator.cli.flower import DEFAULT_FLOWER_PORT, check_basic_auth
from orchestrator.cli.metrics import wait_for_signal
from orchestrator.cli.output import fail
from orchestrator.errors import OrchestratorError
from orchestrator.stack.local import LocalStack

__all__ = ["up", "serve_extras", "safe_url", "DEFAULT_METRICS_PORT"]

#: The metrics endpoint's port (the same as the compose stack's).
DEFAULT_METRICS_PORT = 9808


def safe_url(url: str) -> str:
    """``url`` with its password (if any) replaced by ``***`` (each address of a Sentinel URL)."""
    if ";" in url:
        return ";".join(safe_url(part) for part in url.split(";"))
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))


def serve_extras(stack: LocalStack, *, flower_port: int, metrics_port: int) -> None:
    """Start beat, Flower and the metrics endpoint on ``stack``, print where they are.

    The Flower login is ``FLOWER_BASIC_AUTH`` if set, else a generated one, kept in the env file.
    """
    assert stack.settings is not None, "start the stack first"
    extra: dict[str, str] = {}
    login = os.environ.get("FLOWER_BASIC_AUTH", "").strip()
    if login:
        login = check_basic_auth(login)
        login_note = "the login in FLOWER_BASIC_AUTH"
    else:
        login = f"krtc:{secrets.token_urlsafe(12)}"
        extra["FLOWER_BASIC_AUTH"] = login
        login_note = "user krtc, password in FLOWER_BASIC_AUTH of the env file"
    env_file = stack.write_env_file(extra)
    beat = stack.start_beat(wait=False)
    flower = stack.start_flower(flower_port, basic_auth=login, wait=False)
    metrics = stack.start_metrics(metrics_port, wait=False)
    for child in stack.children:  # started together, ready in a few seconds
        child.wait_ready()
    settings = stack.settings
    url = safe_url(settings.redis_url)
    source = stack.redis_source if url not in stack.redis_source else ""
    click.echo(f"redis   : {url}" + (f" ({source})" if source else ""))
    click.echo(f"sandbox : {settings.endpoint_url} (control: {stack.sandbox_control_url})")
    for child in stack.children:
        if child.name.startswith("worker"):
            click.echo(f"{child.name:<8}: krtc-rec worker, pid {child.process.pid}")
    click.echo(f"beat    : krtc-rec beat, pid {beat.process.pid}")
    click.echo(f"flower  : http://127.0.0.1:{flower_port} ({login_note}), pid {flower.process.pid}")
    click.echo(f"metrics : http://127.0.0.1:{metrics_port}/metrics, pid {metrics.process.pid}")
    click.echo(f"logs    : {stack.workdir}")
    click.echo("")
    click.echo("To use this stack from another shell (krtc-rec start/list/show, the producer API):")
    click.echo(f"  set -a; . {env_file}; set +a")
    click.echo(
        f"  (REDIS_URL={safe_url(settings.redis_url)} KRTC_REDIS_PREFIX={stack.prefix} "
        f"KRTC_ENDPOINT={settings.endpoint_url} and the sandbox's key pair; file mode 0600)"
    )
    click.echo("")
    click.echo("Ctrl-C stops everything (and deletes the stack's Redis keys).")


@click.command()
@click.option(
    "--workers", type=click.IntRange(min=1), default=1, show_default=True, help="Worker processes."
)
@click.option(
    "--flower-port",
    type=click.IntRange(min=1, max=65535),
    default=DEFAULT_FLOWER_PORT,
    show_default=True,
)
@click.option(
    "--metrics-port",
    type=click.IntRange(min=1, max=65535),
    default=DEFAULT_METRICS_PORT,
    show_default=True,
)
def up(workers: int, flower_port: int, metrics_port: int) -> None:
    """Run the local stack until Ctrl-C: Redis, sandbox, workers, beat, Flower and metrics.

    Redis is REDIS_URL, else 127.0.0.1:6379 if it answers, else an embedded redis-server. The
    stack works under its own key prefix and deletes its keys when it stops; it leaves no
    process running. Services listen on 127.0.0.1 only.
    """
    workdir = Path(tempfile.mkdtemp(prefix="krtc-up-"))
    stack = LocalStack(workdir, prefix=f"krtc-up-{uuid.uuid4().hex[:8]}")
    # A SIGTERM while starting must stop what already runs, as Ctrl-C does.
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        stack.start()
        for _ in range(workers):
            stack.start_worker(wait=False)
        serve_extras(stack, flower_port=flower_port, metrics_port=metrics_port)
        wait_for_signal()
    except OrchestratorError as exc:
        fail(exc)
    except RuntimeError as exc:  # a child that did not start: its log says why
        raise click.ClickException(str(exc)) from None
    except KeyboardInterrupt:
        pass
    finally:
        stack.stop()
        click.echo(f"stopped everything `up` started (logs in {workdir})")


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt
