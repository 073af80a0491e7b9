"""``krtc-rec sandbox``: run the local KRTC simulator until Ctrl-C (or SIGTERM)."""

from __future__ import annotations

import logging
import sys
from typing import Any

import click
from pydantic import SecretStr, ValidationError

from orchestrator.krtc.enums import Action
from orchestrator.sandbox.config import (
    DEFAULT_ACCESS_KEY,
    DEFAULT_CHANNEL_USERS,
    DEFAULT_HANG_S,
    DEFAULT_HOST,
    DEFAULT_MAX_SKEW_S,
    DEFAULT_PORT,
    DEFAULT_RETENTION_S,
    DEFAULT_SECRET_KEY,
    DEFAULT_START_DURATION_S,
    DEFAULT_STOP_DURATION_S,
    Behaviour,
    SandboxConfig,
    mask_secret,
)
from orchestrator.sandbox.faults import FaultSpec
from orchestrator.sandbox.runner import serve_forever
from orchestrator.sandbox.server import CLOUD_PATH, CONTROL_PREFIX, SandboxServer
from orchestrator.settings import DEFAULT_REGION, DEFAULT_SERVICE, Credentials

__all__ = ["sandbox", "parse_fail_next", "parse_apply_then_fail", "parse_rate_for"]

_ACTIONS = ", ".join(a.short_name for a in Action)


def _split(value: str, what: str) -> tuple[str, str]:
    action, sep, rest = value.partition("=")
    if not sep or not action or not rest:
        raise click.BadParameter(f"expected ACTION={what}, got {value!r} (ACTION: {_ACTIONS})")
    return action, rest


def _count(rest: str) -> tuple[str, int]:
    head, sep, count = rest.rpartition("x")
    if not sep or not count.isdigit():
        return rest, 1
    if int(count) < 1:
        raise click.BadParameter(f"the count after 'x' must be at least 1, got {count!r}")
    return head, int(count)


def parse_fail_next(value: str) -> dict[str, Any]:
    """``start=500`` or ``query=429x3`` → a ``fail_next`` entry."""
    action, rest = _split(value, "STATUS[xCOUNT]")
    status, count = _count(rest)
    if not status.isdigit():
        raise click.BadParameter(f"the status must be an HTTP status such as 500, got {status!r}")
    return {"action": action, "status": int(status), "count": count}


def parse_apply_then_fail(value: str) -> dict[str, Any]:
    """``start=error``, ``start=hang`` or ``stop=closex2`` → an ``apply_then_fail`` entry."""
    action, rest = _split(value, "error|hang|close[xCOUNT]")
    how, count = _count(rest)
    return {"action": action, "how": how, "count": count}


def parse_rate_for(value: str) -> tuple[str, float]:
    """``query=0.2`` → (action, rate)."""
    action, rest = _split(value, "RATE")
    try:
        return action, float(rest)
    except ValueError:
        raise click.BadParameter(f"the rate must be a number in [0, 1], got {rest!r}") from None


def _pydantic_message(exc: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors(include_url=False)
    )


def _credentials(access_key: str | None, secret_key: str | None) -> Credentials:
    if not access_key and not secret_key:
        return Credentials(DEFAULT_ACCESS_KEY, SecretStr(DEFAULT_SECRET_KEY))
    if not access_key or not secret_key:
        missing = "--access-key (KRTC_ACCESS_KEY)" if not access_key else "--secret-key"
        if access_key:
            missing += " (KRTC_SECRET_KEY)"
        raise click.UsageError(f"give both keys of the pair or neither: {missing} is missing")
    return Credentials(access_key, SecretStr(secret_key))


def _announce(server: SandboxServer) -> None:
    config = server.config
    creds = config.credentials
    base = server.base_url
    default = " (the default sandbox pair)" if config.uses_default_credentials else ""
    lines = [
        f"KRTC sandbox listening on {base}{CLOUD_PATH}",
        f"  control API:  {base}{CONTROL_PREFIX}/",
        f"  access key:   {creds.access_key}{default}",
        f"  secret key:   {mask_secret(creds.secret_key.get_secret_value())}",
        f"  scope:        {config.region}/{config.service}",
        f"  seed:         {server.sandbox.seed}",
        f"  use: KRTC_ENDPOINT={base}{CLOUD_PATH} KRTC_ACCESS_KEY={creds.access_key}",
        "Ctrl-C stops it.",
    ]
    click.echo("\n".join(lines))
    sys.stdout.flush()


@click.command()
@click.option("--host", default=DEFAULT_HOST, show_default=True, help="Address to listen on.")
@click.option(
    "--port", default=DEFAULT_PORT, show_default=True, type=int, help="Port; 0 picks a free one."
)
@click.option("--access-key", envvar="KRTC_ACCESS_KEY", help="Accepted access key [env].")
@click.option("--secret-key", envvar="KRTC_SECRET_KEY", help="Its secret [env]; never printed.")
@click.option("--region", envvar="KRTC_REGION", default=DEFAULT_REGION, show_default=True)
@click.option("--service", envvar="KRTC_SERVICE", default=DEFAULT_SERVICE, show_default=True)
@click.option(
    "--start-duration",
    type=float,
    default=DEFAULT_START_DURATION_S,
    show_default=True,
    help="Seconds from a start to status 5.",
)
@click.option(
    "--stop-duration",
    type=float,
    default=DEFAULT_STOP_DURATION_S,
    show_default=True,
    help="Seconds from a stop to status 8.",
)
@click.option(
    "--retention",
    type=float,
    default=DEFAULT_RETENTION_S,
    show_default=True,
    help="Seconds an exited recording still answers queries (then 404).",
)
@click.option(
    "--max-skew",
    type=float,
    default=DEFAULT_MAX_SKEW_S,
    show_default=True,
    help="Largest accepted clock skew of a signature, seconds.",
)
@click.option(
    "--hang",
    type=float,
    default=DEFAULT_HANG_S,
    show_default=True,
    help="Seconds an 'apply then hang' answer is held.",
)
@click.option(
    "--allow-app-id",
    "allow_app_ids",
    multiple=True,
    help="App ID with recording permission (repeatable); others get 401. Default: all.",
)
@click.option(
    "--channel-users",
    default=",".join(DEFAULT_CHANNEL_USERS),
    show_default=True,
    help="Comma-separated users of every channel not set through the control API; "
    "'' makes channels empty (recordings then end after maxIdleTime).",
)
@click.option(
    "--conflict-sid", is_flag=True, help="Name the running sid in a 409 'duplicate start' body."
)
@click.option("--latency-ms", type=float, default=0.0, help="Latency added to every API call.")
@click.option("--jitter-ms", type=float, default=0.0, help="Random extra latency, up to this.")
@click.option("--error-rate", type=float, default=0.0, help="Share of calls answered with errors.")
@click.option(
    "--error-rate-for",
    multiple=True,
    metavar="ACTION=RATE",
    help="Error rate of one action (repeatable), e.g. query=0.2.",
)
@click.option(
    "--error-status", type=int, default=500, show_default=True, help="Status of random errors."
)
@click.option(
    "--fail-next",
    multiple=True,
    metavar="ACTION=STATUS[xCOUNT]",
    help="The next calls of ACTION answer STATUS without effect (repeatable), e.g. start=500x2.",
)
@click.option(
    "--apply-then-fail",
    multiple=True,
    metavar="ACTION=error|hang|close[xCOUNT]",
    help="The next calls of ACTION take effect, then the answer is a 500, never comes, or the "
    "connection is closed (repeatable).",
)
@click.option(
    "--abnormal-exit-rate",
    type=float,
    default=0.0,
    help="Share of new recordings that exit abnormally (status 20).",
)
@click.option(
    "--abnormal-exit-after",
    type=float,
    default=None,
    help="Seconds after its start at which such a recording exits [default: 2 x start-duration].",
)
@click.option("--stuck", is_flag=True, help="New recordings never reach status 5.")
@click.option(
    "--stuck-status", type=int, default=2, show_default=True, help="Where stuck ones stay (0..4)."
)
@click.option("--seed", type=int, default=None, help="Seed of every random choice.")
@click.option(
    "--log-level",
    type=click.Choice(["debug", "info", "warning", "error"]),
    default="info",
    show_default=True,
    help="'info' logs one line per API call.",
)
def sandbox(**opts: Any) -> None:
    """Run a local KRTC cloud-recording API simulator with fault injection.

    It accepts requests signed with one key pair (--access-key/--secret-key, or KRTC_ACCESS_KEY and
    KRTC_SECRET_KEY, or the default sandbox pair when neither is set), simulates recordings and
    their statuses, and has a JSON control API under /_sandbox/ (see docs/sandbox.md).
    """
    try:
        config = _config(opts)
    except ValidationError as exc:
        raise click.UsageError(_pydantic_message(exc)) from None
    logging.basicConfig(
        level=opts["log_level"].upper(), format="%(asctime)s %(levelname)s %(message)s"
    )
    # Tornado's access log repeats what the sandbox logs itself.
    logging.getLogger("tornado.access").setLevel(logging.WARNING)
    try:
        serve_forever(config, on_listening=_announce)
    except OSError as exc:
        raise click.ClickException(
            f"cannot listen on {config.host}:{config.port}: {exc.strerror or exc}"
        ) from None
    click.echo("sandbox stopped")


def _config(opts: dict[str, Any]) -> SandboxConfig:
    users = tuple(u.strip() for u in opts["channel_users"].split(",") if u.strip())
    behaviour = Behaviour(
        start_duration_s=opts["start_duration"],
        stop_duration_s=opts["stop_duration"],
        retention_s=opts["retention"],
        max_skew_s=opts["max_skew"],
        hang_s=opts["hang"],
        conflict_sid_in_body=opts["conflict_sid"],
        default_channel_users=users,
        allow_app_ids=frozenset(opts["allow_app_ids"]) if opts["allow_app_ids"] else None,
    )
    faults: dict[str, Any] = {
        "latency_ms": opts["latency_ms"],
        "jitter_ms": opts["jitter_ms"],
        "error_rate": opts["error_rate"],
        "error_status": opts["error_status"],
        "error_rates": dict(parse_rate_for(v) for v in opts["error_rate_for"]),
        "fail_next": [parse_fail_next(v) for v in opts["fail_next"]],
        "apply_then_fail": [parse_apply_then_fail(v) for v in opts["apply_then_fail"]],
        "abnormal_exit_rate": opts["abnormal_exit_rate"],
        "abnormal_exit_after_s": opts["abnormal_exit_after"],
        "stuck_new": opts["stuck"],
        "stuck_status": opts["stuck_status"],
    }
    # Validate now, so that a bad flag is a usage error rather than a failure at start-up.
    FaultSpec.model_validate(faults)
    return SandboxConfig(
        host=opts["host"],
        port=opts["port"],
        credentials=_credentials(opts["access_key"], opts["secret_key"]),
        region=opts["region"],
        service=opts["service"],
        behaviour=behaviour,
        faults=faults,
        seed=opts["seed"],
    )
