"""The simulated API, independent of HTTP: one call per request to ``/cloud``.

:meth:`Sandbox.handle` takes the parts of a request and returns a :class:`Reply`. The checks run in
the order a real gateway would: signature (403), action and version headers (400), JSON body and
field rules of the shared models (400), App ID permission (401), injected errors, then the action
itself (404, 409, 400), and finally an injected lost answer.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from orchestrator.krtc.enums import Action
from orchestrator.krtc.models import (
    ApiRequest,
    QueryRequest,
    StartRequest,
    StopRequest,
    UpdateLayoutRequest,
    UpdateRequest,
)
from orchestrator.krtc.validation import RequestValidationError, parse_request
from orchestrator.sandbox.config import Behaviour, SandboxConfig
from orchestrator.sandbox.errors import BadRequest, SandboxApiError, error_body
from orchestrator.sandbox.faults import FaultInjector, FaultSpec, LostAnswer
from orchestrator.sandbox.files import server_response
from orchestrator.sandbox.journal import Journal
from orchestrator.sandbox.sigv4 import SignatureError, SigV4Verifier
from orchestrator.sandbox.state import SandboxState

__all__ = ["API_VERSION", "Reply", "Sandbox"]

API_VERSION = "v1"
_ACTIONS = {a.value: a for a in Action}


@dataclass(frozen=True)
class Reply:
    """The answer to send: a status and JSON body, or a deliberately lost answer (``lost``)."""

    status: int | None
    body: dict[str, Any] | None
    headers: dict[str, str] = field(default_factory=dict)
    lost: LostAnswer | None = None
    outcome: str = "ok"

    def encode(self) -> bytes:
        """The body as sent."""
        return json.dumps(self.body, ensure_ascii=False, separators=(",", ":")).encode()


class Sandbox:
    """State, faults, signature verification and journal of one simulated API.

    Args:
        config: the server's configuration.
        clock: Unix time for the recordings' timings (offset by ``/_sandbox/clock``).
        sign_clock: Unix time against which ``x-amz-date`` is checked.
    """

    def __init__(
        self,
        config: SandboxConfig,
        *,
        clock: Callable[[], float] = time.time,
        sign_clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        seed = config.seed
        self.seed = seed if seed is not None else random.SystemRandom().getrandbits(32)
        self._clock = clock
        creds = config.credentials
        self.verifier = SigV4Verifier(
            {creds.access_key: creds.secret_key.get_secret_value()},
            region=config.region,
            service=config.service,
            max_skew_s=config.behaviour.max_skew_s,
            clock=sign_clock,
        )
        self.journal = Journal(config.request_log_size)
        self.faults = FaultInjector(random.Random(f"faults-{self.seed}"))
        self.state = SandboxState(
            config.behaviour, rng=random.Random(f"sids-{self.seed}"), clock=clock
        )
        self.reset()

    @property
    def behaviour(self) -> Behaviour:
        """The run-time behaviour in force."""
        return self.state.behaviour

    def reset(self) -> None:
        """Back to the state the server started in: no recordings, initial faults and behaviour."""
        self.state = SandboxState(
            self.config.behaviour, rng=random.Random(f"sids-{self.seed}"), clock=self._clock
        )
        self.verifier.max_skew_s = self.config.behaviour.max_skew_s
        self.faults = FaultInjector(random.Random(f"faults-{self.seed}"))
        self.journal.clear()
        if self.config.faults:
            self.inject(FaultSpec.model_validate(self.config.faults))

    def configure(self, patch: Mapping[str, Any]) -> Behaviour:
        """Change the run-time behaviour (validated as a whole; pydantic errors propagate)."""
        merged = {**self.behaviour.model_dump(), **patch}
        behaviour = Behaviour.model_validate(merged)
        self.state.behaviour = behaviour
        self.verifier.max_skew_s = behaviour.max_skew_s
        return behaviour

    def inject(self, spec: FaultSpec) -> dict[str, Any]:
        """Add faults; the sid lists act on those recordings at once. Returns the faults."""
        for sid in spec.abnormal_exit_sids:
            self.state.get(sid).end(self.state.now(), 20, "abnormal")
        self.faults.apply(spec)
        for sid in spec.stuck_sids:
            self.state.stick(sid, self.faults.stuck_status)
        return self.faults.to_dict()

    def clear_faults(self) -> None:
        """Remove every fault, including stuck and doomed recordings."""
        self.faults.clear()
        self.state.unstick_all()

    # The API ---------------------------------------------------------------------------------

    def handle(
        self,
        method: str,
        path: str,
        query: str,
        headers: Mapping[str, str],
        body: bytes,
        *,
        delay_s: float = 0.0,
    ) -> Reply:
        """Answer one request to ``/cloud``; ``headers`` are keyed by lower-case name."""
        sent = headers.get("x-action")
        # Only known action names become log and stats keys: the header is the client's to choose.
        name = sent if sent in _ACTIONS or sent is None else "(unknown)"
        log: dict[str, Any] = {"delay_ms": round(delay_s * 1000, 3)}
        try:
            log["access_key"] = self.verifier.verify(method, path, query, headers, body)
        except SignatureError as exc:
            return self._error(name, 403, exc.reason, "forbidden", log)
        try:
            action, request = self._parse(sent, headers, body)
        except BadRequest as exc:
            return self._error(name, 400, exc.reason, "bad_request", log)
        for attr in ("sid", "app_id", "cname", "uid"):
            log[attr] = getattr(request, attr, None)
        app_id: str = log["app_id"] or ""
        allowed = self.behaviour.allow_app_ids
        if allowed is not None and app_id not in allowed:
            reason = f"appId {app_id!r} has no cloud recording permission"
            return self._error(action, 401, reason, "unauthorized", log)
        injected = self.faults.error_before(action)
        if injected is not None:
            hdrs = {}
            if injected.retry_after_s is not None:
                hdrs["Retry-After"] = f"{injected.retry_after_s:g}"
            return self._error(
                action, injected.status, injected.reason, "injected_error", log, headers=hdrs
            )
        try:
            result = self._apply(action, request)
        except SandboxApiError as exc:
            self.journal.record(action, exc.status, exc.outcome, reason=exc.reason, **log)
            return Reply(exc.status, exc.body(), outcome=exc.outcome)
        log["sid"] = result.get("sid", log["sid"])
        log["body"] = request.redacted()
        lost = self.faults.lost_answer(action)
        if lost == "error":
            reason = "internal error (injected after the action was applied)"
            return self._error(action, 500, reason, "applied_then_error", log)
        if lost is not None:
            self.journal.record(action, None, f"applied_then_{lost}", **log)
            return Reply(None, None, lost=lost, outcome=f"applied_then_{lost}")
        self.journal.record(action, 200, "ok", **log)
        return Reply(200, result)

    def _error(
        self,
        action: str | None,
        status: int,
        reason: str,
        outcome: str,
        log: dict[str, Any],
        *,
        headers: dict[str, str] | None = None,
    ) -> Reply:
        self.journal.record(action, status, outcome, reason=reason, **log)
        return Reply(status, error_body(status, reason), headers or {}, outcome=outcome)

    def _parse(
        self, name: str | None, headers: Mapping[str, str], body: bytes
    ) -> tuple[Action, ApiRequest]:
        if not name:
            raise BadRequest("missing x-action header")
        action = _ACTIONS.get(name)
        if action is None:
            raise BadRequest(f"unknown action {name[:64]!r} (x-action)")
        version = headers.get("x-version")
        if version != API_VERSION:
            raise BadRequest(f"unsupported x-version {version!r}: use {API_VERSION!r}")
        content_type = headers.get("content-type", "")
        if not content_type.lower().startswith("application/json"):
            raise BadRequest("content-type must be application/json;charset=UTF-8")
        try:
            data = json.loads(body)
        except (ValueError, UnicodeDecodeError) as exc:
            where = (
                f" ({exc.msg}: line {exc.lineno} column {exc.colno})"
                if isinstance(exc, json.JSONDecodeError)
                else ""
            )
            raise BadRequest(f"invalid parameters: the body is not valid JSON{where}") from None
        if not isinstance(data, dict):
            raise BadRequest("invalid parameters: the body must be a JSON object")
        try:
            return action, parse_request(action, data)
        except RequestValidationError as exc:
            details = "; ".join(str(e) for e in exc.errors)
            raise BadRequest(f"invalid parameters: {details}") from None

    def _apply(self, action: Action, request: ApiRequest) -> dict[str, Any]:
        state = self.state
        if isinstance(request, StartRequest):
            rec = state.start(
                request,
                stuck_status=self.faults.stuck_status if self.faults.stuck_new else None,
                doom_after_s=self.faults.abnormal_exit_delay_s(self.behaviour.start_duration_s),
            )
            return {"sid": rec.sid}
        if isinstance(request, QueryRequest):
            rec = state.query(request)
            return {"sid": rec.sid, "serverResponse": server_response(rec, state.now())}
        if isinstance(request, UpdateRequest):
            return {"sid": state.update(request).sid}
        if isinstance(request, UpdateLayoutRequest):
            return {"sid": state.update_layout(request).sid}
        if isinstance(request, StopRequest):
            # spec D9: the answer may carry more than the sid; like the real one, the status and
            # the files recorded so far.
            rec = state.stop(request)
            return {"sid": rec.sid, "serverResponse": server_response(rec, state.now())}
        raise BadRequest(f"unsupported action {action.value}")  # pragma: no cover
