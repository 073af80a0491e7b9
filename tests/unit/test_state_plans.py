"""The create plan: the CREATE script's one JSON argument (orchestrator/state/plans.py)."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from orchestrator.krtc.enums import Mode
from orchestrator.producer import validated_start_body
from orchestrator.state import CreateResult, HistoryEntry, Phase, Session, Source
from orchestrator.state.codec import session_to_hash
from orchestrator.state.keys import Keys
from orchestrator.state.plans import CreatePlan

KEYS = Keys("plan-test")
NOW = 1712345678.987654


def plan(**options: Any) -> CreatePlan:
    create: dict[str, Any] = {
        "now": NOW,
        "history_limit": 50,
        "idempotency_ttl_s": 86400,
        "app_id": "lee1234",
        "cname": "room:1",
        "uid": "rec",
        "mode": Mode.MIX,
        "request": {"appId": "lee1234", "cname": "room:1", "note": "säal"},
    }
    create.update(options)
    return CreatePlan.build(KEYS, **create)


def argument(created: CreatePlan) -> dict[str, Any]:
    assert len(created.args) == 1
    decoded = json.loads(str(created.args[0]))
    assert isinstance(decoded, dict)
    return decoded


def test_the_script_gets_one_json_argument_with_the_hash_of_the_new_session() -> None:
    created = plan()
    sent = argument(created)

    assert sent["id"] == created.session.id
    assert sent["now"] == repr(NOW)
    assert sent["ttl"] == "86400"
    hash_fields = sent["hash"]
    assert dict(zip(hash_fields[::2], hash_fields[1::2], strict=True)) == session_to_hash(
        created.session
    )
    assert all(isinstance(value, str) for value in hash_fields)
    assert (sent["idem"], sent["outbox"], sent["failed"]) == (0, 0, 0)
    assert "link" not in sent and "events" not in sent
    assert created.keys == [
        KEYS.session(created.session.id),
        KEYS.history(created.session.id),
        KEYS.identity("lee1234", "room:1", "rec"),
        KEYS.active(),
        KEYS.sessions(),
    ]


def test_non_ascii_text_is_sent_as_utf8_not_escaped() -> None:
    assert "säal" in str(plan().args[0])


def test_the_first_history_entry_is_what_the_model_writes() -> None:
    created = plan(why="start requested", source=Source.PRODUCER)

    expected = HistoryEntry(
        at=NOW,
        what=f"created (phase {Phase.PENDING.value}, desired recording)",
        why="start requested",
        source=Source.PRODUCER,
    ).model_dump_json()
    assert argument(created)["entry"] == expected


@pytest.mark.parametrize(
    ("now", "source"),
    [(1700000000, Source.POLL), (NOW, "operator"), (1e-7, Source.TASK)],
    ids=["int-time", "source-by-name", "tiny-time"],
)
def test_unusual_entry_arguments_go_through_the_model(now: float, source: Any) -> None:
    created = plan(now=now, source=source, why="because")

    expected = HistoryEntry(
        at=now, what="created (phase pending, desired recording)", why="because", source=source
    ).model_dump_json()
    assert argument(created)["entry"] == expected


def test_an_invalid_entry_argument_is_still_refused() -> None:
    with pytest.raises(ValueError):
        plan(source="nobody")


def test_keys_and_queue_indexes_follow_the_options() -> None:
    created = plan(idempotency_key="web-42", outbox=lambda sid: ("plan-test:lane", f"run {sid}"))
    sent = argument(created)

    assert created.keys[sent["idem"] - 1] == KEYS.idempotency("web-42")
    assert created.keys[sent["outbox"] - 1] == "plan-test:lane"
    assert sent["message"] == f"run {created.session.id}"


def test_a_restart_sends_the_link_and_what_a_restartable_session_has() -> None:
    failed = Session(
        id="01HAAAAAAAAAAAAAAAAAAAAAAA",
        app_id="lee1234",
        cname="room:1",
        uid="rec",
        mode=Mode.MIX,
        phase=Phase.FAILED,
        created_at=1.0,
        updated_at=2.0,
    )
    created = plan(restart_of=failed, restarts=1)
    sent = argument(created)

    assert created.keys[sent["failed"] - 1] == KEYS.session(failed.id)
    assert created.keys[sent["failed"]] == KEYS.history(failed.id)
    assert (sent["limit"], sent["failed_phase"], sent["recording"]) == (50, "failed", "recording")
    assert sent["link"]["what"] == f"set restarted_to {created.session.id}"
    assert created.session.restarted_from == failed.id


def test_the_created_result_is_the_planned_session_without_history() -> None:
    created = plan()

    result = created.verdict([created.session.id, "created"])

    assert isinstance(result, CreateResult)
    assert result == (created.session, True)
    assert result.session.history == []


PROFILE_BODY = {
    "appId": "lee1234",
    "cname": "krtc2",
    "uid": "rec",
    "mode": "mix",
    "clientRequest": {
        "recordingConfig": {"maxIdleTime": 30},
        "recordingFileConfig": {"avFileType": ["hls", "mp4"]},
        "storageConfig": {"profile": "meetings"},
    },
}


def containers(value: Any, found: set[int]) -> set[int]:
    if isinstance(value, dict | list):
        found.add(id(value))
        for item in value.values() if isinstance(value, dict) else value:
            containers(item, found)
    return found


def test_validation_leaves_the_callers_request_as_it_was_and_shares_nothing_with_it() -> None:
    request = copy.deepcopy(PROFILE_BODY)

    body = validated_start_body(request)

    assert request == PROFILE_BODY
    assert body["clientRequest"]["storageConfig"] == {"profile": "meetings"}
    assert not containers(request, set()) & containers(body, set())
