"""Fault injection: latency, error answers, lost answers, abnormal exits and stuck recordings.

Faults are set at start-up (CLI flags) and changed at run time through ``/_sandbox/faults``. A
``POST`` merges a :class:`FaultSpec` into the current faults: the numbers it gives replace the
current ones, and the ``fail_next`` and ``apply_then_fail`` entries are queued behind the ones still
pending. Every random choice comes from one seedable :class:`random.Random`.

Kinds of fault, in the order a request meets them:

1. latency: ``latency_ms`` plus a uniform ``[0, jitter_ms]`` before anything else is done;
2. error answers without effect: the queued ``fail_next`` answers of an action, then a random error
   at ``error_rate`` (or that action's ``error_rates`` entry) with ``error_status``;
3. lost answers after the effect ("apply then fail"): the action is carried out, then the answer is
   a 500 (``how="error"``), never comes (``"hang"``: held until the client gives up or ``hang_s``
   passes, then closed) or the connection is closed at once (``"close"``);
4. recording faults: a new recording gets stuck below status 5 (``stuck_new``), or is doomed to
   exit abnormally (status 20) ``abnormal_exit_after_s`` after its start at ``abnormal_exit_rate``.
"""

from __future__ import annotations

import random
from collections import deque
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from orchestrator.krtc.enums import Action

__all__ = [
    "LostAnswer",
    "ForcedError",
    "ApplyThenFail",
    "FaultSpec",
    "InjectedError",
    "FaultInjector",
    "parse_action",
]

LostAnswer = Literal["error", "hang", "close"]


def parse_action(value: Any) -> Action:
    """An action from its wire name (``CloudRecordingStart``) or CLI name (``start``)."""
    if isinstance(value, Action):
        return value
    if not isinstance(value, str):
        raise ValueError("an action is a string such as 'start' or 'CloudRecordingStart'")
    try:
        return Action(value)
    except ValueError:
        return Action.from_short_name(value)


ActionName = Annotated[Action, BeforeValidator(parse_action)]
Rate = Annotated[float, Field(ge=0, le=1)]
Status = Annotated[int, Field(ge=400, le=599)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ForcedError(_Strict):
    """The next ``count`` calls of ``action`` answer ``status`` and have no effect."""

    action: ActionName
    status: Status = 500
    count: int = Field(default=1, ge=1)
    reason: str | None = None
    #: Sent as a ``Retry-After`` header (seconds), e.g. with a 429.
    retry_after_s: float | None = Field(default=None, ge=0)


class ApplyThenFail(_Strict):
    """The next ``count`` calls of ``action`` take effect, then their answer is lost."""

    action: ActionName
    how: LostAnswer = "error"
    count: int = Field(default=1, ge=1)


class FaultSpec(_Strict):
    """A ``POST /_sandbox/faults`` body; every field is optional."""

    latency_ms: float | None = Field(default=None, ge=0)
    jitter_ms: float | None = Field(default=None, ge=0)
    error_rate: Rate | None = None
    error_rates: dict[ActionName, Rate] | None = None
    error_status: Status | None = None
    fail_next: list[ForcedError] = Field(default_factory=list)
    apply_then_fail: list[ApplyThenFail] = Field(default_factory=list)
    abnormal_exit_rate: Rate | None = None
    abnormal_exit_after_s: float | None = Field(default=None, ge=0)
    stuck_new: bool | None = None
    stuck_status: int | None = Field(default=None, ge=0, le=4)
    #: Applied to these recordings at once: exit with status 20 now.
    abnormal_exit_sids: list[str] = Field(default_factory=list)
    #: Applied to these recordings at once: their status stays at ``stuck_status``.
    stuck_sids: list[str] = Field(default_factory=list)


@dataclass(frozen=True)
class InjectedError:
    """An error answer chosen by the injector."""

    status: int
    reason: str
    retry_after_s: float | None = None


class FaultInjector:
    """The faults in force, and the random choices they make.

    Args:
        rng: the source of every random choice; seed it for reproducible runs.
    """

    def __init__(self, rng: random.Random) -> None:
        self._rng = rng
        self.clear()

    def clear(self) -> None:
        """Remove every fault."""
        self.latency_ms = 0.0
        self.jitter_ms = 0.0
        self.error_rate = 0.0
        self.error_rates: dict[Action, float] = {}
        self.error_status = 500
        self.abnormal_exit_rate = 0.0
        self.abnormal_exit_after_s: float | None = None
        self.stuck_new = False
        self.stuck_status = 2
        self._fail_next: dict[Action, deque[ForcedError]] = {a: deque() for a in Action}
        self._lose: dict[Action, deque[ApplyThenFail]] = {a: deque() for a in Action}

    def apply(self, spec: FaultSpec) -> None:
        """Merge ``spec`` into the faults in force (see the module docstring)."""
        for name in (
            "latency_ms",
            "jitter_ms",
            "error_rate",
            "error_status",
            "abnormal_exit_rate",
            "abnormal_exit_after_s",
            "stuck_new",
            "stuck_status",
        ):
            value = getattr(spec, name)
            if value is not None:
                setattr(self, name, value)
        if spec.error_rates is not None:
            self.error_rates.update(spec.error_rates)
        for forced in spec.fail_next:
            self._fail_next[forced.action].append(forced.model_copy())
        for lost in spec.apply_then_fail:
            self._lose[lost.action].append(lost.model_copy())

    def delay_s(self) -> float:
        """The latency to add to the next request, in seconds."""
        if not self.latency_ms and not self.jitter_ms:
            return 0.0
        jitter = self._rng.uniform(0.0, self.jitter_ms) if self.jitter_ms else 0.0
        return (self.latency_ms + jitter) / 1000.0

    def error_before(self, action: Action) -> InjectedError | None:
        """An error to answer instead of carrying out ``action``, or ``None``."""
        queue = self._fail_next[action]
        if queue:
            forced = queue[0]
            forced.count -= 1
            if forced.count <= 0:
                queue.popleft()
            reason = forced.reason or f"{_kind(forced.status)} (injected: HTTP {forced.status})"
            return InjectedError(forced.status, reason, forced.retry_after_s)
        rate = self.error_rates.get(action, self.error_rate)
        if rate and self._rng.random() < rate:
            reason = f"{_kind(self.error_status)} (injected at rate {rate:g})"
            return InjectedError(self.error_status, reason)
        return None

    def lost_answer(self, action: Action) -> LostAnswer | None:
        """How the answer of an applied ``action`` is lost, or ``None`` to answer normally."""
        queue = self._lose[action]
        if not queue:
            return None
        lost = queue[0]
        lost.count -= 1
        if lost.count <= 0:
            queue.popleft()
        return lost.how

    def abnormal_exit_delay_s(self, start_duration_s: float) -> float | None:
        """For a new recording: seconds after its start at which it exits abnormally, or None."""
        if self.abnormal_exit_rate and self._rng.random() < self.abnormal_exit_rate:
            if self.abnormal_exit_after_s is not None:
                return self.abnormal_exit_after_s
            return 2 * start_duration_s
        return None

    def to_dict(self) -> dict[str, Any]:
        """The faults in force, JSON-ready."""
        return {
            "latency_ms": self.latency_ms,
            "jitter_ms": self.jitter_ms,
            "error_rate": self.error_rate,
            "error_rates": {a.short_name: r for a, r in self.error_rates.items()},
            "error_status": self.error_status,
            "fail_next": [
                f.model_dump(mode="json") | {"action": a.short_name}
                for a, q in self._fail_next.items()
                for f in q
            ],
            "apply_then_fail": [
                x.model_dump(mode="json") | {"action": a.short_name}
                for a, q in self._lose.items()
                for x in q
            ],
            "abnormal_exit_rate": self.abnormal_exit_rate,
            "abnormal_exit_after_s": self.abnormal_exit_after_s,
            "stuck_new": self.stuck_new,
            "stuck_status": self.stuck_status,
        }


def _kind(status: int) -> str:
    """How an injected error of ``status`` describes itself."""
    if status == 429:
        return "too many requests"
    if status >= 500:
        return "internal error"
    return {
        400: "bad request",
        401: "unauthorized",
        403: "forbidden",
        404: "not found",
        409: "conflict",
    }.get(status, "refused")
