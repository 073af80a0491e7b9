"""Key names of the alert store (orchestrator/state/keys.py): under the prefix, injective, and
never equal to a key of the session store."""

from __future__ import annotations

import itertools

from orchestrator.alerts import AlertKind
from orchestrator.state import Keys

PARTS = ["", "a", ":", "a:", ":a", "a:b", "%", "%3A", "*", "é", "lost", "history"]


def test_alert_keys_under_the_default_prefix() -> None:
    keys = Keys()

    assert keys.alert("01ABC", "lost") == "krtc:alert:01ABC:lost"
    assert keys.alerts() == "krtc:alerts"
    assert keys.alert_counts() == "krtc:alerts:count"


def test_alert_keys_start_with_the_prefix() -> None:
    keys = Keys("app:rec")

    for name in (keys.alert("s", "stuck"), keys.alerts(), keys.alert_counts()):
        assert name.startswith("app:rec:")


def test_alert_markers_are_injective_over_awkward_session_ids() -> None:
    keys = Keys()
    pairs = list(itertools.product(PARTS, sorted({k.value for k in AlertKind} | set(PARTS))))

    names = {keys.alert(session_id, kind) for session_id, kind in pairs}

    assert len(names) == len(pairs)
    assert keys.alert("a:lost", "stuck") != keys.alert("a", "lost:stuck")


def test_no_alert_key_equals_a_session_store_key() -> None:
    keys = Keys()
    alert_keys = {keys.alert(s, k) for s, k in itertools.product(PARTS, PARTS)}
    alert_keys |= {keys.alerts(), keys.alert_counts()}
    others = {keys.active(), keys.sessions(), keys.dead_letters()}
    for value in PARTS:
        others |= {keys.session(value), keys.history(value), keys.idempotency(value)}
        others |= {keys.dead_letter(value)}

    assert not alert_keys & others
    assert len(alert_keys) == len(PARTS) ** 2 + 2
