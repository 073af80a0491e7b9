"""``krtc-rec up``: the local stack starts, serves, and stops on Ctrl-C leaving no process."""

from __future__ import annotations

import os
import re
import signal
from pathlib import Path

import requests
from redis import Redis

from orchestrator.state import Keys
from tests.integration.ops_processes import child_env, free_port, scrape, spawn, wait_until


def _gone(pid: int) -> bool:
    try:
        os.killpg(pid, 0)  # each child leads its own process group
    except ProcessLookupError:
        return True
    return False


def test_up_serves_flower_and_metrics_and_stops_everything_on_sigint(
    redis_url: str, tmp_path: Path
) -> None:
    flower_port, metrics_port = free_port(), free_port()
    up = spawn(
        "up",
        ["up", "--workers", "1", "--flower-port", str(flower_port)]
        + ["--metrics-port", str(metrics_port)],
        child_env({"REDIS_URL": redis_url}),
        tmp_path,
    )
    try:
        up.wait_for("Ctrl-C stops everything", 90)
        output = up.log()
        pids = [int(p) for p in re.findall(r"pid (\d+)", output)]
        prefix = re.search(r"KRTC_REDIS_PREFIX=(\S+)", output)
        env_file = re.search(r"set -a; \. (\S+); set \+a", output)
        assert len(pids) == 4, output  # worker, beat, flower, metrics
        assert prefix and env_file, output

        # The printed URLs answer; Flower wants the login, which is not printed
        samples = scrape(f"http://127.0.0.1:{metrics_port}/metrics")
        assert any(name == "krtc_sessions" for name, _ in samples)
        anonymous = requests.get(f"http://127.0.0.1:{flower_port}/", timeout=10)
        assert anonymous.status_code == 401
        login = re.search(r"FLOWER_BASIC_AUTH=(\S+)", Path(env_file.group(1)).read_text())
        assert login is not None
        user, _, password = login.group(1).strip("'").partition(":")
        assert password not in output
        assert (os.stat(env_file.group(1)).st_mode & 0o777) == 0o600
        authed = requests.get(
            f"http://127.0.0.1:{flower_port}/api/workers", auth=(user, password), timeout=10
        )
        assert authed.status_code == 200

        # When Ctrl-C reaches `up`
        os.kill(up.process.pid, signal.SIGINT)
        up.process.wait(60)
    finally:
        up.stop()

    # Then it exits 0, every child is gone and the stack's keys are deleted
    assert up.process.returncode == 0, up.log()
    wait_until(lambda: all(_gone(pid) for pid in pids), 5, "the children to exit")
    assert "stopped everything" in up.log()
    client = Redis.from_url(redis_url)
    try:
        assert not list(client.scan_iter(match=Keys(prefix.group(1)).pattern(), count=1000))
    finally:
        client.close()


def test_demo_keep_leaves_the_same_stack_up_with_flower_until_sigint(
    redis_url: str, tmp_path: Path
) -> None:
    flower_port, metrics_port = free_port(), free_port()
    env = {k: v for k, v in child_env({"REDIS_URL": redis_url}).items() if k != "KRTC_REDIS_PREFIX"}
    demo = spawn(
        "demo",
        ["demo", "--keep", "--flower-port", str(flower_port), "--metrics-port", str(metrics_port)],
        env,
        tmp_path,
    )
    try:
        demo.wait_for("Ctrl-C stops everything", 100)
        pids = [int(p) for p in re.findall(r"pid (\d+)", demo.log())]
        assert len(pids) == 4, demo.log()  # the demo's worker, beat, flower, metrics
        # The scenario's sessions are still there to look at
        samples = scrape(f"http://127.0.0.1:{metrics_port}/metrics")
        assert samples[("krtc_sessions", (("phase", "recording"),))] == 0
        assert samples[("krtc_api_requests_total", (("action", "stop"), ("outcome", "ok")))] >= 3
        assert requests.get(f"http://127.0.0.1:{flower_port}/", timeout=10).status_code == 401
        os.kill(demo.process.pid, signal.SIGINT)
        demo.process.wait(60)
    finally:
        demo.stop()

    assert demo.process.returncode == 0, demo.log()
    wait_until(lambda: all(_gone(pid) for pid in pids), 5, "the children to exit")
    assert "stopped everything the demo started" in demo.log()
