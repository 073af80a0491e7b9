"""The sandbox's HTTP server (Tornado): ``POST /cloud`` and the ``/_sandbox/`` control API.

Everything runs on one event loop. Injected latency is an ``await``, so a slow answer never holds
up the others. A lost answer detaches the connection from Tornado: "close" shuts it at once,
"hang" holds it until the client gives up, ``hang_s`` passes or the server stops.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from collections.abc import Callable
from typing import Any

from tornado.httpserver import HTTPServer
from tornado.iostream import IOStream
from tornado.web import Application, RequestHandler

from orchestrator.sandbox.config import SandboxConfig
from orchestrator.sandbox.control import control_routes
from orchestrator.sandbox.errors import error_body
from orchestrator.sandbox.service import Reply, Sandbox

__all__ = [
    "CLOUD_PATH",
    "CONTROL_PREFIX",
    "DEFAULT_BACKLOG",
    "HeldConnections",
    "SandboxServer",
    "bind_socket",
    "make_app",
]

CLOUD_PATH = "/cloud"
CONTROL_PREFIX = "/_sandbox"
#: Pending connections the listening socket queues (a benchmark opens hundreds at once).
DEFAULT_BACKLOG = 1024

logger = logging.getLogger("orchestrator.sandbox")


class HeldConnections:
    """Connections held open without an answer ("apply then hang"), closed on shutdown."""

    def __init__(self) -> None:
        self._streams: set[IOStream] = set()

    def __len__(self) -> int:
        return len(self._streams)

    async def hold(self, stream: IOStream, timeout_s: float) -> None:
        """Hold ``stream`` until its peer closes it or ``timeout_s`` passes, then close it."""
        self._streams.add(stream)
        try:
            closed = asyncio.ensure_future(stream.read_until_close())
            # Retrieve the outcome whatever it is, so no "exception never retrieved" is logged.
            closed.add_done_callback(lambda f: f.cancelled() or f.exception())
            await asyncio.wait([closed], timeout=timeout_s)
        finally:
            self._streams.discard(stream)
            stream.close()

    def close_all(self) -> None:
        """Close every held connection."""
        for stream in list(self._streams):
            stream.close()


class _JsonErrors(RequestHandler):
    """Tornado's own errors (405, 404 routes, 500) as ``{"code", "reason"}`` bodies."""

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        self.set_header("Content-Type", "application/json;charset=UTF-8")
        self.finish(error_body(status_code, self._reason))


class CloudHandler(_JsonErrors):
    """``POST /cloud``: the simulated KRTC API."""

    SUPPORTED_METHODS = ("POST",)

    def initialize(self, sandbox: Sandbox, held: HeldConnections) -> None:
        self.sandbox = sandbox
        self.held = held

    async def post(self) -> None:
        started = time.perf_counter()
        delay = self.sandbox.faults.delay_s()
        if delay:
            # The latency runs from the request's arrival: time it spent queued here counts.
            await asyncio.sleep(max(0.0, delay - self.request.request_time()))
        request = self.request
        headers = {k.lower(): v for k, v in request.headers.items()}
        reply = self.sandbox.handle(
            request.method or "POST",
            request.path,
            request.query,
            headers,
            request.body,
            delay_s=delay,
        )
        if logger.isEnabledFor(logging.INFO):
            _log_reply(headers.get("x-action"), reply, time.perf_counter() - started)
        if reply.lost is not None:
            stream = self.detach()
            if reply.lost == "close":
                stream.close()
            else:
                await self.held.hold(stream, self.sandbox.behaviour.hang_s)
            return
        assert reply.status is not None
        self.set_status(reply.status)
        self.set_header("Content-Type", "application/json;charset=UTF-8")
        for name, value in reply.headers.items():
            self.set_header(name, value)
        self.finish(reply.encode())


def _log_reply(action: str | None, reply: Reply, elapsed_s: float) -> None:
    sid = reply.body.get("sid") if reply.body else None
    reason = reply.body.get("reason") if reply.body else None
    logger.info(
        "%s -> %s %s%s%s (%.1f ms)",
        action if action and len(action) <= 64 else "(unknown action)",
        reply.status if reply.status is not None else "no answer",
        reply.outcome,
        f" sid={sid}" if sid else "",
        f" reason={reason!r}" if reason else "",
        elapsed_s * 1000,
    )


def _log_request(handler: RequestHandler) -> None:
    # /cloud requests are logged by CloudHandler with their outcome; the rest at debug level.
    if not isinstance(handler, CloudHandler) and logger.isEnabledFor(logging.DEBUG):
        logger.debug(
            "%s %s -> %s", handler.request.method, handler.request.path, handler.get_status()
        )


def make_app(sandbox: Sandbox, held: HeldConnections) -> Application:
    """The Tornado application of one sandbox."""
    routes: list[Any] = [(CLOUD_PATH, CloudHandler, {"sandbox": sandbox, "held": held})]
    routes.extend(control_routes(sandbox, CONTROL_PREFIX))
    return Application(routes, log_function=_log_request, default_handler_class=_NotFound)


class _NotFound(_JsonErrors):
    def prepare(self) -> None:
        self.send_error(404, reason="Not Found")


def bind_socket(host: str, port: int, backlog: int = DEFAULT_BACKLOG) -> socket.socket:
    """A listening, non-blocking socket on the first address of ``host`` (closed on failure).

    Raises:
        OSError: the address cannot be resolved or bound (e.g. the port is in use).
    """
    family, _, _, _, address = socket.getaddrinfo(
        host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]
    sock = socket.create_server(address[:2], family=family, backlog=backlog)
    sock.setblocking(False)
    return sock


class SandboxServer:
    """A sandbox listening on a socket, run on the current event loop.

    Args:
        config: where to listen, the key pair, the behaviour and the initial faults.
        clock, sign_clock: see :class:`~orchestrator.sandbox.service.Sandbox`.
    """

    def __init__(
        self,
        config: SandboxConfig,
        *,
        clock: Callable[[], float] = time.time,
        sign_clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self.sandbox = Sandbox(config, clock=clock, sign_clock=sign_clock)
        self.held = HeldConnections()
        self.app = make_app(self.sandbox, self.held)
        self._http: HTTPServer | None = None
        self.port = config.port

    def listen(self) -> int:
        """Bind and start serving on the running loop; returns the port (useful with port 0)."""
        sock = bind_socket(self.config.host, self.config.port)
        self.port = sock.getsockname()[1]
        self._http = HTTPServer(self.app)
        self._http.add_sockets([sock])
        return self.port

    @property
    def base_url(self) -> str:
        """``http://host:port``."""
        host = self.config.host
        host = f"[{host}]" if ":" in host else host
        return f"http://{host}:{self.port}"

    async def stop(self) -> None:
        """Stop listening and close every connection, held ones included."""
        if self._http is not None:
            self._http.stop()
            self.held.close_all()
            await self._http.close_all_connections()
            self._http = None
