"""When to retry a failed call and how long to wait first.

One pure decision (:func:`should_retry`) and one backoff (:func:`delay_s`: capped exponential with
full jitter, a server's ``Retry-After`` as a floor). The synchronous CLI loops with
:func:`call_with_retries`; Celery tasks use the same two functions to pick their countdown.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from orchestrator.krtc.errors import KrtcApiError, RateLimitedError

__all__ = ["RetryPolicy", "should_retry", "delay_s", "call_with_retries", "QUICK_RETRIES"]

T = TypeVar("T")


@dataclass(frozen=True)
class RetryPolicy:
    """How many attempts in all, and the backoff's base and cap in seconds."""

    max_attempts: int
    base_s: float
    max_s: float

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if self.base_s < 0 or self.max_s < self.base_s:
            raise ValueError("need 0 <= base_s <= max_s")


#: The CLI's few quick retries of a synchronous call.
QUICK_RETRIES = RetryPolicy(max_attempts=3, base_s=0.5, max_s=2.0)


def should_retry(error: BaseException, attempt: int, policy: RetryPolicy) -> bool:
    """Whether attempt number ``attempt`` (1-based), which failed with ``error``, gets another."""
    return isinstance(error, KrtcApiError) and error.retryable and attempt < policy.max_attempts


def delay_s(
    error: BaseException,
    attempt: int,
    policy: RetryPolicy,
    *,
    rng: Callable[[], float] = random.random,
) -> float:
    """Seconds to wait after failed attempt ``attempt``: full jitter over a capped exponential.

    A ``Retry-After`` from the server is honoured as a floor, still capped by ``policy.max_s``.
    """
    ceiling: float = min(policy.max_s, policy.base_s * (2 ** (attempt - 1)))
    wait: float = rng() * ceiling
    if isinstance(error, RateLimitedError) and error.retry_after_s is not None:
        wait = max(wait, min(error.retry_after_s, policy.max_s))
    return wait


def call_with_retries(
    fn: Callable[[], T],
    policy: RetryPolicy,
    *,
    sleep: Callable[[float], None] = time.sleep,
    rng: Callable[[], float] = random.random,
    on_retry: Callable[[BaseException, int, float], None] | None = None,
) -> T:
    """Call ``fn`` until it succeeds, fails permanently, or the policy's attempts are spent."""
    attempt = 1
    while True:
        try:
            return fn()
        except KrtcApiError as exc:
            if not should_retry(exc, attempt, policy):
                raise
            wait = delay_s(exc, attempt, policy, rng=rng)
            if on_retry is not None:
                on_retry(exc, attempt, wait)
            sleep(wait)
            attempt += 1
