"""A local Sentinel topology: a primary, replicas and Sentinels, as ``redis-server`` children.

For the failover test and bench (``bench/failover.py``): everything on 127.0.0.1 and free
ports, in one temporary directory, removed by :meth:`SentinelTopology.stop`. The data nodes run
as production should (AOF, ``noeviction``); the Sentinels with a short
``down-after-milliseconds`` so that a failover takes seconds.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any, cast

from redis.exceptions import RedisError

from orchestrator.errors import ConfigError
from orchestrator.settings import DEFAULT_REDIS_MASTER_NAME
from orchestrator.stack.redis_server import free_port, redis_answers
from orchestrator.state.connection import RedisOptions, connect

__all__ = ["DEFAULT_DOWN_AFTER_MS", "SentinelTopology"]

#: Milliseconds without an answer before a Sentinel deems the primary down.
DEFAULT_DOWN_AFTER_MS = 2000


class SentinelTopology:
    """A primary, ``replicas`` replicas and ``sentinels`` Sentinels (quorum ``quorum``).

    Args:
        replicas: replicas of the primary.
        sentinels: Sentinel processes.
        quorum: Sentinels that must agree the primary is down.
        down_after_ms: the Sentinels' ``down-after-milliseconds``.
        master_name: the name the Sentinels monitor the primary by.

    Raises:
        ConfigError: on :meth:`start`, when ``redis-server`` is not on PATH or a node does not
            come up.
    """

    def __init__(
        self,
        *,
        replicas: int = 1,
        sentinels: int = 3,
        quorum: int = 2,
        down_after_ms: int = DEFAULT_DOWN_AFTER_MS,
        master_name: str = DEFAULT_REDIS_MASTER_NAME,
    ) -> None:
        self.master_name = master_name
        self.down_after_ms = down_after_ms
        self.quorum = quorum
        self.data_ports = [free_port() for _ in range(1 + replicas)]
        self.sentinel_ports = [free_port() for _ in range(sentinels)]
        self._dir: Path | None = None
        self._processes: dict[int, subprocess.Popen[bytes]] = {}

    @property
    def url(self) -> str:
        """The ``REDIS_URL`` of the topology (database 0): every Sentinel, Celery's form."""
        return ";".join(f"sentinel://127.0.0.1:{port}" for port in self.sentinel_ports) + "/0"

    def node_url(self, port: int) -> str:
        """The plain URL of one data node."""
        return f"redis://127.0.0.1:{port}/0"

    def start(self, timeout_s: float = 20.0) -> str:
        """Start every node, wait until the replicas are in sync and the Sentinels see them all;
        returns :attr:`url`."""
        binary = shutil.which("redis-server")
        if binary is None:
            raise ConfigError("redis-server is not on PATH (apt-get install redis-server)")
        self._dir = Path(tempfile.mkdtemp(prefix="krtc-sentinel-"))
        primary, *replicas = self.data_ports
        for port in self.data_ports:
            argv = [binary, *self._data_args(port)]
            if port != primary:
                argv += ["--replicaof", "127.0.0.1", str(primary)]
            self._spawn(port, argv)
        for port in self.data_ports:
            self._wait(lambda p=port: redis_answers(self.node_url(p), 0.2), timeout_s, port)
        for port in self.sentinel_ports:
            config = self._dir / f"sentinel-{port}.conf"
            config.write_text(
                "\n".join(
                    [
                        f"port {port}",
                        "bind 127.0.0.1",
                        f"dir {self._dir}",
                        f"sentinel monitor {self.master_name} 127.0.0.1 {primary} {self.quorum}",
                        f"sentinel down-after-milliseconds {self.master_name} {self.down_after_ms}",
                        f"sentinel failover-timeout {self.master_name} 10000",
                        f"sentinel parallel-syncs {self.master_name} 1",
                        "",
                    ]
                )
            )
            self._spawn(port, [binary, str(config), "--sentinel"])
        self._wait(self._in_sync, timeout_s, primary)
        self._wait(self._sentinels_ready, timeout_s, self.sentinel_ports[0])
        return self.url

    def primary_port(self) -> int | None:
        """The port of the primary as the first Sentinel that answers names it."""
        for port in self.sentinel_ports:
            client = connect(f"redis://127.0.0.1:{port}", RedisOptions().with_timeouts(0.5))
            try:
                address = client.execute_command(  # type: ignore[no-untyped-call]
                    "SENTINEL", "GET-MASTER-ADDR-BY-NAME", self.master_name
                )
                if address:
                    return int(address[1])
            except RedisError:
                continue
            finally:
                client.close()
        return None

    def kill_primary(self) -> int:
        """SIGKILL the current primary (its files stay); returns its port."""
        port = self.primary_port()
        if port is None or port not in self._processes:
            raise ConfigError("no Sentinel names a primary of this topology")
        process = self._processes.pop(port)
        process.kill()
        process.wait(10)
        return port

    def wait_for_new_primary(self, old_port: int, timeout_s: float = 30.0) -> int:
        """Wait until the Sentinels name another primary and it answers as one; its port."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            port = self.primary_port()
            if port is not None and port != old_port and self._role(port) == "master":
                return port
            time.sleep(0.1)
        raise ConfigError(f"no new primary within {timeout_s:g}s")

    def stop(self) -> None:
        """Stop every node (TERM, then KILL) and remove the directory."""
        for process in self._processes.values():
            if process.poll() is None:
                process.terminate()
        for process in self._processes.values():
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)
        self._processes.clear()
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None

    def _data_args(self, port: int) -> list[str]:
        assert self._dir is not None
        node_dir = self._dir / f"node-{port}"
        node_dir.mkdir()
        return [
            "--port", str(port),
            "--bind", "127.0.0.1",
            "--dir", str(node_dir),
            "--appendonly", "yes",
            "--save", "",
            "--maxmemory-policy", "noeviction",
            "--repl-diskless-sync-delay", "0",
        ]  # fmt: skip

    def _spawn(self, port: int, argv: list[str]) -> None:
        self._processes[port] = subprocess.Popen(
            argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )

    def _wait(self, ready: Any, timeout_s: float, port: int) -> None:
        deadline = time.monotonic() + timeout_s
        while not ready():
            if time.monotonic() > deadline:
                self.stop()
                raise ConfigError(f"the Sentinel topology did not come up (port {port})")
            time.sleep(0.1)

    def _role(self, port: int) -> str | None:
        client = connect(self.node_url(port), RedisOptions().with_timeouts(0.5))
        try:
            info = cast("dict[str, Any]", client.info("replication"))
            return str(info.get("role"))
        except RedisError:
            return None
        finally:
            client.close()

    def _in_sync(self) -> bool:
        client = connect(self.node_url(self.data_ports[0]), RedisOptions().with_timeouts(0.5))
        try:
            info = cast("dict[str, Any]", client.info("replication"))
        except RedisError:
            return False
        finally:
            client.close()
        replicas = [v for k, v in info.items() if k.startswith("slave") and isinstance(v, dict)]
        online = [r for r in replicas if r.get("state") == "online"]
        return len(online) == len(self.data_ports) - 1

    def _sentinels_ready(self) -> bool:
        for port in self.sentinel_ports:
            client = connect(f"redis://127.0.0.1:{port}", RedisOptions().with_timeouts(0.5))
            try:
                master = client.execute_command(  # type: ignore[no-untyped-call]
                    "SENTINEL", "MASTER", self.master_name
                )
            except RedisError:
                return False
            finally:
                client.close()
            fields = dict(zip(master[::2], master[1::2], strict=False)) if master else {}
            if int(fields.get("num-other-sentinels", 0)) < len(self.sentinel_ports) - 1:
                return False
            if int(fields.get("num-slaves", 0)) < len(self.data_ports) - 1:
                return False
        return True
