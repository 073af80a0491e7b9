"""Helpers of the operations tests: ``krtc-rec`` commands as real processes, scraping metrics."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import requests
from prometheus_client.parser import text_string_to_metric_families

from orchestrator.stack.local import ChildProcess
from orchestrator.stack.redis_server import free_port

__all__ = [
    "Samples",
    "child_env",
    "free_port",
    "scrape",
    "spawn",
    "spawn_metrics",
    "value",
    "wait_until",
]

#: ``(sample name, sorted label items) -> value``.
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def spawn(name: str, argv: list[str], env: dict[str, str], workdir: Path) -> ChildProcess:
    """``krtc-rec ARGV`` in its own process group, its output in ``workdir/NAME.log``."""
    log_path = workdir / f"{name}.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "orchestrator.cli", *argv],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return ChildProcess(name, process, log_path)


def spawn_metrics(env: dict[str, str], workdir: Path) -> tuple[ChildProcess, str]:
    """``krtc-rec metrics`` on a free port of 127.0.0.1 (not waited for: ``wait_for("metrics:
    serving")``); the child and the URL to scrape."""
    port = free_port()
    argv = ["metrics", "--port", str(port), "--host", "127.0.0.1"]
    return spawn("metrics", argv, env, workdir), f"http://127.0.0.1:{port}/metrics"


def scrape(url: str) -> Samples:
    """Every sample of the Prometheus text at ``url``."""
    response = requests.get(url, timeout=10)
    response.raise_for_status()
    samples: Samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    """One sample's value (KeyError when absent)."""
    return samples[(name, tuple(sorted(labels.items())))]


def wait_until(check: Callable[[], bool], timeout_s: float, what: str) -> None:
    """Poll ``check`` every 0.1 s until it holds.

    Raises:
        AssertionError: it did not within ``timeout_s``.
    """
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def child_env(extra: dict[str, str]) -> dict[str, str]:
    """The test process' environment with ``extra`` on top (Flower variables removed)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLOWER_")}
    return {**env, **extra}
