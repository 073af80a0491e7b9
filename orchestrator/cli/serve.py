"""``krtc-rec serve``: the HTTP API, for web apps in any language (extra ``[http]``)."""

from __future__ import annotations

import logging

import click

from orchestrator.cli.output import fail
from orchestrator.errors import ConfigError, OrchestratorError

__all__ = ["serve"]


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8080, show_default=True, type=click.IntRange(0, 65535))
@click.option(
    "--insecure-no-auth",
    is_flag=True,
    help="Serve without tokens (KRTC_API_TOKENS unset): anyone who reaches the port can record.",
)
@click.option("--log-level", default="info", show_default=True)
def serve(host: str, port: int, insecure_no_auth: bool, log_level: str) -> None:
    """Serve the HTTP API: /v1/recordings (start, read, list, stop, update, layout), /healthz,
    /readyz, and the OpenAPI schema at /openapi.json with its page at /docs.

    Callers authenticate with `Authorization: Bearer <token>`, one of KRTC_API_TOKENS
    (comma-separated). Without tokens it refuses to start unless --insecure-no-auth.
    """
    # Without the [http] extra, orchestrator.cli.extras answers for this command instead.
    import uvicorn

    from orchestrator.web import create_app

    try:
        from orchestrator.settings import load_settings

        settings = load_settings()
        if settings.api_tokens is None and not insecure_no_auth:
            raise ConfigError(
                "KRTC_API_TOKENS is not set: give the callers' bearer tokens (comma-separated), "
                "or start with --insecure-no-auth on a trusted network"
            )
        app = create_app(settings)
    except OrchestratorError as exc:
        fail(exc)
    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(message)s")
    # uvicorn's own access log would print query strings; ours prints the path only.
    uvicorn.run(app, host=host, port=port, log_level=log_level, access_log=False)
