"""An embedded Redis: a ``redis-server`` child process on a free port, in a temporary directory."""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from redis.exceptions import RedisError

from orchestrator.errors import ConfigError
from orchestrator.state.connection import RedisOptions, connect
from orchestrator.state.keys import Keys

__all__ = ["EmbeddedRedis", "RedisTls", "delete_prefix", "redis_answers", "free_port"]

#: Keys deleted per ``DEL`` by :func:`delete_prefix`.
_DELETE_BATCH = 500


def free_port() -> int:
    """A TCP port that was free a moment ago on 127.0.0.1."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def redis_answers(url: str, timeout_s: float = 1.0) -> bool:
    """Whether a Redis answers PING at ``url``."""
    client = connect(url, RedisOptions().with_timeouts(timeout_s))
    try:
        return bool(client.ping())
    except RedisError:
        return False
    finally:
        client.close()


def delete_prefix(url: str, prefix: str, options: RedisOptions | None = None) -> int:
    """Delete every key under ``prefix`` (Celery's included: they share it) and nothing else;
    returns how many there were.

    Args:
        url: any ``REDIS_URL`` :func:`~orchestrator.state.connection.connect` takes, Sentinels
            included (then on the current primary).
        prefix: the ``KRTC_REDIS_PREFIX`` whose keys go.
        options: timeouts and, for Sentinels, the primary's name (default: the defaults).

    Raises:
        redis.exceptions.RedisError: Redis could not be reached or refused.
    """
    client = connect(url, options)
    try:
        keys = list(client.scan_iter(match=Keys(prefix).pattern(), count=1000))
        for start in range(0, len(keys), _DELETE_BATCH):
            client.delete(*keys[start : start + _DELETE_BATCH])
        return len(keys)
    finally:
        client.close()


@dataclass(frozen=True)
class RedisTls:
    """The files of a TLS-only :class:`EmbeddedRedis` (PEM).

    Attributes:
        cert_file: the server's certificate (its names must include 127.0.0.1).
        key_file: its private key.
        ca_file: the CA that signed it: clients verify the server with it.
    """

    cert_file: Path
    key_file: Path
    ca_file: Path

    def server_args(self, port: int) -> list[str]:
        """``redis-server`` options: TLS on ``port``, no plain port, no client certificates."""
        return [
            "--port", "0",
            "--tls-port", str(port),
            "--tls-cert-file", str(self.cert_file),
            "--tls-key-file", str(self.key_file),
            "--tls-ca-cert-file", str(self.ca_file),
            "--tls-auth-clients", "no",
        ]  # fmt: skip

    def url(self, port: int, ca_file: Path | None = None) -> str:
        """The ``rediss://`` URL of the server on ``port``, verifying it with ``ca_file``
        (default: :attr:`ca_file`)."""
        ca = quote(str(ca_file or self.ca_file), safe="/")
        return f"rediss://127.0.0.1:{port}/0?ssl_cert_reqs=required&ssl_ca_certs={ca}"


class EmbeddedRedis:
    """``redis-server`` on 127.0.0.1 and a free port, with AOF, removed when stopped.

    Args:
        port: the port (default: a free one).
        tls: serve TLS only, on ``port``, with these files (:attr:`url` is then ``rediss://``).

    Raises:
        ConfigError: on :meth:`start`, when ``redis-server`` is not on PATH.
    """

    def __init__(self, *, port: int | None = None, tls: RedisTls | None = None) -> None:
        self.port = port or free_port()
        self.tls = tls
        self._dir: Path | None = None
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        if self.tls is not None:
            return self.tls.url(self.port)
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout_s: float = 10.0) -> str:
        """Start it and wait until it answers; returns its URL."""
        binary = shutil.which("redis-server")
        if binary is None:
            raise ConfigError(
                "no Redis: REDIS_URL is not set, nothing answers on 127.0.0.1:6379 and "
                "redis-server is not on PATH (install it: apt-get install redis-server, or run "
                "`make redis`)"
            )
        if self._dir is None:
            self._dir = Path(tempfile.mkdtemp(prefix="krtc-redis-"))
        ports = ["--port", str(self.port)] if self.tls is None else self.tls.server_args(self.port)
        log_path = self._dir / "redis.log"
        with log_path.open("ab") as log:
            self._process = subprocess.Popen(
                [
                    binary,
                    *ports,
                    "--bind", "127.0.0.1",
                    "--dir", str(self._dir),
                    "--appendonly", "yes",
                    "--save", "",
                    "--maxmemory-policy", "noeviction",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )  # fmt: skip
        deadline = time.monotonic() + timeout_s
        while not redis_answers(self.url, 0.2):
            if self._process.poll() is not None or time.monotonic() > deadline:
                last = _last_line(log_path)
                self.stop()
                raise ConfigError(
                    f"the embedded redis-server did not start on port {self.port}"
                    + (f": {last}" if last else "")
                )
            time.sleep(0.05)
        return self.url

    def shutdown_nosave(self, timeout_s: float = 10.0) -> None:
        """Stop the server abruptly (``SHUTDOWN NOSAVE``) but keep its files (its AOF).

        :meth:`start` then brings it back on the same port with what the AOF kept.
        """
        client = connect(self.url, RedisOptions().with_timeouts(1.0))
        try:
            client.shutdown(nosave=True)
        except RedisError:
            pass  # the connection drops as the server exits
        finally:
            client.close()
        if self._process is not None:
            self._process.wait(timeout_s)
            self._process = None

    def kill(self, timeout_s: float = 10.0) -> None:
        """Crash the server (SIGKILL) but keep its files: what the AOF holds survives.

        With ``appendfsync everysec`` the server normally writes a command to the AOF (the
        kernel's cache) before it replies, so a process crash usually loses nothing; a crash
        of the machine loses what was not fsynced yet (about the last second), and so may a
        process crash while a slow fsync makes Redis postpone its writes (up to 2 s).
        :meth:`start` brings it back on the same port and directory.
        """
        if self._process is not None:
            self._process.kill()
            self._process.wait(timeout_s)
            self._process = None

    def stop(self) -> None:
        """Stop it and remove its files."""
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait(5)
        self._process = None
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None


def _last_line(path: Path) -> str:
    """The last non-empty line of a log file ("" when there is none)."""
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return ""
    return next((line.strip() for line in reversed(lines) if line.strip()), "")
