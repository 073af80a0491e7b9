"""Retry decisions and backoff (orchestrator/krtc/retry.py)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from orchestrator.krtc.enums import Action
from orchestrator.krtc.errors import (
    ConflictError,
    InvalidRequestError,
    KrtcApiError,
    NotFoundError,
    RateLimitedError,
    ServerError,
    TransportError,
    error_for_response,
)
from orchestrator.krtc.retry import (
    QUICK_RETRIES,
    RetryPolicy,
    call_with_retries,
    delay_s,
    should_retry,
)

A = Action.QUERY
POLICY = RetryPolicy(max_attempts=4, base_s=1.0, max_s=5.0)


def server_error() -> ServerError:
    return ServerError(A, "internal", status=500)


def rate_limited(after: float | None) -> RateLimitedError:
    return RateLimitedError(A, "slow down", status=429, retry_after_s=after)


@pytest.mark.parametrize(
    "error",
    [
        server_error(),
        rate_limited(None),
        TransportError(A, "timeout", maybe_applied=True),
        ServerError(A, "bad gateway", status=502),
    ],
)
def test_transient_errors_are_retried_within_the_budget(error: KrtcApiError) -> None:
    assert should_retry(error, 1, POLICY)
    assert should_retry(error, 3, POLICY)
    assert not should_retry(error, 4, POLICY)
    assert not should_retry(error, 5, POLICY)


@pytest.mark.parametrize(
    "error",
    [
        InvalidRequestError(A, "bad", status=400),
        NotFoundError(A, "gone", status=404),
        ConflictError(A, "running", status=409),
        ValueError("not an API error"),
        RuntimeError("boom"),
    ],
)
def test_other_errors_are_never_retried(error: BaseException) -> None:
    assert not should_retry(error, 1, POLICY)


def test_a_single_attempt_policy_never_retries() -> None:
    assert not should_retry(server_error(), 1, RetryPolicy(max_attempts=1, base_s=0, max_s=0))


@pytest.mark.parametrize(
    ("attempt", "ceiling"),
    [(1, 1.0), (2, 2.0), (3, 4.0), (4, 5.0), (10, 5.0)],
)
def test_delay_is_full_jitter_under_a_capped_exponential(attempt: int, ceiling: float) -> None:
    error = server_error()
    assert delay_s(error, attempt, POLICY, rng=lambda: 0.0) == 0.0
    assert delay_s(error, attempt, POLICY, rng=lambda: 1.0) == pytest.approx(ceiling)
    assert delay_s(error, attempt, POLICY, rng=lambda: 0.5) == pytest.approx(ceiling / 2)


@pytest.mark.parametrize(
    ("after", "rng", "expected"),
    [
        (3.0, 0.0, 3.0),  # a floor above the jitter
        (0.5, 1.0, 1.0),  # the jitter above the floor
        (60.0, 0.0, 5.0),  # capped by max_s
        (None, 0.0, 0.0),  # no header: plain jitter
    ],
)
def test_retry_after_is_a_floor_capped_by_max(
    after: float | None, rng: float, expected: float
) -> None:
    assert delay_s(rate_limited(after), 1, POLICY, rng=lambda: rng) == pytest.approx(expected)


def test_retry_after_only_counts_for_rate_limits() -> None:
    # A server error has no Retry-After: the jitter alone decides.
    assert delay_s(server_error(), 1, POLICY, rng=lambda: 0.0) == 0.0


@pytest.mark.parametrize(
    ("attempts", "base", "cap"),
    [(0, 1.0, 2.0), (1, -1.0, 2.0), (1, 3.0, 2.0)],
)
def test_nonsense_policies_are_refused(attempts: int, base: float, cap: float) -> None:
    with pytest.raises(ValueError):
        RetryPolicy(max_attempts=attempts, base_s=base, max_s=cap)


def test_the_quick_policy_is_small() -> None:
    assert QUICK_RETRIES.max_attempts == 3
    assert QUICK_RETRIES.max_s <= 2.0


class Responses:
    """A fake call that answers with the given HTTP statuses in order."""

    def __init__(self, *statuses: int) -> None:
        self.statuses = list(statuses)
        self.calls = 0

    def __call__(self) -> str:
        status = self.statuses[min(self.calls, len(self.statuses) - 1)]
        self.calls += 1
        error = error_for_response(A, status, "" if status != 200 else '{"sid": "s"}')
        if error is not None:
            raise error
        return f"ok after {self.calls}"


def recorder() -> tuple[list[float], Callable[[float], None]]:
    delays: list[float] = []
    return delays, delays.append


def test_two_server_errors_then_success_takes_three_calls() -> None:
    call = Responses(500, 500, 200)
    delays, sleep = recorder()
    seen: list[tuple[str, int, float]] = []
    result = call_with_retries(
        call,
        POLICY,
        sleep=sleep,
        rng=lambda: 1.0,
        on_retry=lambda exc, attempt, wait: seen.append((type(exc).__name__, attempt, wait)),
    )
    assert result == "ok after 3"
    assert call.calls == 3
    assert delays == [1.0, 2.0]
    assert seen == [("ServerError", 1, 1.0), ("ServerError", 2, 2.0)]


def test_a_bad_request_is_not_retried() -> None:
    call = Responses(400, 200)
    delays, sleep = recorder()
    with pytest.raises(InvalidRequestError):
        call_with_retries(call, POLICY, sleep=sleep, rng=lambda: 1.0)
    assert call.calls == 1
    assert delays == []


def test_a_server_that_keeps_failing_gets_max_attempts_calls() -> None:
    call = Responses(500)
    delays, sleep = recorder()
    with pytest.raises(ServerError):
        call_with_retries(call, POLICY, sleep=sleep, rng=lambda: 1.0)
    assert call.calls == POLICY.max_attempts
    assert delays == [1.0, 2.0, 4.0]


def test_a_rate_limit_waits_at_least_retry_after() -> None:
    answers: list[KrtcApiError | None] = [rate_limited(3.0), None]
    calls = 0

    def call() -> str:
        nonlocal calls
        calls += 1
        error = answers.pop(0)
        if error is not None:
            raise error
        return "ok"

    delays, sleep = recorder()
    assert call_with_retries(call, POLICY, sleep=sleep, rng=lambda: 0.0) == "ok"
    assert calls == 2
    assert delays == [3.0]


def test_non_api_exceptions_pass_straight_through() -> None:
    calls = 0

    def call() -> str:
        nonlocal calls
        calls += 1
        raise KeyError("bug")

    delays, sleep = recorder()
    with pytest.raises(KeyError):
        call_with_retries(call, POLICY, sleep=sleep)
    assert calls == 1 and delays == []
