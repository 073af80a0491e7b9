"""Sandbox: the control and inspection API under /_sandbox/."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests

from orchestrator.krtc import errors as e
from orchestrator.krtc.client import KrtcClient
from orchestrator.sandbox import SandboxThread
from tests.conftest import SENTINEL_STORAGE_SECRET, TEST_ACCESS_KEY
from tests.integration.sandbox_fixture import ControlError, SandboxHandle, sandbox_config

pytestmark = pytest.mark.integration

APP = "app1"
STORAGE = {
    "vendor": 4,
    "region": 0,
    "bucket": "b",
    "accessKey": "storage-ak",
    "secretKey": SENTINEL_STORAGE_SECRET,
}


def start_body(cname: str = "room", uid: str = "rec-1", mode: str = "mix") -> dict[str, object]:
    return {
        "appId": APP,
        "cname": cname,
        "uid": uid,
        "mode": mode,
        "clientRequest": {
            "recordingConfig": {"maxIdleTime": 30},
            "recordingFileConfig": {"avFileType": ["hls"]},
            "storageConfig": STORAGE,
        },
    }


@pytest.fixture
def client(sandbox: SandboxHandle) -> Iterator[KrtcClient]:
    with KrtcClient(sandbox.settings()) as c:
        yield c


def test_index_describes_the_sandbox(sandbox: SandboxHandle) -> None:
    info = sandbox.control("GET", "")

    assert info["endpoint"] == sandbox.url
    assert info["accessKey"] == TEST_ACCESS_KEY
    assert info["region"] == "cn-beijing-6"
    assert info["seed"] == 1234
    assert info["behaviour"]["start_duration_s"] == 0.2
    assert info["counts"] == {"recordings": 0, "active": 0}


def test_list_recordings_with_filters(sandbox: SandboxHandle, client: KrtcClient) -> None:
    a = client.start(start_body("r1", "u1")).sid
    b = client.start(start_body("r2", "u1", mode="individual")).sid
    c = client.start(start_body("r2", "u2")).sid
    assert a and b and c
    client.stop({"appId": APP, "cname": "r2", "sid": c, "mode": "mix"})
    sandbox.advance(0.2)

    assert {r["sid"] for r in sandbox.recordings()} == {a, b, c}
    assert {r["sid"] for r in sandbox.recordings(cname="r2")} == {b, c}
    assert {r["sid"] for r in sandbox.recordings(uid="u1")} == {a, b}
    assert {r["sid"] for r in sandbox.recordings(mode="individual")} == {b}
    assert {r["sid"] for r in sandbox.recordings(active=True)} == {a, b}
    assert [r["status"] for r in sandbox.recordings(active=False)] == [8]


def test_recording_view_is_redacted(sandbox: SandboxHandle, client: KrtcClient) -> None:
    sid = client.start(start_body()).sid
    assert sid
    view = sandbox.recording(sid)

    assert view["uid"] == "rec-1"
    assert view["output"] == "storageConfig"
    assert view["request"]["clientRequest"]["storageConfig"]["accessKey"] == "storage-ak"
    assert SENTINEL_STORAGE_SECRET not in str(view)


def test_unknown_recording_is_404(sandbox: SandboxHandle) -> None:
    with pytest.raises(ControlError) as info:
        sandbox.recording("nope")

    assert info.value.status == 404
    assert info.value.body["code"] == 404


def test_channel_users(sandbox: SandboxHandle, client: KrtcClient) -> None:
    sandbox.set_users(APP, "room", ["alice", "alice", "bob"])
    sid = client.start(start_body()).sid
    assert sid

    channels = sandbox.control("GET", "channels")
    assert channels["channels"] == {APP: {"room": ["alice", "bob"]}}
    assert channels["defaultUsers"] == ["1001"]
    assert sandbox.recording(sid)["seenUids"] == ["alice", "bob"]


def test_set_status_pins_unpins_and_ends(sandbox: SandboxHandle, client: KrtcClient) -> None:
    query = {"appId": APP, "cname": "room", "mode": "mix"}
    sid = client.start(start_body()).sid
    assert sid
    query["sid"] = sid

    # Pinned at 2, it stays there
    sandbox.set_status(sid, 2)
    sandbox.advance(5.0)
    assert client.query(query).status == 2
    # Unpinned, it reaches 5 at once (its natural time has passed)
    sandbox.set_status(sid, None)
    assert client.query(query).status == 5
    # Set to 20, it has exited abnormally
    assert sandbox.set_status(sid, 20)["status"] == 20
    assert client.query(query).status == 20
    # An ended recording's status can no longer change
    with pytest.raises(ControlError) as info:
        sandbox.set_status(sid, 5)
    assert info.value.status == 409


def test_pinning_5_gives_files_at_once(sandbox: SandboxHandle, client: KrtcClient) -> None:
    sandbox.configure(start_duration_s=100.0)
    sid = client.start(start_body()).sid
    assert sid
    sandbox.set_status(sid, 5)

    response = client.query({"appId": APP, "cname": "room", "sid": sid, "mode": "mix"})
    assert response.status == 5
    assert len(response.files) == 1


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("POST", "recordings/{sid}/status", {"status": 9}),
        ("POST", "recordings/{sid}/status", {"state": 1}),
        ("POST", "channels", {"appId": APP, "users": []}),
        ("POST", "channels", {"appId": APP, "cname": "c", "users": "alice"}),
        ("PATCH", "config", {"start_duration_s": -1}),
        ("PATCH", "config", {"nonsense": 1}),
        ("POST", "clock", {"advance_s": -5}),
    ],
)
def test_bad_control_bodies_are_400(
    sandbox: SandboxHandle, client: KrtcClient, method: str, path: str, body: object
) -> None:
    sid = client.start(start_body()).sid
    with pytest.raises(ControlError) as info:
        sandbox.control(method, path.format(sid=sid), body)

    assert info.value.status == 400
    assert info.value.body["reason"]


def test_non_json_control_body_is_400(sandbox: SandboxHandle) -> None:
    response = requests.post(f"{sandbox.control_url}/faults", data=b"{oops", timeout=5)

    assert response.status_code == 400
    assert response.json() == {"code": 400, "reason": "the body is not valid JSON"}


def test_faults_get_post_delete(sandbox: SandboxHandle) -> None:
    after_post = sandbox.set_faults(
        latency_ms=5, fail_next=[{"action": "stop", "status": 502, "count": 3}]
    )
    sandbox.set_faults(error_rates={"update-layout": 0.5})
    current = sandbox.control("GET", "faults")

    assert after_post["latency_ms"] == 5
    assert current["fail_next"] == [
        {"action": "stop", "status": 502, "count": 3, "reason": None, "retry_after_s": None}
    ]
    assert current["error_rates"] == {"update-layout": 0.5}
    cleared = sandbox.control("DELETE", "faults")
    assert cleared["latency_ms"] == 0 and cleared["fail_next"] == []


def test_reset_forgets_recordings_channels_faults_counts_and_config(
    sandbox: SandboxHandle, client: KrtcClient
) -> None:
    sid = client.start(start_body()).sid
    sandbox.set_users(APP, "room", [])
    sandbox.set_faults(error_rate=1.0)
    sandbox.configure(retention_s=1.0)
    sandbox.advance(10.0)

    sandbox.reset()

    assert sandbox.recordings() == []
    assert sandbox.control("GET", "channels")["channels"] == {}
    assert sandbox.control("GET", "faults")["error_rate"] == 0
    assert sandbox.control("GET", "config")["retention_s"] == 60.0
    assert sandbox.control("GET", "clock")["offset_s"] == 0
    assert sandbox.stats()["total"] == 0
    with pytest.raises(e.NotFoundError):
        client.query({"appId": APP, "cname": "room", "sid": sid, "mode": "mix"})


def test_counters_per_action_and_outcome(sandbox: SandboxHandle, client: KrtcClient) -> None:
    sid = client.start(start_body()).sid
    assert sid
    ref = {"appId": APP, "cname": "room", "sid": sid, "mode": "mix"}
    with pytest.raises(e.ConflictError):
        client.start(start_body())
    client.query(ref)
    client.query(ref)
    with pytest.raises(e.NotFoundError):
        client.query({**ref, "sid": "x" * 20})
    sandbox.post("CloudRecordingQuery", ref, secret_key="wrong")
    sandbox.post("CloudRecordingQuery", b"{")

    stats = sandbox.stats()

    assert stats["total"] == 7
    assert stats["byAction"] == {
        "CloudRecordingStart": {"ok": 1, "conflict": 1},
        "CloudRecordingQuery": {"ok": 2, "not_found": 1, "forbidden": 1, "bad_request": 1},
    }
    assert stats["byStatus"] == {"200": 3, "400": 1, "403": 1, "404": 1, "409": 1}
    assert stats["recordings"] == {"recordings": 1, "active": 1}


def test_request_log_keeps_identifiers_and_masks_secrets(
    sandbox: SandboxHandle, client: KrtcClient
) -> None:
    sid = client.start(start_body()).sid
    sandbox.post("CloudRecordingStart", start_body(), secret_key="wrong")

    log = sandbox.requests()

    assert [(r["action"], r["status"], r["outcome"]) for r in log] == [
        ("CloudRecordingStart", 200, "ok"),
        ("CloudRecordingStart", 403, "forbidden"),
    ]
    assert log[0]["sid"] == sid and log[0]["appId"] == APP and log[0]["uid"] == "rec-1"
    assert log[0]["body"]["clientRequest"]["storageConfig"]["secretKey"] != SENTINEL_STORAGE_SECRET
    assert log[1]["body"] is None
    assert [r["seq"] for r in sandbox.requests(limit=1)] == [log[1]["seq"]]


def test_clock_moves_timings_forward(sandbox: SandboxHandle) -> None:
    before = sandbox.control("GET", "clock")
    sandbox.advance(30)
    after = sandbox.control("GET", "clock")

    assert after["offset_s"] == 30
    assert after["now"] - before["now"] >= 30


def test_unknown_control_path_is_404_json(sandbox: SandboxHandle) -> None:
    response = requests.get(f"{sandbox.control_url}/nothing-here", timeout=5)

    assert response.status_code == 404
    assert response.json()["code"] == 404


def test_thread_runner_gives_its_urls_and_stops_cleanly() -> None:
    runner = SandboxThread(sandbox_config())
    base = runner.start()
    try:
        assert runner.endpoint == f"{base}/cloud"
        assert requests.get(f"{runner.control_url}/", timeout=5).json()["endpoint"] == (
            runner.endpoint
        )
        assert runner.call(lambda sb: sb.state.counts()) == {"recordings": 0, "active": 0}
    finally:
        runner.stop()
    runner.stop()  # idempotent

    with pytest.raises(requests.ConnectionError):
        requests.get(f"{runner.control_url}/", timeout=2)


def test_thread_runner_reports_a_busy_port(sandbox: SandboxHandle) -> None:
    port = int(sandbox.url.split(":")[2].split("/")[0])
    runner = SandboxThread(sandbox_config(port=port))

    with pytest.raises(RuntimeError, match="could not start"):
        runner.start()
