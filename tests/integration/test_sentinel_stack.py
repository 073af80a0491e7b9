"""The demo, ``krtc-rec up`` and the CLI a user runs, on a ``sentinel://`` REDIS_URL.

One local topology for the module (``orchestrator.stack.sentinel``: a primary, one replica and
three ``redis-server --sentinel`` with quorum 2, on free ports of 127.0.0.1), as in
``test_sentinel_services.py``. Nothing is killed here: these are the everyday commands, with
workers and beat started by the demo and by ``up`` (Celery's Sentinel transport).
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from orchestrator.stack.sentinel import SentinelTopology
from orchestrator.state import Keys
from orchestrator.state.connection import connect
from tests.integration.ops_processes import child_env, free_port, scrape, spawn, wait_until

pytestmark = [
    pytest.mark.integration,
    pytest.mark.timeout(150),
    pytest.mark.skipif(
        shutil.which("redis-server") is None, reason="needs redis-server (with --sentinel)"
    ),
]

#: A start request the stack's workers accept (``up`` writes the storage profile ``demo``).
BODY = {
    "appId": "demo-app",
    "cname": "ha-cli-1",
    "uid": "9001",
    "mode": "mix",
    "clientRequest": {
        "recordingConfig": {"maxIdleTime": 60, "streamTypes": 2},
        "recordingFileConfig": {"avFileType": ["hls"]},
        "storageConfig": {"profile": "demo"},
    },
}


def _user_env(topology: SentinelTopology) -> dict[str, str]:
    """A user's shell: REDIS_URL names the Sentinels, no other setting of the project."""
    env = {k: v for k, v in child_env({}).items() if not k.startswith("KRTC_")}
    return {**env, "REDIS_URL": topology.url}


def _keys_under(topology: SentinelTopology, prefix: str) -> list[str]:
    client = connect(topology.url)
    try:
        return list(client.scan_iter(match=Keys(prefix).pattern(), count=1000))
    finally:
        client.close()


def _gone(pid: int) -> bool:
    try:
        os.killpg(pid, 0)  # each child leads its own process group
    except ProcessLookupError:
        return True
    return False


def test_the_demo_runs_every_step_on_a_sentinel_url(topology: SentinelTopology) -> None:
    # When a user runs the demo with REDIS_URL naming the Sentinels
    result = subprocess.run(
        [sys.executable, "-m", "orchestrator.cli", "demo"],
        env=_user_env(topology),
        capture_output=True,
        text=True,
        timeout=120,
    )
    # Then every step behaves as on a plain Redis: its worker and beat (Celery's Sentinel
    # transport) and its producer, scheduler and alert store (redis-py's Sentinel client)
    out = result.stdout
    assert result.returncode == 0, out + result.stderr
    assert "redis   : REDIS_URL" in out
    assert "same: True" in out
    assert "started after 4 attempts" in out
    assert "update-layout applied" in out
    assert "start sent +" in out and "stop +" in out, "the scheduled meeting ran on time"
    assert "alerts for it: abnormal_exit\n" in out
    assert "UNEXPECTED" not in out
    # and it deletes its keys on the primary, and no child of it logged a traceback
    prefix = out.split("keys under ", 1)[1].split(":", 1)[0]
    assert _keys_under(topology, prefix) == []
    logs = Path(out.rsplit("(logs in ", 1)[1].split(")", 1)[0])
    for log in logs.glob("*.log"):
        assert "Traceback" not in log.read_text(errors="replace"), log.read_text()


def _cli(env: dict[str, str], *argv: str, stdin: str | None = None) -> tuple[int, str]:
    result = subprocess.run(
        [sys.executable, "-m", "orchestrator.cli", *argv],
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
    )
    return result.returncode, result.stdout + result.stderr


def _env_file(path: Path) -> dict[str, str]:
    """The ``KEY='value'`` lines `up` writes (what ``set -a; . FILE`` gives a shell)."""
    values = {}
    for line in path.read_text().splitlines():
        name, _, quoted = line.partition("=")
        (values[name],) = shlex.split(quoted)
    return values


def test_up_and_the_cli_work_on_a_sentinel_url(topology: SentinelTopology, tmp_path: Path) -> None:
    # Given `krtc-rec up` on the Sentinel URL
    flower_port, metrics_port = free_port(), free_port()
    argv = ["up", "--workers", "1", "--flower-port", str(flower_port)]
    up = spawn("up", [*argv, "--metrics-port", str(metrics_port)], _user_env(topology), tmp_path)
    try:
        up.wait_for("Ctrl-C stops everything", 90)
        output = up.log()
        pids = [int(p) for p in re.findall(r"pid (\d+)", output)]
        assert len(pids) == 4, output  # worker, beat, flower, metrics
        assert f"redis   : {topology.url} (REDIS_URL)" in output
        found = re.search(r"set -a; \. (\S+); set \+a", output)
        assert found is not None, output
        # When a user points a shell at it as printed (the URL's ';' survives the quoting)
        env = {**_user_env(topology), **_env_file(Path(found.group(1)))}
        assert env["REDIS_URL"] == topology.url
        status = subprocess.Popen(  # a few seconds (it waits for the workers' replies)
            [sys.executable, "-m", "orchestrator.cli", "status", "--json"],
            env=env,
            stdout=subprocess.PIPE,
            text=True,
        )

        # Then the CLI starts, shows, lists and stops a recording through the stack's worker
        code, started = _cli(
            env,
            "start",
            "--file",
            "-",
            "--wait",
            "--timeout",
            "30",
            "--json",
            stdin=json.dumps(BODY),
        )
        assert code == 0, started
        session = json.loads(started)
        assert session["phase"] == "recording" and session["sid"], session
        code, shown = _cli(env, "show", session["id"])
        assert code == 0 and session["sid"] in shown, shown
        code, listed = _cli(env, "list", "--active", "--json")
        assert code == 0, listed
        assert [s["id"] for s in json.loads(listed)] == [session["id"]]
        code, stopped = _cli(env, "stop", session["id"], "--wait", "--timeout", "30", "--json")
        assert code == 0, stopped
        assert json.loads(stopped)["phase"] == "stopped"

        # and the worker's health check answers over the Sentinel broker, and status sees the
        # primary and the worker
        code, health = _cli(env, "healthcheck", "worker")
        assert code == 0 and health.startswith("healthy:"), health
        report, _ = status.communicate(timeout=60)
        checks = {c["name"]: c for c in json.loads(report)["checks"]}
        assert checks["redis"]["ok"] and checks["workers"]["ok"], checks
        assert "1 alive" in checks["workers"]["detail"], checks["workers"]

        # and `krtc-rec metrics` (started by up) counts the stop
        def stop_counted() -> bool:
            samples = scrape(f"http://127.0.0.1:{metrics_port}/metrics")
            stops = (("action", "stop"), ("outcome", "ok"))
            return samples.get(("krtc_api_requests_total", stops)) == 1

        wait_until(stop_counted, 10, "krtc-rec metrics to count the stop call")

        # When Ctrl-C reaches `up`
        os.kill(up.process.pid, signal.SIGINT)
        up.process.wait(60)
    finally:
        up.stop()

    # Then it stops every child and deletes its keys from the primary
    assert up.process.returncode == 0, up.log()
    wait_until(lambda: all(_gone(pid) for pid in pids), 5, "the children to exit")
    prefix = re.search(r"KRTC_REDIS_PREFIX=(\S+)", output)
    assert prefix is not None
    assert _keys_under(topology, prefix.group(1)) == []
    logs = Path(output.split("logs    : ", 1)[1].split("\n", 1)[0])
    for log in logs.glob("*.log"):
        assert "Traceback" not in log.read_text(errors="replace"), log.read_text()
