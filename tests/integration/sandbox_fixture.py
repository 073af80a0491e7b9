"""Fixtures that run the KRTC sandbox for integration tests.

* ``sandbox_server`` (session): one :class:`SandboxThread` on a free port, accepting the test key
  pair (``TEST_ACCESS_KEY`` / ``SENTINEL_SECRET``), with short timings (:data:`TEST_BEHAVIOUR`).
* ``sandbox`` (function): a :class:`SandboxHandle` on that server, reset before the test (no
  recordings, faults, channel users or counts; the test timings).
* ``sandbox_settings`` (function): orchestrator ``Settings`` pointed at it with the test key pair.
* ``sandbox_factory`` (function): start extra sandboxes with their own :class:`SandboxConfig`.
* :func:`sandbox_process`: ``krtc-rec sandbox`` as a subprocess (a context manager).
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest
import requests
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials as BotoCredentials
from pydantic import SecretStr

from orchestrator.sandbox import Behaviour, SandboxConfig, SandboxThread
from orchestrator.settings import DEFAULT_REGION, DEFAULT_SERVICE, Credentials, Settings
from tests.conftest import SENTINEL_SECRET, TEST_ACCESS_KEY

__all__ = [
    "TEST_BEHAVIOUR",
    "ControlError",
    "botocore_post",
    "SandboxHandle",
    "SandboxProcess",
    "sandbox_config",
    "sandbox_process",
    "sandbox_server",
    "sandbox",
    "sandbox_settings",
    "sandbox_factory",
]

#: Timings for tests: status 5 after 0.2 s, 8 after a stop in 0.1 s, exited recordings kept 60 s.
TEST_BEHAVIOUR = Behaviour(start_duration_s=0.2, stop_duration_s=0.1, retention_s=60.0, hang_s=5.0)


def sandbox_config(**overrides: Any) -> SandboxConfig:
    """A config on a free port with the test key pair and :data:`TEST_BEHAVIOUR`."""
    values: dict[str, Any] = {
        "host": "127.0.0.1",
        "port": 0,
        "credentials": Credentials(TEST_ACCESS_KEY, SecretStr(SENTINEL_SECRET)),
        "behaviour": TEST_BEHAVIOUR,
        "seed": 1234,
    }
    values.update(overrides)
    return SandboxConfig(**values)


def botocore_post(
    url: str,
    action: str | None,
    body: bytes | str | Any,
    *,
    access_key: str,
    secret_key: str,
    region: str = DEFAULT_REGION,
    service: str = DEFAULT_SERVICE,
    headers: dict[str, str] | None = None,
    sign: bool = True,
    timeout_s: float = 5.0,
) -> requests.Response:
    """POST ``body`` to ``url`` signed by botocore's SigV4 (a signer independent of ours).

    Args:
        action: the ``x-action`` header (``None`` leaves it out).
        body: bytes or text sent as is; anything else is sent as compact JSON.
        headers: extra headers, or replacements (e.g. ``{"x-version": "v2"}``), signed too.
        sign: ``False`` sends the request unsigned.
    """
    if isinstance(body, str):
        data = body.encode()
    elif isinstance(body, bytes):
        data = body
    else:
        data = json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()
    hdrs = {"content-type": "application/json;charset=UTF-8", "x-version": "v1"}
    if action is not None:
        hdrs["x-action"] = action
    hdrs.update(headers or {})
    request = AWSRequest(method="POST", url=url, data=data, headers=hdrs)
    if sign:
        SigV4Auth(BotoCredentials(access_key, secret_key), service, region).add_auth(request)
    return requests.post(url, data=data, headers=dict(request.headers), timeout=timeout_s)


class ControlError(Exception):
    """The control API answered an error."""

    def __init__(self, status: int, body: Any) -> None:
        super().__init__(f"control API answered {status}: {body}")
        self.status = status
        self.body = body


@dataclass
class SandboxHandle:
    """A running sandbox and helpers over its control API (plain HTTP, safe from any thread).

    Attributes:
        url: the API endpoint (``http://127.0.0.1:PORT/cloud``), for ``Settings.endpoint``.
        control_url: the control API root (``http://127.0.0.1:PORT/_sandbox``).
        access_key, secret_key: the key pair it accepts.
        thread: the :class:`SandboxThread` (``thread.call(fn)`` runs ``fn(sandbox)`` on its loop).
    """

    thread: SandboxThread
    access_key: str = TEST_ACCESS_KEY
    secret_key: str = SENTINEL_SECRET
    session: requests.Session = field(default_factory=requests.Session)

    @property
    def url(self) -> str:
        return self.thread.endpoint

    @property
    def control_url(self) -> str:
        return self.thread.control_url

    def settings(self, **overrides: Any) -> Settings:
        """Orchestrator settings pointed at this sandbox with its key pair (``overrides`` win)."""
        values: dict[str, Any] = {
            "endpoint": self.url,
            "access_key": self.access_key,
            "secret_key": SecretStr(self.secret_key),
            "read_timeout_s": 5.0,
        }
        values.update(overrides)
        return Settings(**values)

    def post(self, action: str | None, body: Any, **kwargs: Any) -> requests.Response:
        """POST to ``/cloud`` signed by botocore with this sandbox's key pair (see
        :func:`botocore_post`; ``kwargs`` override, e.g. ``secret_key=...``)."""
        keys = {"access_key": self.access_key, "secret_key": self.secret_key}
        return botocore_post(self.url, action, body, **(keys | kwargs))

    def control(self, method: str, path: str, body: Any = None, **params: Any) -> Any:
        """Call the control API (``path`` relative to ``/_sandbox/``) and return its JSON.

        Raises:
            ControlError: on an answer other than 2xx.
        """
        response = self.session.request(
            method,
            f"{self.control_url}/{path.lstrip('/')}",
            json=body,
            params=params or None,
            timeout=5,
        )
        data = response.json() if response.content else None
        if not response.ok:
            raise ControlError(response.status_code, data)
        return data

    # Shortcuts -----------------------------------------------------------------------------

    def reset(self) -> None:
        """No recordings, faults, channel users or counts; the start-up behaviour."""
        self.control("POST", "reset")

    def configure(self, **behaviour: Any) -> dict[str, Any]:
        """Change run-time behaviour, e.g. ``configure(retention_s=0.5, allow_app_ids=["a"])``."""
        result: dict[str, Any] = self.control("PATCH", "config", behaviour)
        return result

    def set_faults(self, **spec: Any) -> dict[str, Any]:
        """Merge faults, e.g. ``set_faults(fail_next=[{"action": "start", "status": 500}])``."""
        result: dict[str, Any] = self.control("POST", "faults", spec)
        return result

    def clear_faults(self) -> None:
        """Remove every fault."""
        self.control("DELETE", "faults")

    def set_users(self, app_id: str, cname: str, users: list[str]) -> None:
        """Set the simulated users of a channel (``[]``: empty, so maxIdleTime runs)."""
        self.control("POST", "channels", {"appId": app_id, "cname": cname, "users": users})

    def set_status(self, sid: str, status: int | None) -> dict[str, Any]:
        """Pin a status (0..7), end the recording (8, 20) or unpin (``None``)."""
        result: dict[str, Any] = self.control(
            "POST", f"recordings/{sid}/status", {"status": status}
        )
        return result

    def recordings(self, **filters: Any) -> list[dict[str, Any]]:
        """Recordings, filtered by ``appId``, ``cname``, ``uid``, ``mode``, ``active``."""
        params = {k: str(v).lower() if isinstance(v, bool) else v for k, v in filters.items()}
        result: list[dict[str, Any]] = self.control("GET", "recordings", **params)["recordings"]
        return result

    def recording(self, sid: str) -> dict[str, Any]:
        """One recording as the control API shows it."""
        result: dict[str, Any] = self.control("GET", f"recordings/{sid}")
        return result

    def stats(self) -> dict[str, Any]:
        """Counters: ``{"total", "byAction": {action: {outcome: n}}, "byStatus", ...}``."""
        result: dict[str, Any] = self.control("GET", "stats")
        return result

    def requests(self, limit: int | None = None) -> list[dict[str, Any]]:
        """The request log, oldest first."""
        params = {} if limit is None else {"limit": limit}
        result: list[dict[str, Any]] = self.control("GET", "requests", **params)["requests"]
        return result

    def advance(self, seconds: float) -> None:
        """Move the recordings' clock forward (signatures keep real time)."""
        self.control("POST", "clock", {"advance_s": seconds})


@pytest.fixture(scope="session")
def sandbox_server() -> Iterator[SandboxThread]:
    """One sandbox for the whole session (use ``sandbox`` for a reset one per test)."""
    thread = SandboxThread(sandbox_config())
    thread.start()
    yield thread
    thread.stop()


@pytest.fixture
def sandbox(sandbox_server: SandboxThread) -> Iterator[SandboxHandle]:
    """The session's sandbox, reset before the test."""
    handle = SandboxHandle(sandbox_server)
    handle.reset()
    yield handle
    handle.session.close()


@pytest.fixture
def sandbox_settings(sandbox: SandboxHandle) -> Settings:
    """Settings pointed at ``sandbox`` with the test key pair (read timeout 5 s)."""
    return sandbox.settings()


@pytest.fixture
def sandbox_factory() -> Iterator[Callable[..., SandboxHandle]]:
    """Start dedicated sandboxes: ``sandbox_factory(**SandboxConfig fields)``; stopped after."""
    started: list[SandboxHandle] = []

    def start(**overrides: Any) -> SandboxHandle:
        config = sandbox_config(**overrides)
        thread = SandboxThread(config)
        thread.start()
        handle = SandboxHandle(
            thread,
            access_key=config.credentials.access_key,
            secret_key=config.credentials.secret_key.get_secret_value(),
        )
        started.append(handle)
        return handle

    yield start
    for handle in started:
        handle.session.close()
        handle.thread.stop()


_LISTENING = re.compile(r"listening on (http://\S+)/cloud")


@dataclass
class SandboxProcess:
    """A ``krtc-rec sandbox`` subprocess: its base URL and its output (read by two threads)."""

    process: subprocess.Popen[str]
    base_url: str
    out: list[str]
    err: list[str]
    readers: list[threading.Thread]

    @property
    def url(self) -> str:
        return f"{self.base_url}/cloud"

    @property
    def control_url(self) -> str:
        return f"{self.base_url}/_sandbox"

    def stop(self, sig: int = signal.SIGTERM, timeout_s: float = 10.0) -> tuple[int, str, str]:
        """Send ``sig``, wait, and return (exit code, stdout, stderr)."""
        if self.process.poll() is None:
            self.process.send_signal(sig)
        code = self.process.wait(timeout_s)
        for reader in self.readers:
            reader.join(timeout_s)
        return code, "".join(self.out), "".join(self.err)


def _drain(stream: Any, into: list[str], found: list[str], ready: threading.Event) -> None:
    for line in stream:
        into.append(line)
        match = _LISTENING.search(line)
        if match and not ready.is_set():
            found.append(match.group(1))
            ready.set()
    ready.set()  # EOF: the process ended (without listening, if nothing was found)


@contextmanager
def sandbox_process(
    *args: str, env: dict[str, str] | None = None, timeout_s: float = 20.0
) -> Iterator[SandboxProcess]:
    """Run ``krtc-rec sandbox --port 0 ARGS`` and wait until it listens.

    Args:
        args: more command-line options.
        env: replaces these variables of the environment (``KRTC_*`` ones are removed first).
    """
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("KRTC_")}
    full_env.update(env or {})
    full_env["PYTHONUNBUFFERED"] = "1"
    process = subprocess.Popen(
        [sys.executable, "-m", "orchestrator.cli", "sandbox", "--port", "0", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=full_env,
    )
    out: list[str] = []
    err: list[str] = []
    found: list[str] = []
    ready = threading.Event()
    readers = [
        threading.Thread(target=_drain, args=(process.stdout, out, found, ready), daemon=True),
        threading.Thread(
            target=_drain, args=(process.stderr, err, [], threading.Event()), daemon=True
        ),
    ]
    for reader in readers:
        reader.start()
    ready.wait(timeout_s)
    try:
        if not found:
            raise RuntimeError(f"the sandbox did not start:\n{''.join(out)}\n{''.join(err)}")
        yield SandboxProcess(process, found[0], out, err, readers)
    finally:
        if process.poll() is None:
            process.kill()
        process.wait()
        for reader in readers:
            reader.join(5)
        for stream in (process.stdout, process.stderr):
            if stream is not None:
                stream.close()
