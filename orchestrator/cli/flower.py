"""``krtc-rec flower``: the Flower dashboard on the orchestrator's Celery app, behind a login.

Flower can run and revoke tasks and shows their arguments, and it opens everything to anyone by
default. So this command:

* refuses to start without ``FLOWER_BASIC_AUTH`` (``user:password``, several comma-separated)
  unless ``--insecure-no-auth`` is given, and then listens on 127.0.0.1 unless told otherwise;
* reads the login from the environment (Flower's own ``FLOWER_*`` variables), never from the
  command line, where ``ps`` would show it;
* sets a cookie secret: ``FLOWER_COOKIE_SECRET`` if set, else a random one per start;
* bounds the tasks Flower keeps in memory (``--max-tasks``, 10,000 by default, not 100,000);
* never enables Flower's unauthenticated API (``FLOWER_UNAUTHENTICATED_API`` is dropped).

Task arguments are ids only (a session id; a layout or stream selection for updates), so the
task pages show no secret. ``/metrics`` and ``/healthcheck`` stay open, as in Flower: they list
task names and counts.
"""

from __future__ import annotations

import os
import secrets

import click

from orchestrator.cli.output import fail
from orchestrator.errors import ConfigError, OrchestratorError
from orchestrator.settings import load_settings

__all__ = ["flower", "check_basic_auth", "DEFAULT_FLOWER_PORT", "DEFAULT_MAX_TASKS"]

DEFAULT_FLOWER_PORT = 5555
#: Tasks Flower keeps in memory (its default, 100,000, grows a process without bound in practice).
DEFAULT_MAX_TASKS = 10_000

_NO_AUTH = (
    "Flower can run and revoke tasks and shows every task's arguments, so it does not start "
    "without a login: set FLOWER_BASIC_AUTH=user:password (several: comma-separated), or pass "
    "--insecure-no-auth to run it without one, on this machine only"
)


def check_basic_auth(value: str) -> str:
    """``value`` if it is a valid ``FLOWER_BASIC_AUTH`` (``user:password[,user:password...]``).

    Raises:
        ConfigError: it is empty or an entry lacks a user or a password (the value is not echoed).
    """
    entries = [entry.strip() for entry in value.split(",")]
    for number, entry in enumerate(entries, 1):
        user, sep, password = entry.partition(":")
        if not (user and sep and password):
            raise ConfigError(
                f"FLOWER_BASIC_AUTH: entry {number} is not user:password with a non-empty user "
                "and password"
            )
    return ",".join(entries)


@click.command()
@click.option(
    "--port",
    type=click.IntRange(min=1, max=65535),
    default=DEFAULT_FLOWER_PORT,
    show_default=True,
)
@click.option(
    "--address",
    help="Address to listen on [default: every interface; 127.0.0.1 with --insecure-no-auth].",
)
@click.option(
    "--max-tasks",
    type=click.IntRange(min=100),
    default=DEFAULT_MAX_TASKS,
    show_default=True,
    help="Tasks kept in Flower's memory (the oldest are dropped).",
)
@click.option(
    "--insecure-no-auth",
    is_flag=True,
    help="Start without a login (anyone who reaches the port can run and revoke tasks).",
)
def flower(port: int, address: str | None, max_tasks: int, insecure_no_auth: bool) -> None:
    """Run the Flower dashboard (tasks krtc.start, krtc.stop, ...; workers; queues).

    Needs FLOWER_BASIC_AUTH=user:password; FLOWER_COOKIE_SECRET is optional (random per start).
    Configured like the workers (REDIS_URL, KRTC_REDIS_PREFIX).
    """
    os.environ.pop("FLOWER_UNAUTHENTICATED_API", None)
    login = os.environ.get("FLOWER_BASIC_AUTH", "").strip()
    try:
        if login:
            os.environ["FLOWER_BASIC_AUTH"] = check_basic_auth(login)
        elif not insecure_no_auth:
            raise ConfigError(_NO_AUTH)
        else:
            os.environ.pop("FLOWER_BASIC_AUTH", None)
            address = address or "127.0.0.1"
            click.echo(
                f"warning: Flower runs WITHOUT a login on {address}:{port} (--insecure-no-auth)",
                err=True,
            )
        settings = load_settings()
        from workers.app import create_app

        app = create_app(settings)
    except OrchestratorError as exc:
        fail(exc)
    # Read by Flower from the environment: a secret never goes on a command line.
    if not os.environ.get("FLOWER_COOKIE_SECRET"):
        os.environ["FLOWER_COOKIE_SECRET"] = secrets.token_urlsafe(32)
    argv = ["flower", f"--port={port}", f"--max_tasks={max_tasks}"]
    if address is not None:
        argv.append(f"--address={address}")
    code = app.start(argv)
    raise SystemExit(code or 0)
