"""``krtc-rec alerts`` as a user runs it (a subprocess), on alerts raised through the Alerter."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest
from pydantic import SecretStr

from orchestrator.alerts import Alerter, AlertStore
from orchestrator.krtc.enums import Mode
from orchestrator.settings import Settings, settings_env
from orchestrator.state import SessionStore
from tests.conftest import SENTINEL_SECRET, SENTINEL_STORAGE_SECRET, TEST_ACCESS_KEY

WEBHOOK_SECRET = "wHoOk-SeNtInEl-91be"
SECRETS = (SENTINEL_SECRET, SENTINEL_STORAGE_SECRET, WEBHOOK_SECRET)


@pytest.fixture
def cli_settings(redis_url: str, key_prefix: str) -> Settings:
    return Settings(
        endpoint="http://127.0.0.1:9/cloud",
        access_key=TEST_ACCESS_KEY,
        secret_key=SecretStr(SENTINEL_SECRET),
        alert_webhook_secret=SecretStr(WEBHOOK_SECRET),
        redis_url=redis_url,
        redis_prefix=key_prefix,
    )


@pytest.fixture
def alerter(cli_settings: Settings, store: SessionStore) -> Iterator[Alerter]:
    alerter = Alerter.from_settings(cli_settings, store, secrets=[SENTINEL_STORAGE_SECRET])
    yield alerter
    alerter.close(1.0)


def run_cli(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KRTC_")}
    env.update(settings_env(settings))
    done = subprocess.run(
        [sys.executable, "-m", "orchestrator.cli", "alerts", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    for secret in SECRETS:
        assert secret not in done.stdout + done.stderr, "a secret reached the output"
    return done


def listed(settings: Settings, *args: str) -> list[dict[str, Any]]:
    done = run_cli(settings, "--json", *args)
    assert done.returncode == 0, done.stderr
    result: list[dict[str, Any]] = json.loads(done.stdout)
    return result


@pytest.fixture
def raised(store: SessionStore, alerter: Alerter) -> list[str]:
    """Two sessions and three alerts (oldest first): abnormal_exit, stuck, lost; their ids."""
    ids = []
    for cname in ("room-a", "room-b"):
        session = store.create(app_id="app1", cname=cname, uid="9", mode=Mode.MIX).session
        ids.append(session.id)
    a, b = ids
    leaky = f"exited; key {SENTINEL_SECRET}, storage {SENTINEL_STORAGE_SECRET}, {WEBHOOK_SECRET}"
    assert alerter.raise_alert("abnormal_exit", a, leaky, sid="c4pl5e1kereqmo8pac40") is not None
    assert alerter.raise_alert("stuck", b, "starting for 400s (status 2)") is not None
    assert alerter.raise_alert("lost", a, "404 on query") is not None
    assert alerter.raise_alert("lost", a, "404 on query again") is None, "deduplicated"
    return ids


def test_alerts_lists_the_recent_alerts_newest_first_as_json_and_table_without_secrets(
    cli_settings: Settings, store: SessionStore, raised: list[str]
) -> None:
    a, b = raised
    found = listed(cli_settings)
    assert [(x["kind"], x["session_id"]) for x in found] == [
        ("lost", a),
        ("stuck", b),
        ("abnormal_exit", a),
    ]
    stored = AlertStore(store.redis, keys=store.keys).recent(10)
    assert found == [x.model_dump(mode="json") for x in stored]
    exit_alert = found[2]
    assert exit_alert["severity"] == "critical"
    assert (exit_alert["cname"], exit_alert["uid"]) == ("room-a", "9")
    assert exit_alert["sid"] == "c4pl5e1kereqmo8pac40" and "***" in exit_alert["reason"]

    table = run_cli(cli_settings)
    assert table.returncode == 0, table.stderr
    header, *rows = table.stdout.splitlines()
    columns = ["AT", "KIND", "SEVERITY", "SESSION", "CNAME", "UID", "SID", "STATUS", "REASON"]
    assert header.split() == columns
    assert len(rows) == 3
    assert rows[0].split()[2:6] == ["lost", "critical", a, "room-a"]
    assert rows[1].split()[2:5] == ["stuck", "warning", b]
    assert "c4pl5e1kereqmo8pac40" in rows[2] and "exited; key ***" in rows[2]


def test_alerts_filters_by_kind_and_session_then_keeps_the_newest(
    cli_settings: Settings, raised: list[str]
) -> None:
    a, b = raised
    assert [x["kind"] for x in listed(cli_settings, "--session", a)] == ["lost", "abnormal_exit"]
    assert [x["session_id"] for x in listed(cli_settings, "--kind", "stuck")] == [b]
    newest = listed(cli_settings, "--kind", "abnormal_exit", "--kind", "stuck", "--limit", "1")
    assert [x["kind"] for x in newest] == ["stuck"]
    assert [x["kind"] for x in listed(cli_settings, "--limit", "2")] == ["lost", "stuck"]
    assert listed(cli_settings, "--session", "no-such-session") == []


def test_alerts_with_none_raised_says_so_and_refuses_unknown_kinds(cli_settings: Settings) -> None:
    empty = run_cli(cli_settings)
    assert (empty.returncode, empty.stdout, empty.stderr.strip()) == (0, "", "no alerts")
    bad = run_cli(cli_settings, "--kind", "bogus")
    assert bad.returncode == 2 and "bogus" in bad.stderr
