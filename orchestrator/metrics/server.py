"""The HTTP endpoint of ``krtc-rec metrics``: Prometheus text at ``/metrics``, read from Redis.

It is stateless (every value comes from Redis at each scrape), so run one per deployment, or
several behind a load balancer. A scrape that cannot read Redis gets a 503 with a one-line
reason (no password), so the target shows as down.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from socketserver import ThreadingMixIn
from typing import Any, cast
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import CollectorRegistry, make_wsgi_app
from redis import Redis

from orchestrator.errors import StateError
from orchestrator.metrics.collector import RedisCollector
from orchestrator.settings import Settings
from orchestrator.state import Keys
from orchestrator.state.connection import redis_client

__all__ = ["MetricsServer", "DEFAULT_METRICS_PORT", "registry_for"]

log = logging.getLogger("orchestrator.metrics")

#: The port of ``krtc-rec metrics`` (ops/prometheus/prometheus.yml scrapes it).
DEFAULT_METRICS_PORT = 9808

_StartResponse = Callable[..., Any]
_Environ = dict[str, Any]


def registry_for(redis: Redis, keys: Keys) -> CollectorRegistry:
    """A registry holding only the cluster-wide collector (no process metrics of this server)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(RedisCollector(redis, keys))
    return registry


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True
    allow_reuse_address = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (the base's name)
        pass


def _app(registry: CollectorRegistry) -> Callable[[_Environ, _StartResponse], Iterable[bytes]]:
    metrics = make_wsgi_app(registry)

    def app(environ: _Environ, start_response: _StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path == "/":
            start_response("200 OK", [("Content-Type", "text/plain; charset=utf-8")])
            return [b"krtc-rec metrics: see /metrics\n"]
        if path != "/metrics":
            start_response("404 Not Found", [("Content-Type", "text/plain; charset=utf-8")])
            return [b"not found: the metrics are at /metrics\n"]
        try:
            return cast(Iterable[bytes], metrics(environ, start_response))
        except StateError as exc:
            log.warning("metrics: scrape failed: %s", exc)
            start_response(
                "503 Service Unavailable", [("Content-Type", "text/plain; charset=utf-8")]
            )
            return [f"cannot read the metrics from Redis: {exc}\n".encode()]

    return app


class MetricsServer:
    """Serves ``registry`` over HTTP in a background thread.

    Args:
        registry: what to expose (see :func:`registry_for`).
        host: the address to listen on (``0.0.0.0``: every interface).
        port: the port (0: any free port; see :attr:`port`).
    """

    def __init__(self, registry: CollectorRegistry, *, host: str, port: int) -> None:
        self._server = make_server(
            host, port, _app(registry), server_class=_Server, handler_class=_QuietHandler
        )
        self.host = host
        self.port = int(self._server.server_port)
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="krtc-metrics", daemon=True
        )

    @classmethod
    def from_settings(cls, settings: Settings, *, host: str, port: int) -> MetricsServer:
        """A server of the cluster-wide metrics of the deployment ``settings`` describe."""
        redis = redis_client(settings)
        return cls(registry_for(redis, Keys(settings.redis_prefix)), host=host, port=port)

    @property
    def url(self) -> str:
        """The address of ``/metrics`` (``127.0.0.1`` when listening on every interface)."""
        host = "127.0.0.1" if self.host in ("", "0.0.0.0") else self.host
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{self.port}/metrics"

    def start(self) -> MetricsServer:
        """Start serving (returns at once)."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the socket."""
        if self._thread.is_alive():
            self._server.shutdown()
            self._thread.join(5)
        self._server.server_close()
