"""Alert kinds, severities and the alert model (orchestrator/alerts/model.py, render.py)."""

from __future__ import annotations

import pytest

from orchestrator.alerts import SEVERITY_OF, Alert, AlertKind, Severity
from orchestrator.alerts.render import facts, title, truncate, truncate_utf8, when


def make_alert(**overrides: object) -> Alert:
    fields: dict[str, object] = {
        "id": "a1",
        "kind": AlertKind.ABNORMAL_EXIT,
        "severity": Severity.CRITICAL,
        "session_id": "01SESSION",
        "app_id": "app",
        "cname": "room",
        "uid": "7",
        "sid": "sid-1",
        "server_status": 20,
        "reason": "status 20",
        "at": 1_700_000_000.0,
        "first_at": 1_700_000_000.0,
    }
    fields.update(overrides)
    return Alert.model_validate(fields)


def test_the_kinds_are_known_and_documented() -> None:
    assert {k.value for k in AlertKind} == {
        "abnormal_exit",
        "lost",
        "stuck",
        "orphaned",
        "stop_failing",
        "start_failed",
        "dead_letter",
        "missed",
        "schedule_failed",
        "clock_skew",
        "stop_unconfirmed",
        "stray_recording",
        "corrupt_session",
    }


def test_every_kind_has_a_severity_and_a_summary() -> None:
    assert set(SEVERITY_OF) == set(AlertKind)
    for kind in AlertKind:
        assert isinstance(kind.severity, Severity)
        assert kind.summary


@pytest.mark.parametrize(
    ("kind", "severity"),
    [
        ("abnormal_exit", "critical"),
        ("lost", "critical"),
        ("stop_failing", "critical"),
        ("stuck", "warning"),
        ("orphaned", "warning"),
        ("start_failed", "warning"),
        ("dead_letter", "warning"),
        ("corrupt_session", "critical"),
    ],
)
def test_severity_by_kind(kind: str, severity: str) -> None:
    assert AlertKind(kind).severity == Severity(severity)


def test_severities_sort_the_most_urgent_first() -> None:
    ordered = sorted(Severity, key=lambda s: s.rank)

    assert ordered == [Severity.CRITICAL, Severity.WARNING, Severity.INFO]


def test_an_unknown_kind_is_refused() -> None:
    with pytest.raises(ValueError):
        AlertKind("meltdown")


def test_an_alert_round_trips_through_json() -> None:
    alert = make_alert(reason="ünïcødé: room:1")

    assert Alert.model_validate_json(alert.model_dump_json()) == alert


def test_a_first_alert_is_not_a_reminder_and_says_so_in_its_title() -> None:
    first = make_alert()
    reminder = make_alert(reminder=2, at=1_700_000_600.0)

    assert not first.is_reminder
    assert reminder.is_reminder
    assert title(first) == "[CRITICAL] KRTC recording exited abnormally"
    assert title(reminder).startswith("reminder #2: [CRITICAL]")


def test_facts_name_the_identity_and_show_a_dash_for_unknowns() -> None:
    rows = dict(facts(make_alert(sid=None, server_status=None)))

    assert rows["Session"] == "01SESSION"
    assert rows["App ID"] == "app"
    assert rows["Channel"] == "room"
    assert rows["UID"] == "7"
    assert rows["SID"] == "-"
    assert rows["Server status"] == "-"
    assert rows["Raised"] == "2023-11-14 22:13:20 UTC"
    assert "First raised" not in rows


def test_a_reminder_also_says_when_it_was_first_raised() -> None:
    rows = dict(facts(make_alert(reminder=1, at=1_700_000_060.0)))

    assert rows["First raised"] == when(1_700_000_000.0)
    assert rows["Raised"] == when(1_700_000_060.0)


def test_truncate_marks_a_cut() -> None:
    assert truncate("abc", 3) == "abc"
    assert truncate("abcdef", 4) == "abc…"


def test_truncate_utf8_never_cuts_inside_a_character() -> None:
    cut = truncate_utf8("录制" * 100, 50)

    assert len(cut.encode("utf-8")) <= 50
    assert cut.endswith("…")
    cut.encode("utf-8").decode("utf-8")
