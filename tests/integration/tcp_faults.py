"""TCP servers that misbehave like a failing Redis, for the client timeout and retry tests.

* :class:`BlackHole`: accepts connections and never answers (a hung server, or a half-open
  connection whose peer is gone).
* :class:`CuttingProxy`: forwards to a real Redis; when armed with :meth:`CuttingProxy.cut_next`,
  it forwards the next command but closes the client's connection instead of relaying the
  answer (a connection lost after the command ran, the case a blind retry gets wrong).
"""

from __future__ import annotations

import selectors
import socket
import threading
from types import TracebackType

__all__ = ["BlackHole", "CuttingProxy"]


class BlackHole:
    """A listening socket on 127.0.0.1 whose connections are accepted, held and never read."""

    def __init__(self) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self._listener.getsockname()[1])
        self._held: list[socket.socket] = []
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._accept, name="black-hole", daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def _accept(self) -> None:
        self._listener.settimeout(0.1)
        while not self._stopped.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self._held.append(conn)

    def close(self) -> None:
        self._stopped.set()
        self._thread.join(2)
        self._listener.close()
        for conn in self._held:
            conn.close()

    def __enter__(self) -> BlackHole:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


class CuttingProxy:
    """A TCP proxy to ``target`` (host, port) that can lose one answer on purpose.

    Attributes:
        connections: client connections accepted so far.
        cuts: connections closed by a cut.
    """

    def __init__(self, target: tuple[str, int]) -> None:
        self._target = target
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.setblocking(False)
        self.port = int(self._listener.getsockname()[1])
        self.connections = 0
        self.cuts = 0
        self._armed = False
        self._lock = threading.Lock()
        self._selector = selectors.DefaultSelector()
        self._selector.register(self._listener, selectors.EVENT_READ, None)
        self._peers: dict[socket.socket, socket.socket] = {}
        self._clients: set[socket.socket] = set()
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name="cutting-proxy", daemon=True)
        self._thread.start()

    def url(self, db: int) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"

    def cut_next(self) -> None:
        """Forward the next command, then close its connection instead of answering."""
        with self._lock:
            self._armed = True

    def _run(self) -> None:
        while not self._stopped.is_set():
            for key, _ in self._selector.select(0.05):
                sock = key.fileobj
                assert isinstance(sock, socket.socket)
                if sock is self._listener:
                    self._accept()
                else:
                    self._relay(sock)

    def _accept(self) -> None:
        client, _ = self._listener.accept()
        server = socket.create_connection(self._target)
        for sock in (client, server):
            sock.setblocking(False)
            self._selector.register(sock, selectors.EVENT_READ, None)
        self._peers[client], self._peers[server] = server, client
        self._clients.add(client)
        self.connections += 1

    def _relay(self, sock: socket.socket) -> None:
        try:
            data = sock.recv(65536)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        peer = self._peers.get(sock)
        if peer is None:
            return
        if not data:
            self._drop(sock)
            return
        peer.sendall(data)
        with self._lock:
            cut = self._armed and sock in self._clients
            if cut:
                self._armed = False
        if cut:
            self.cuts += 1
            # Let Redis run the command, then lose its answer with the connection.
            self._selector.unregister(peer)
            threading.Timer(0.2, peer.close).start()
            self._selector.unregister(sock)
            self._peers.pop(peer, None)
            self._peers.pop(sock, None)
            self._clients.discard(sock)
            sock.close()

    def _drop(self, sock: socket.socket) -> None:
        peer = self._peers.pop(sock, None)
        for one in (sock, peer):
            if one is None:
                continue
            self._peers.pop(one, None)
            self._clients.discard(one)
            try:
                self._selector.unregister(one)
            except (KeyError, ValueError):
                pass
            one.close()

    def close(self) -> None:
        self._stopped.set()
        self._thread.join(2)
        for sock in list(self._peers):
            sock.close()
        self._listener.close()
        self._selector.close()

    def __enter__(self) -> CuttingProxy:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
