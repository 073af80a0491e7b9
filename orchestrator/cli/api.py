"""``krtc-rec api ACTION``: one synchronous, validated, signed API call."""

from __future__ import annotations

from typing import IO

import click

from orchestrator.cli.output import EXIT_CODES_HELP, echo_json, fail
from orchestrator.errors import ConfigError, OrchestratorError
from orchestrator.krtc.auth import redact_authorization
from orchestrator.krtc.client import KrtcClient, build_request
from orchestrator.krtc.enums import Action
from orchestrator.krtc.errors import ConflictError, KrtcApiError, TransportError
from orchestrator.krtc.models import ApiRequest
from orchestrator.krtc.retry import QUICK_RETRIES, call_with_retries
from orchestrator.krtc.validation import FieldError, RequestValidationError, parse_request
from orchestrator.settings import Settings, load_settings

__all__ = ["api"]

_ACTIONS = [a.short_name for a in Action]


def _read_body(source: IO[str]) -> str:
    text = source.read()
    if not text.strip():
        hint = "body is empty: give the request JSON with --file PATH or on stdin"
        raise RequestValidationError("request", [FieldError("(body)", hint)])
    return text


def _dry_run(settings: Settings, request: ApiRequest) -> None:
    try:
        client = KrtcClient(settings)
        prepared = client.prepare(request)
        note = None
    except ConfigError as exc:
        prepared = build_request(settings.endpoint_url, request, None)
        note = f"not signed: {exc}"
    headers = dict(prepared.headers)
    if "Authorization" in headers:
        headers["Authorization"] = redact_authorization(headers["Authorization"])
    elif note:
        headers["Authorization"] = f"<{note}>"
    echo_json(
        {
            "method": prepared.method,
            "url": prepared.url,
            "headers": headers,
            "body": request.redacted(),
        }
    )


@click.command(epilog=EXIT_CODES_HELP)
@click.argument("action", type=click.Choice(_ACTIONS))
@click.option(
    "--file",
    "source",
    type=click.File("r", encoding="utf-8"),
    default="-",
    show_default=True,
    help="Request JSON (the spec's shape); - reads stdin.",
)
@click.option("--dry-run", is_flag=True, help="Print the signed request (signature redacted).")
@click.option("--endpoint", envvar="KRTC_ENDPOINT", help="API URL [env KRTC_ENDPOINT].")
def api(action: str, source: IO[str], dry_run: bool, endpoint: str | None) -> None:
    """Validate a request, call ACTION synchronously, print the response JSON.

    ACTION is start, update, query, update-layout or stop. Field errors are printed on stderr and
    nothing is sent. Transient failures (500s, timeouts) are retried a few times quickly; an API
    error prints {"error": {"kind", "status", "code", "reason"}} on stderr.
    """
    act = Action.from_short_name(action)
    try:
        settings = load_settings(**({"endpoint": endpoint} if endpoint else {}))
        request = parse_request(act, _read_body(source))
        if dry_run:
            _dry_run(settings, request)
            return
        with KrtcClient(settings) as client:
            response = _call(client, request)
    except OrchestratorError as exc:
        fail(exc)
    echo_json(response)


def _call(client: KrtcClient, request: ApiRequest) -> dict[str, object]:
    earlier: list[KrtcApiError] = []

    def note_retry(error: BaseException, attempt: int, wait: float) -> None:
        assert isinstance(error, KrtcApiError)
        earlier.append(error)
        click.echo(
            f"retrying in {wait:.1f}s after attempt {attempt} failed: {error.reason}", err=True
        )

    try:
        return call_with_retries(
            lambda: client.call(request), QUICK_RETRIES, on_retry=note_retry
        ).to_json_dict()
    except ConflictError:
        if request.action == Action.START and any(
            isinstance(e, TransportError) and e.maybe_applied or e.status and e.status >= 500
            for e in earlier
        ):
            click.echo(
                "note: an earlier attempt got no clear answer and may have started this "
                "recording itself; query it before starting again",
                err=True,
            )
        raise
