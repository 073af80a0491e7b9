"""A connection per thread for the producer's one hot call, kept between calls.

A redis-py client takes a connection from its pool for every command and gives it back after:
a lock, a process-id check, and a ``can_read`` probe of the socket (a ``recv`` that finds
nothing, between two ``settimeout`` calls) on the way out, the lock and the check again on the
way back. That is about 8 us of CPU per command here, a tenth of a producer's ``start``.
:class:`ThreadConnections` keeps one connection of the same pool for each thread that calls
through it (a client with ``single_connection_client``), so a thread's next call goes straight
to its socket. The command is sent and read through the connection itself, past the client's
own path (its lock, its response callbacks): only ``EVALSHA`` goes through here, which has no
callback.

The connection is the pool's: same options, same retries, same server (a Sentinel pool's asks
the Sentinels for the primary when it connects, again after a failover). A thread holds its
connection while it lives and gives it back to the pool when it ends; a forked child makes its
own (the parent's socket is never used from two processes). An error inside a command
disconnects the connection, as it would in the pool, and the next command reconnects.
"""

from __future__ import annotations

import os
import select
import socket
import ssl
import threading
from typing import Any

from redis import Redis
from redis.client import NEVER_DECODE
from redis.connection import AbstractConnection
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

__all__ = ["ThreadConnections"]

#: Bumped in a forked child: a connection made before the fork belongs to the parent.
_forks = 0


def _forked() -> None:
    global _forks
    _forks += 1


os.register_at_fork(after_in_child=_forked)


class ThreadConnections:
    """Runs commands on ``client``'s pool through one connection per calling thread.

    It has the two methods :class:`~orchestrator.state.evalsha.HotScript` calls.

    Args:
        client: the client whose pool (and options) the connections come from.
    """

    def __init__(self, client: Redis) -> None:
        self._client = client
        self._local = threading.local()

    def execute_command(self, *args: Any, **options: Any) -> Any:
        """Run a command on the calling thread's connection, as ``Redis.execute_command``
        does, with the connection's retries; for ``EVALSHA`` only.

        The command goes straight to the connection (its ``send_command`` and
        ``read_response``): redis-py's response callbacks are not applied (``EVALSHA`` has
        none), and ``NEVER_DECODE`` is the one option taken. That is 3–5 us of CPU less per
        call than the client's own path (docs/performance.md).
        """
        local = self._local
        if getattr(local, "forks", -1) != _forks:
            local.pinned = _Pinned(self._client)
            local.forks = _forks
        pinned: _Pinned = local.pinned
        pinned.check()
        return pinned.run(args, bool(options.get(NEVER_DECODE)))

    def script_load(self, script: str) -> Any:
        """Load ``script`` (through the shared client: any connection will do)."""
        return self._client.script_load(script)


class _Pinned:
    """A thread's client with its one connection, and the probe of that connection's socket."""

    def __init__(self, shared: Redis) -> None:
        # Takes (and connects) a connection of the pool; raises if none can be made.
        self.client = Redis(connection_pool=shared.connection_pool, single_connection_client=True)
        connection = self.client.connection
        assert connection is not None  # a single-connection client's, until it is closed
        self.connection: AbstractConnection = connection
        self._socket: socket.socket | None = None
        self._poll = select.poll()

    def check(self) -> None:
        """Make the connection ready for a command, as the pool does before it hands one out.

        A connection whose socket has something to read is closed first: the server closed it
        (restarted, or the client was killed) or an answer was left unread. A closed one is
        connected again here, through the connection's own ``connect`` (a Sentinel pool's asks
        the Sentinels where the primary is now; the reconnect redis-py makes inside a command
        would go back to the address it had).

        ``poll`` with no wait; a TLS socket is asked through redis-py's own probe
        (``can_read``), which reads through the TLS layer: bytes on the socket may be TLS
        records that carry no answer, and what was decrypted may wait in the TLS layer with
        nothing left on the socket.

        Raises:
            redis.exceptions.ConnectionError, TimeoutError: no connection could be made.
        """
        connection = self.connection
        sock = connection._sock  # redis-py's socket of the connection (None: not connected)
        if sock is not None and self._readable(connection, sock):
            connection.disconnect()
            sock = None
        if sock is None:
            connection.connect()  # type: ignore[no-untyped-call]

    def run(self, command: tuple[Any, ...], raw: bool) -> Any:
        """Send ``command`` and read its answer (bytes if ``raw``), retried as the client
        retries: after a failed attempt the connection is closed, and the next one connects
        again."""
        connection = self.connection

        def send_and_read() -> Any:
            connection.send_command(*command)  # type: ignore[no-untyped-call]
            return connection.read_response(disable_decoding=raw)  # type: ignore[no-untyped-call]

        return connection.retry.call_with_retry(send_and_read, self._failed)

    def _failed(self, _: Exception) -> None:
        self.connection.disconnect()  # type: ignore[no-untyped-call]

    def _readable(self, connection: AbstractConnection, sock: socket.socket) -> bool:
        if isinstance(sock, ssl.SSLSocket):
            try:
                return bool(connection.can_read())  # type: ignore[no-untyped-call]
            except (RedisConnectionError, RedisTimeoutError, OSError):
                return True  # it found the connection closed
        if sock is not self._socket:
            self._poll = select.poll()
            self._poll.register(sock, select.POLLIN)
            self._socket = sock
        return bool(self._poll.poll(0))
