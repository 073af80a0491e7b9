"""Everything the demo (and ``krtc-rec up``) needs on one machine, started and stopped together.

* Redis: ``REDIS_URL`` if set; else 127.0.0.1:6379 if it answers; else an embedded server.
  The stack works under its own key prefix and deletes its keys when it stops (never others').
* The sandbox, in a thread of this process, with its documented key pair.
* Workers, beat, Flower and the metrics endpoint: ``krtc-rec`` child processes (each in its own
  process group, so a Ctrl-C in the terminal reaches only the parent), stopped with SIGTERM.
"""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import requests
from pydantic import SecretStr

from orchestrator.sandbox.config import (
    DEFAULT_ACCESS_KEY,
    DEFAULT_SECRET_KEY,
    Behaviour,
    SandboxConfig,
)
from orchestrator.sandbox.runner import SandboxThread
from orchestrator.settings import DEFAULT_REDIS_URL, Settings, settings_env
from orchestrator.stack.redis_server import EmbeddedRedis, delete_prefix, redis_answers
from orchestrator.state.connection import RedisOptions

__all__ = ["LocalStack", "ChildProcess"]

_READY_TIMEOUT_S = 60.0


@dataclass
class ChildProcess:
    """A child process in its own process group, its output in a log file."""

    name: str
    process: subprocess.Popen[bytes]
    log_path: Path
    #: What its log says once it is ready (see :meth:`wait_ready`).
    ready_marker: str = ""

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def wait_for(self, marker: str, timeout_s: float = _READY_TIMEOUT_S) -> None:
        deadline = time.monotonic() + timeout_s
        while marker not in self.log():
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited {self.process.returncode}:\n{self.log()}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.name} not ready after {timeout_s:g}s:\n{self.log()}")
            time.sleep(0.1)

    def wait_ready(self, timeout_s: float = _READY_TIMEOUT_S) -> None:
        """Wait until its log shows :attr:`ready_marker` (raises if it exits first)."""
        self.wait_for(self.ready_marker, timeout_s)

    def stop(self, timeout_s: float = 20.0) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(5)


@dataclass
class LocalStack:
    """Redis + sandbox + workers for one run.

    Args:
        workdir: where logs and the storage-profile file go.
        overrides: settings to use on top of the stack's (e.g. short backoff for the demo).
    """

    workdir: Path
    overrides: dict[str, Any] = field(default_factory=dict)
    sandbox_behaviour: Behaviour = field(default_factory=Behaviour)
    prefix: str = field(default_factory=lambda: f"krtc-demo-{uuid.uuid4().hex[:8]}")
    #: The Redis used when ``REDIS_URL`` is not set, if it answers.
    probe_url: str = DEFAULT_REDIS_URL
    redis_source: str = ""
    settings: Settings | None = None
    _redis: EmbeddedRedis | None = None
    _sandbox: SandboxThread | None = None
    children: list[ChildProcess] = field(default_factory=list)

    def start(self) -> Settings:
        """Start Redis (if needed) and the sandbox; returns the settings of the stack."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        url = os.environ.get("REDIS_URL")
        if url:
            self.redis_source = "REDIS_URL"
        elif redis_answers(self.probe_url):
            url, self.redis_source = self.probe_url, f"the Redis answering at {self.probe_url}"
        else:
            self._redis = EmbeddedRedis()
            url = self._redis.start()
            self.redis_source = f"embedded redis-server on port {self._redis.port}"
        self._sandbox = SandboxThread(
            SandboxConfig(port=0, behaviour=self.sandbox_behaviour, seed=None)
        )
        self._sandbox.start()
        profiles = self.workdir / "storage-profiles.json"
        profiles.write_text(
            '{"demo": {"vendor": 4, "region": 0, "bucket": "demo-recordings", '
            '"accessKey": "AKdemo", "secretKey": "demo-storage-secret"}}',
            encoding="utf-8",
        )
        values: dict[str, Any] = {
            "endpoint": self._sandbox.endpoint,
            "access_key": DEFAULT_ACCESS_KEY,
            "secret_key": SecretStr(DEFAULT_SECRET_KEY),
            "redis_url": url,
            "redis_prefix": self.prefix,
            "storage_profiles": str(profiles),
        }
        values.update(self.overrides)
        self.settings = Settings(**values)
        return self.settings

    @property
    def sandbox_control_url(self) -> str:
        assert self._sandbox is not None
        return self._sandbox.control_url

    def sandbox_control(self, method: str, path: str, body: Any = None) -> Any:
        """Call the sandbox's control API (``/_sandbox/PATH``)."""
        response = requests.request(
            method, f"{self.sandbox_control_url}/{path}", json=body, timeout=5
        )
        response.raise_for_status()
        return response.json()

    def start_worker(self, *args: str, wait: bool = True) -> ChildProcess:
        """Start ``krtc-rec worker`` and (with ``wait``) wait until it consumes."""
        assert self.settings is not None, "start() first"
        name = f"worker-{sum(c.name.startswith('worker') for c in self.children)}"
        child = self._spawn(name, ["worker", "-c", "16", *args], ready="ready.")
        return self._ready(child, wait)

    def start_beat(self, *, wait: bool = True) -> ChildProcess:
        """Start ``krtc-rec beat`` (a reconcile round every interval)."""
        argv = ["beat", "--schedule-file", str(self.workdir / "beat-schedule")]
        return self._ready(self._spawn("beat", argv, ready="beat: Starting"), wait)

    def start_flower(
        self, port: int, *, basic_auth: str, address: str = "127.0.0.1", wait: bool = True
    ) -> ChildProcess:
        """Start ``krtc-rec flower`` with the login ``basic_auth`` (``user:password``)."""
        child = self._spawn(
            "flower",
            ["flower", "--port", str(port), "--address", address],
            env={"FLOWER_BASIC_AUTH": basic_auth},
            ready="Visit me at",
        )
        return self._ready(child, wait)

    def start_metrics(
        self, port: int, *, host: str = "127.0.0.1", wait: bool = True
    ) -> ChildProcess:
        """Start ``krtc-rec metrics``."""
        argv = ["metrics", "--port", str(port), "--host", host]
        return self._ready(self._spawn("metrics", argv, ready="metrics: serving"), wait)

    @staticmethod
    def _ready(child: ChildProcess, wait: bool) -> ChildProcess:
        if wait:
            child.wait_ready()
        return child

    def write_env_file(self, extra: dict[str, str] | None = None) -> Path:
        """A ``KEY='value'`` file (mode 0600) of the stack's settings, secrets included.

        ``set -a; . FILE; set +a`` points ``krtc-rec`` commands in a shell at this stack.
        """
        assert self.settings is not None, "start() first"
        path = self.workdir / "stack.env"
        values = {**settings_env(self.settings), **(extra or {})}
        text = "".join(f"{name}={shlex.quote(value)}\n" for name, value in values.items())
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        return path

    def _spawn(
        self, name: str, argv: list[str], env: dict[str, str] | None = None, ready: str = ""
    ) -> ChildProcess:
        assert self.settings is not None
        log_path = self.workdir / f"{name}.log"
        log: IO[bytes] = log_path.open("wb")
        process = subprocess.Popen(
            [sys.executable, "-m", "orchestrator.cli", *argv],
            env={**os.environ, **settings_env(self.settings), **(env or {})},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        child = ChildProcess(name, process, log_path, ready)
        self.children.append(child)
        return child

    def stop(self) -> None:
        """Stop everything this stack started and delete its keys."""
        for child in reversed(self.children):
            child.stop()
        self.children.clear()
        if self._sandbox is not None:
            self._sandbox.stop()
            self._sandbox = None
        if self.settings is not None:
            try:
                delete_prefix(
                    self.settings.redis_url, self.prefix, RedisOptions.from_settings(self.settings)
                )
            except Exception:  # best effort: the stack is going away
                pass
        if self._redis is not None:
            self._redis.stop()
            self._redis = None

    def __enter__(self) -> LocalStack:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
