"""The control and inspection API of the sandbox, under ``/_sandbox/`` (JSON in, JSON out).

Not signed: the sandbox is a local test double, and this API is how tests and people drive it.

==========  ============================  ==========================================================
method      path                          what
==========  ============================  ==========================================================
GET         /_sandbox/                    endpoint, access key, seed, behaviour, faults, counts
GET         /_sandbox/recordings          recordings (filters: appId, cname, uid, active=true|false)
GET         /_sandbox/recordings/SID      one recording
POST        /_sandbox/recordings/SID/...  ``status`` body ``{"status": 0..8 | 20 | null}``
GET, POST   /_sandbox/channels            channel users; POST ``{"appId", "cname", "users": []}``
GET, POST   /_sandbox/faults              faults in force; POST merges a fault spec
DELETE      /_sandbox/faults              clear every fault (stuck and doomed recordings too)
GET, PATCH  /_sandbox/config              run-time behaviour (timings, allow-list, ...)
POST        /_sandbox/reset               back to the start-up state: no recordings, no counts
GET         /_sandbox/stats               counters per action and outcome, and per HTTP status
GET         /_sandbox/requests            the request log (``?limit=N``), secrets masked
GET, POST   /_sandbox/clock               the sandbox clock; POST ``{"advance_s": N}``
==========  ============================  ==========================================================

Errors are ``{"code": <status>, "reason": "..."}`` like the API's own.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from tornado.web import RequestHandler

from orchestrator.krtc.enums import RecordingStatus
from orchestrator.sandbox.errors import SandboxApiError, error_body
from orchestrator.sandbox.faults import FaultSpec
from orchestrator.sandbox.service import Sandbox

__all__ = ["ChannelUsers", "SetStatus", "AdvanceClock", "control_routes"]

_STATUSES = sorted(int(s) for s in RecordingStatus)


class ChannelUsers(BaseModel):
    """``POST /_sandbox/channels``: the simulated users now in a channel."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    app_id: str = Field(alias="appId", min_length=1)
    cname: str = Field(min_length=1)
    users: list[str]


class SetStatus(BaseModel):
    """``POST /_sandbox/recordings/SID/status``: pin (0..7), end (8, 20) or unpin (null)."""

    model_config = ConfigDict(extra="forbid")

    status: int | None


class AdvanceClock(BaseModel):
    """``POST /_sandbox/clock``: move the recordings' clock forward (signatures keep real time)."""

    model_config = ConfigDict(extra="forbid")

    advance_s: float = Field(ge=0)


class _ControlError(Exception):
    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


def _validation_reason(exc: ValidationError) -> str:
    parts = []
    for error in exc.errors(include_url=False):
        where = ".".join(str(p) for p in error["loc"]) or "(body)"
        parts.append(f"{where}: {error['msg']}")
    return "invalid body: " + "; ".join(parts)


class ControlHandler(RequestHandler):
    """Base of the control handlers: JSON bodies, and errors as ``{"code", "reason"}``."""

    def initialize(self, sandbox: Sandbox) -> None:
        self.sandbox = sandbox

    def set_default_headers(self) -> None:
        self.set_header("Content-Type", "application/json;charset=UTF-8")

    def reply(self, data: Any, status: int = 200) -> None:
        """Send ``data`` as JSON."""
        self.set_status(status)
        self.finish(json.dumps(data, ensure_ascii=False))

    def json_body(self) -> dict[str, Any]:
        """The request's JSON object (an empty body is ``{}``)."""
        raw = self.request.body
        if not raw.strip():
            return {}
        try:
            data = json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            raise _ControlError(400, "the body is not valid JSON") from None
        if not isinstance(data, dict):
            raise _ControlError(400, "the body must be a JSON object")
        return data

    def parse(self, model: type[Any]) -> Any:
        """The body validated as ``model``."""
        try:
            return model.model_validate(self.json_body())
        except ValidationError as exc:
            raise _ControlError(400, _validation_reason(exc)) from None

    def _handle_request_exception(self, e: BaseException) -> None:
        if isinstance(e, _ControlError | SandboxApiError):
            self.set_status(e.status)
            self.finish(json.dumps(error_body(e.status, e.reason)))
            return
        super()._handle_request_exception(e)

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        self.finish(json.dumps(error_body(status_code, self._reason)))


class IndexHandler(ControlHandler):
    def get(self) -> None:
        sb = self.sandbox
        host = f"{self.request.protocol}://{self.request.host}"
        self.reply(
            {
                "endpoint": f"{host}/cloud",
                "control": f"{host}/_sandbox/",
                "accessKey": sb.config.credentials.access_key,
                "region": sb.config.region,
                "service": sb.config.service,
                "seed": sb.seed,
                "behaviour": sb.behaviour.to_dict(),
                "faults": sb.faults.to_dict(),
                "counts": sb.state.counts(),
            }
        )


def _flag(value: str | None) -> bool | None:
    if value is None:
        return None
    lowered = value.lower()
    if lowered in ("1", "true", "yes"):
        return True
    if lowered in ("0", "false", "no"):
        return False
    raise _ControlError(400, f"active must be true or false, got {value[:20]!r}")


class RecordingsHandler(ControlHandler):
    def get(self) -> None:
        state = self.sandbox.state
        now = state.now()
        active = _flag(self.get_query_argument("active", None))
        wanted = {
            key: self.get_query_argument(key, None) for key in ("appId", "cname", "uid", "mode")
        }
        out = []
        for rec in list(state.recordings.values()):
            view = rec.view(now)
            if active is not None and view["active"] is not active:
                continue
            if any(v is not None and view[k] != v for k, v in wanted.items()):
                continue
            out.append(view)
        self.reply({"recordings": out})


class RecordingHandler(ControlHandler):
    def get(self, sid: str) -> None:
        state = self.sandbox.state
        self.reply(state.get(sid).view(state.now()))


class RecordingStatusHandler(ControlHandler):
    def post(self, sid: str) -> None:
        body: SetStatus = self.parse(SetStatus)
        if body.status is not None and body.status not in _STATUSES:
            raise _ControlError(400, f"status must be one of {_STATUSES} or null")
        state = self.sandbox.state
        rec = state.set_status(sid, body.status)
        self.reply(rec.view(state.now()))


class ChannelsHandler(ControlHandler):
    def get(self) -> None:
        state = self.sandbox.state
        self.reply(
            {
                "channels": state.channels(),
                "defaultUsers": list(state.behaviour.default_channel_users),
            }
        )

    def post(self) -> None:
        body: ChannelUsers = self.parse(ChannelUsers)
        state = self.sandbox.state
        state.set_users(body.app_id, body.cname, body.users)
        users = state.users(body.app_id, body.cname)
        self.reply({"appId": body.app_id, "cname": body.cname, "users": users})

    put = post


class FaultsHandler(ControlHandler):
    def get(self) -> None:
        self.reply(self.sandbox.faults.to_dict())

    def post(self) -> None:
        spec: FaultSpec = self.parse(FaultSpec)
        state = self.sandbox.state
        for sid in (*spec.abnormal_exit_sids, *spec.stuck_sids):
            state.get(sid)  # 404 before anything changes
        self.reply(self.sandbox.inject(spec))

    def delete(self) -> None:
        self.sandbox.clear_faults()
        self.reply(self.sandbox.faults.to_dict())


class ConfigHandler(ControlHandler):
    def get(self) -> None:
        self.reply(self.sandbox.behaviour.to_dict())

    def patch(self) -> None:
        try:
            behaviour = self.sandbox.configure(self.json_body())
        except ValidationError as exc:
            raise _ControlError(400, _validation_reason(exc)) from None
        self.reply(behaviour.to_dict())


class ResetHandler(ControlHandler):
    def post(self) -> None:
        self.sandbox.reset()
        self.reply({"reset": True, "counts": self.sandbox.state.counts()})


class StatsHandler(ControlHandler):
    def get(self) -> None:
        self.reply(self.sandbox.journal.stats() | {"recordings": self.sandbox.state.counts()})


class RequestsHandler(ControlHandler):
    def get(self) -> None:
        raw = self.get_query_argument("limit", None)
        try:
            limit = None if raw is None else int(raw)
        except ValueError:
            raise _ControlError(400, "limit must be an integer") from None
        self.reply({"requests": self.sandbox.journal.entries(limit)})


class ClockHandler(ControlHandler):
    def get(self) -> None:
        state = self.sandbox.state
        self.reply({"now": state.now(), "offset_s": state.offset_s})

    def post(self) -> None:
        body: AdvanceClock = self.parse(AdvanceClock)
        state = self.sandbox.state
        state.advance(body.advance_s)
        self.reply({"now": state.now(), "offset_s": state.offset_s})


def control_routes(sandbox: Sandbox, prefix: str) -> list[tuple[str, type[RequestHandler], Any]]:
    """The Tornado routes of the control API under ``prefix`` (e.g. ``/_sandbox``)."""
    args = {"sandbox": sandbox}
    sid = r"([^/]+)"
    return [
        (rf"{prefix}/?", IndexHandler, args),
        (rf"{prefix}/recordings/?", RecordingsHandler, args),
        (rf"{prefix}/recordings/{sid}/?", RecordingHandler, args),
        (rf"{prefix}/recordings/{sid}/status/?", RecordingStatusHandler, args),
        (rf"{prefix}/channels/?", ChannelsHandler, args),
        (rf"{prefix}/faults/?", FaultsHandler, args),
        (rf"{prefix}/config/?", ConfigHandler, args),
        (rf"{prefix}/reset/?", ResetHandler, args),
        (rf"{prefix}/stats/?", StatsHandler, args),
        (rf"{prefix}/requests/?", RequestsHandler, args),
        (rf"{prefix}/clock/?", ClockHandler, args),
    ]
