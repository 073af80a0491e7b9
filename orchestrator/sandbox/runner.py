"""Run a sandbox from other code: in a background thread, or in the foreground until a signal.

:class:`SandboxThread` is for tests, benchmarks and the demo::

    with SandboxThread(SandboxConfig(port=0)) as sandbox:
        client = KrtcClient(Settings(endpoint=sandbox.endpoint, ...))

:func:`serve_forever` is what ``krtc-rec sandbox`` runs: it serves on the current thread and returns
once SIGINT or SIGTERM arrives, after closing every connection.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import signal
import threading
from collections.abc import Callable
from typing import TypeVar

from orchestrator.sandbox.config import SandboxConfig
from orchestrator.sandbox.server import CLOUD_PATH, CONTROL_PREFIX, SandboxServer
from orchestrator.sandbox.service import Sandbox

__all__ = ["DEFAULT_START_TIMEOUT_S", "SandboxThread", "serve_forever"]

#: How long :meth:`SandboxThread.start` waits for the server to listen.
DEFAULT_START_TIMEOUT_S = 10.0

T = TypeVar("T")


class SandboxThread:
    """A sandbox server on its own event loop in a daemon thread.

    Args:
        config: the server's configuration; ``port=0`` picks a free port.

    Attributes:
        base_url: ``http://host:port`` once started.
    """

    def __init__(self, config: SandboxConfig | None = None) -> None:
        self.config = config or SandboxConfig(port=0)
        self.base_url = ""
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: SandboxServer | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None

    @property
    def endpoint(self) -> str:
        """The API endpoint (``.../cloud``), for ``KRTC_ENDPOINT``."""
        return f"{self.base_url}{CLOUD_PATH}"

    @property
    def control_url(self) -> str:
        """The control API's root (``.../_sandbox``), without a trailing slash."""
        return f"{self.base_url}{CONTROL_PREFIX}"

    @property
    def port(self) -> int:
        """The port listened on."""
        if self._server is None:
            raise RuntimeError("the sandbox is not started")
        return self._server.port

    def start(self, timeout_s: float = DEFAULT_START_TIMEOUT_S) -> str:
        """Start serving; returns the base URL (``http://host:port``).

        Raises:
            RuntimeError: already started, or the server did not come up (e.g. port in use).
        """
        if self._thread is not None:
            raise RuntimeError("the sandbox is already started")
        self._thread = threading.Thread(target=self._run, name="krtc-sandbox", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout_s):
            raise RuntimeError(f"the sandbox did not start within {timeout_s} s")
        if self._error is not None:
            self._thread.join()
            self._thread = None
            raise RuntimeError(f"the sandbox could not start: {self._error}") from self._error
        return self.base_url

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        asyncio.set_event_loop(loop)
        try:
            server = SandboxServer(self.config)
            server.listen()
        except BaseException as exc:  # reported by start()
            self._error = exc
            self._ready.set()
            loop.close()
            return
        self._server = server
        self.base_url = server.base_url
        self._ready.set()
        try:
            loop.run_forever()
        finally:
            loop.run_until_complete(server.stop())
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    def call(self, fn: Callable[[Sandbox], T], timeout_s: float = 5.0) -> T:
        """Run ``fn(sandbox)`` on the server's loop (the only safe way to touch its state)."""
        loop, server = self._loop, self._server
        if loop is None or server is None:
            raise RuntimeError("the sandbox is not started")
        future: concurrent.futures.Future[T] = concurrent.futures.Future()

        def run() -> None:
            try:
                future.set_result(fn(server.sandbox))
            except BaseException as exc:
                future.set_exception(exc)

        loop.call_soon_threadsafe(run)
        return future.result(timeout_s)

    def stop(self, timeout_s: float = 10.0) -> None:
        """Stop serving, close every connection and join the thread. Idempotent."""
        thread, loop = self._thread, self._loop
        if thread is None or loop is None:
            return
        if not loop.is_closed():
            loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout_s)
        self._thread = None
        self._server = None

    def __enter__(self) -> SandboxThread:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def serve_forever(
    config: SandboxConfig, *, on_listening: Callable[[SandboxServer], None] | None = None
) -> None:
    """Serve on the current thread until SIGINT or SIGTERM, then close every connection.

    Args:
        config: the server's configuration.
        on_listening: called once the socket is bound (e.g. to print the address).
    """

    async def main() -> None:
        server = SandboxServer(config)
        server.listen()
        stopping = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stopping.set)
        try:
            if on_listening is not None:
                on_listening(server)
            await stopping.wait()
        finally:
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)
            await server.stop()

    asyncio.run(main())
