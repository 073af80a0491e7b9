"""The schedule endpoints of the HTTP API: ``krtc-rec serve`` in a subprocess, the real Redis,
plain HTTP requests; what they store is what ``krtc-rec schedule`` and beat read."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from orchestrator.schedule import Scheduler
from tests.integration.test_http_api import Server, server  # noqa: F401 (fixture)
from tests.integration.worker_fixture import QueueStack, start_body

pytestmark = pytest.mark.timeout(120)


def _in(seconds: float) -> str:
    return (datetime.now(UTC) + timedelta(seconds=seconds)).isoformat(timespec="seconds")


def test_a_schedule_is_added_listed_read_and_cancelled(
    queue_stack: QueueStack,
    server: Server,  # noqa: F811
) -> None:
    # Given a one-off schedule and a weekly one added through the API...
    one_off = server.call(
        "POST",
        "/v1/schedules",
        json={"template": start_body("sched-http-1"), "startAt": _in(3600), "durationS": 600},
    )
    assert one_off.status_code == 201, one_off.text
    added = one_off.json()
    assert added["duration_s"] == 600 and added["state"] == "active"
    (occurrence,) = added["occurrences"]
    assert occurrence["outcome"] == "scheduled"
    weekly = server.call(
        "POST",
        "/v1/schedules",
        json={
            "template": start_body("sched-http-2"),
            "startAt": _in(60),
            "endAt": _in(60 + 1800),
            "weekly": "mon,thu@10:00",
            "timezone": "Asia/Shanghai",
            "count": 4,
        },
    )
    assert weekly.status_code == 201, weekly.text
    assert weekly.json()["rule"]["kind"] == "weekly"

    # ...then they are listed and read as the Scheduler (the CLI's) sees them.
    listed = server.call("GET", "/v1/schedules").json()["schedules"]
    assert {s["id"] for s in listed} == {added["id"], weekly.json()["id"]}
    scheduler = Scheduler(queue_stack.settings)
    assert scheduler.get(added["id"]).template == added["template"]
    read = server.call("GET", f"/v1/schedules/{added['id']}")
    assert read.status_code == 200 and read.json()["occurrences"][0]["id"] == occurrence["id"]

    # When the one-off is cancelled, its occurrence is cancelled and it is no longer upcoming.
    cancelled = server.call("DELETE", f"/v1/schedules/{added['id']}")
    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json() == {
        "id": added["id"],
        "cancelled": [occurrence["id"]],
        "stopping": [],
        "state": "cancelled",
    }
    upcoming = server.call("GET", "/v1/schedules").json()["schedules"]
    assert [s["id"] for s in upcoming] == [weekly.json()["id"]]
    everything = server.call("GET", "/v1/schedules?all=true").json()["schedules"]
    assert len(everything) == 2
    # An occurrence that is over cannot change: 409.
    again = server.call("DELETE", f"/v1/schedules/{occurrence['id']}")
    assert again.status_code == 409 and again.json()["error"]["code"] == "conflict"


def test_bad_schedules_get_field_errors_and_nothing_is_stored(
    queue_stack: QueueStack,
    server: Server,  # noqa: F811
) -> None:
    missing = server.call("POST", "/v1/schedules", json={"durationS": "long", "every": 3})
    assert missing.status_code == 422
    paths = sorted(f["path"] for f in missing.json()["error"]["fields"])
    assert paths == ["durationS", "every", "startAt", "template"]
    no_zone = server.call(
        "POST",
        "/v1/schedules",
        json={
            "template": start_body("sched-http-bad"),
            "startAt": _in(60),
            "durationS": 60,
            "cron": "0 10 * * 1",
        },
    )
    assert no_zone.status_code == 422
    assert [f["path"] for f in no_zone.json()["error"]["fields"]] == ["timezone"]
    bad_template = start_body("sched-http-bad")
    bad_template["clientRequest"]["recordingConfig"]["maxIdleTime"] = -1
    invalid = server.call(
        "POST",
        "/v1/schedules",
        json={"template": bad_template, "startAt": _in(60), "durationS": 60},
    )
    assert [f["path"] for f in invalid.json()["error"]["fields"]] == [
        "template.clientRequest.recordingConfig.maxIdleTime"
    ]
    assert server.call("GET", "/v1/schedules?all=true").json()["schedules"] == []
    unknown = server.call("GET", "/v1/schedules/no-such-schedule")
    assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "not_found"
    assert server.call("DELETE", "/v1/schedules/no-such", token=None).status_code == 401
