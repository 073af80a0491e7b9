"""``krtc-rec gc`` and ``krtc-rec export`` as a user runs them, on Redis' own clock."""

from __future__ import annotations

import json
import time

from orchestrator.krtc.enums import Mode
from orchestrator.state import Phase, SessionStore
from tests.integration.test_cli_sessions import ok, run_cli


def finished(store: SessionStore, cname: str) -> str:
    session_id = store.create(app_id="app", cname=cname, uid="rec", mode=Mode.MIX).session.id
    store.transition(session_id, to=Phase.RECORDING, why="test")
    store.transition(session_id, to=Phase.STOPPED, why="test")
    return session_id


def test_gc_deletes_only_what_outlived_its_retention_and_export_wrote_it_first(
    redis_url: str, key_prefix: str, make_store: object
) -> None:
    env = {"REDIS_URL": redis_url, "KRTC_REDIS_PREFIX": key_prefix}
    store = make_store(retention_s=60, idempotency_ttl_s=60)  # type: ignore[operator]
    # Given a session that finished 100 s ago (on Redis' clock), one that just did, one active
    old = finished(store, "old")
    store.redis.zadd(store.keys.finished(), {old: store.clock() - 100})
    young = finished(store, "young")
    active = store.create(app_id="app", cname="live", uid="rec", mode=Mode.MIX).session.id

    # export writes both finished sessions with their history, oldest first; not the active one
    exported = run_cli(None, "export", "--since", "0", **env)
    lines = [json.loads(line) for line in ok(exported).splitlines()]
    assert [x["id"] for x in lines] == [old, young]
    assert lines[0]["history"] and lines[0]["finished_at"] <= lines[1]["finished_at"]
    assert "exported 2 sessions" in exported.stderr

    # With a 30 s retention, only the older finished session is due
    retention = {**env, "KRTC_SESSION_RETENTION_S": "30"}
    dry = json.loads(ok(run_cli(None, "gc", "--dry-run", "--json", **retention)))
    assert dry["dry_run"] and dry["deleted"]["sessions"] == 1
    assert store.get(old) is not None

    done = run_cli(None, "gc", **retention)
    assert "sessions       1" in ok(done) and "deleted 1 record" in done.stderr

    shown = run_cli(None, "show", old, **env)
    assert shown.returncode == 4
    listed = {s["id"] for s in json.loads(ok(run_cli(None, "list", "--json", **env)))}
    assert listed == {young, active}
    # An active session is never deleted, however short the retention
    time.sleep(1.1)
    json.loads(ok(run_cli(None, "gc", "--json", **env, KRTC_SESSION_RETENTION_S="1")))
    assert store.get(active) is not None and store.get(young) is None
