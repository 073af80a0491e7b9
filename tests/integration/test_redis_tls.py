"""The whole path on a TLS Redis: ``rediss://127.0.0.1:PORT/0?ssl_cert_reqs=required&ssl_ca_certs=CA``.

One ``redis-server`` for the module, serving TLS only (``--port 0 --tls-port PORT``), with a
throwaway CA and server certificate made by ``openssl``. ``redis_url`` points at it, so the usual
queue stack (sandbox, :class:`Recorder`, ``krtc-rec worker`` subprocess) and the key clean-up run
over TLS: the store and Celery's broker and result backend alike. A second, unrelated CA shows
what a client that does not trust the server gets.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from orchestrator.errors import ConfigError
from orchestrator.producer import Recorder
from orchestrator.settings import settings_env
from orchestrator.stack.redis_server import EmbeddedRedis, RedisTls
from orchestrator.state import Keys, Phase, StateUnavailableError
from orchestrator.state.connection import connect
from orchestrator.state.pinned import ThreadConnections
from tests.integration.sandbox_fixture import SandboxHandle
from tests.integration.worker_fixture import QueueStack, start_body

pytestmark = [
    pytest.mark.integration,
    pytest.mark.timeout(60),
    pytest.mark.skipif(shutil.which("redis-server") is None, reason="needs redis-server"),
    pytest.mark.skipif(shutil.which("openssl") is None, reason="needs openssl (test certificates)"),
]

#: A password put in the URL of the client that does not trust the server: never echoed.
PASSWORD = "tls-pw-9c2e7f"


@dataclass(frozen=True)
class Certificates:
    """The server's TLS files, and a CA that did not sign them."""

    server: RedisTls
    other_ca: Path


def _openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True, timeout=30)


def _make_ca(directory: Path, name: str) -> tuple[Path, Path]:
    """A self-signed CA: its certificate and key."""
    cert, key = directory / f"{name}.pem", directory / f"{name}.key"
    _openssl(
        "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
        "-subj", f"/CN=krtc test {name}",
        "-keyout", str(key), "-out", str(cert),
    )  # fmt: skip
    return cert, key


def _make_certificates(directory: Path) -> Certificates:
    ca_cert, ca_key = _make_ca(directory, "ca")
    other_ca, _ = _make_ca(directory, "other-ca")
    key, csr, cert = directory / "server.key", directory / "server.csr", directory / "server.pem"
    extensions = directory / "server.ext"
    extensions.write_text(
        "subjectAltName=IP:127.0.0.1,DNS:localhost\n"
        "basicConstraints=CA:FALSE\n"
        "keyUsage=digitalSignature,keyEncipherment\n"
        "extendedKeyUsage=serverAuth\n",
        encoding="utf-8",
    )
    _openssl(
        "req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1",
        "-keyout", str(key), "-out", str(csr),
    )  # fmt: skip
    _openssl(
        "x509", "-req", "-days", "1", "-in", str(csr),
        "-CA", str(ca_cert), "-CAkey", str(ca_key), "-CAcreateserial",
        "-extfile", str(extensions), "-out", str(cert),
    )  # fmt: skip
    return Certificates(RedisTls(cert_file=cert, key_file=key, ca_file=ca_cert), other_ca)


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    return _make_certificates(tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="module")
def tls_redis(certificates: Certificates) -> Iterator[EmbeddedRedis]:
    """``redis-server`` serving TLS only, for the whole module."""
    server = EmbeddedRedis(tls=certificates.server)
    try:
        server.start()
    except ConfigError as exc:
        pytest.skip(f"redis-server cannot serve TLS here (built without TLS?): {exc}")
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def redis_url(tls_redis: EmbeddedRedis) -> str:
    """Every fixture of the module (the queue stack, its worker, the key clean-up) over TLS."""
    assert tls_redis.url.startswith("rediss://")
    return tls_redis.url


def _cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "orchestrator.cli", *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_a_recording_starts_and_stops_over_tls(
    queue_stack: QueueStack, tls_redis: EmbeddedRedis, key_prefix: str
) -> None:
    queue_stack.start_worker()
    session = queue_stack.recorder.start(start_body("tls-room"))
    running = queue_stack.wait(session.id, Phase.RECORDING)
    assert running.sid
    stopping = queue_stack.recorder.stop(session.id)
    assert stopping.id == session.id
    assert queue_stack.wait(session.id, Phase.STOPPED).phase == Phase.STOPPED
    assert [r["status"] for r in queue_stack.sandbox.recordings(cname="tls-room")]

    # Everything went to the TLS server: the sessions and Celery's keys under the prefix.
    client = connect(tls_redis.url)
    try:
        assert list(client.scan_iter(match=Keys(key_prefix).pattern(), count=1000))
    finally:
        client.close()

    # The operator's commands on the same server: status (the store, and the worker answering
    # over the broker's pub/sub) and the container healthcheck (a ping over the broker). Their
    # URL spells ssl_cert_reqs as Celery's docs do, which redis-py alone would refuse.
    celery_spelling = tls_redis.url.replace("ssl_cert_reqs=required", "ssl_cert_reqs=CERT_REQUIRED")
    assert celery_spelling != tls_redis.url
    env = {**queue_stack.env, "REDIS_URL": celery_spelling}
    status = _cli(env, "status", "--json")
    assert status.stdout.strip(), status.stderr
    checks = {check["name"]: check for check in json.loads(status.stdout)["checks"]}
    assert checks["redis"]["ok"], checks["redis"]
    assert checks["workers"]["ok"], checks["workers"]
    health = _cli(env, "healthcheck", "worker")
    assert health.returncode == 0, health.stdout + health.stderr


def test_a_ca_that_did_not_sign_the_server_is_a_clear_error(
    sandbox: SandboxHandle, tls_redis: EmbeddedRedis, certificates: Certificates
) -> None:
    url = certificates.server.url(tls_redis.port, ca_file=certificates.other_ca)
    url = url.replace("rediss://", f"rediss://:{PASSWORD}@", 1)
    settings = sandbox.settings(redis_url=url, redis_prefix="tls-wrong-ca")

    began = time.monotonic()
    with pytest.raises(StateUnavailableError) as caught:
        Recorder(settings).start(start_body("tls-wrong-ca"))
    assert time.monotonic() - began < 10
    message = str(caught.value)
    assert "CERTIFICATE_VERIFY_FAILED" in message and f"127.0.0.1:{tls_redis.port}" in message
    assert PASSWORD not in message

    # The CLI says the same, with its exit code for an unreachable Redis.
    result = _cli(settings_env(settings), "status")
    assert result.returncode == 6, result.stdout + result.stderr
    assert "CERTIFICATE_VERIFY_FAILED" in result.stdout and "ssl_ca_certs" in result.stdout
    assert PASSWORD not in result.stdout + result.stderr


def test_a_thread_keeps_its_connection_over_tls(tls_redis: EmbeddedRedis) -> None:
    # What TLS sends by itself after the handshake (session tickets) is not taken for a
    # closed connection: the thread's connection stays the same from call to call.
    client = connect(tls_redis.url)
    try:
        connections = ThreadConnections(client)
        ids = {int(connections.execute_command("CLIENT", "ID")) for _ in range(5)}
        assert len(ids) == 1
        killed = ids.pop()
        assert client.client_kill_filter(_id=killed) == 1
        assert int(connections.execute_command("CLIENT", "ID")) != killed
    finally:
        client.close()
