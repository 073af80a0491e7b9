"""The restart-policy fields of a session (spec D14): how they are stored and what they allow."""

from __future__ import annotations

import pytest

from orchestrator.krtc.enums import Mode
from orchestrator.state import Session
from orchestrator.state.codec import encode_value, session_from_hash, session_to_hash
from orchestrator.state.session import DEFAULT_MAX_RESTARTS

SID = "01HXYZXYZXYZXYZXYZXYZXYZXY"


def session(**changes: object) -> Session:
    fields: dict[str, object] = {
        "id": SID,
        "app_id": "app",
        "cname": "room",
        "uid": "7",
        "mode": Mode.MIX,
        "created_at": 1.0,
        "updated_at": 2.0,
    }
    fields.update(changes)
    return Session(**fields)  # type: ignore[arg-type]


def test_the_policy_survives_a_round_trip() -> None:
    policy = session(restart_on_failure=True, max_restarts=3, restarts=2)

    stored = session_to_hash(policy)

    assert (stored["restart_on_failure"], stored["max_restarts"], stored["restarts"]) == (
        "1",
        "3",
        "2",
    )
    assert session_from_hash(SID, stored) == policy


def test_the_flag_is_absent_when_off_and_a_hash_from_before_the_policy_reads_as_off() -> None:
    stored = session_to_hash(session())
    assert "restart_on_failure" not in stored

    older = {k: v for k, v in stored.items() if k not in ("max_restarts", "restarts")}
    decoded = session_from_hash(SID, older)

    assert decoded.restart_on_failure is False
    assert (decoded.max_restarts, decoded.restarts) == (DEFAULT_MAX_RESTARTS, 0)


def test_a_flag_must_be_a_boolean() -> None:
    with pytest.raises(TypeError, match="restart_on_failure"):
        encode_value("restart_on_failure", 1)


@pytest.mark.parametrize(
    ("on", "restarts", "max_restarts", "allowed"),
    [(True, 0, 1, True), (True, 1, 1, False), (True, 1, 3, True), (False, 0, 1, False)],
)
def test_may_restart_while_the_chain_has_restarts_left(
    on: bool, restarts: int, max_restarts: int, allowed: bool
) -> None:
    policy = session(restart_on_failure=on, restarts=restarts, max_restarts=max_restarts)
    assert policy.may_restart is allowed
