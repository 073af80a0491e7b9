"""The API client's HTTP transport: a urllib3 connection pool, the proxy from the environment.

* :func:`environ_proxy`: the proxy ``HTTPS_PROXY`` / ``HTTP_PROXY`` / ``ALL_PROXY`` name for a
  URL, unless ``NO_PROXY`` exempts it, with the rules ``requests`` applies
  (``requests.utils.get_environ_proxies`` then ``select_proxy``; the unit tests compare the two).
  Read once, when a client is built: reading the environment on every call cost about 0.6 ms.
* :func:`connection_pool`: a pool of ``size`` kept-open connections to the endpoint, or a
  ``ProxyManager`` through that proxy. TLS certificates are verified against certifi's CA
  bundle (what ``requests`` verifies against).
* :data:`NO_RETRIES`: retries are ours (:mod:`orchestrator.krtc.retry`), never urllib3's: a
  silent retry of a start would be a duplicate recording.
"""

from __future__ import annotations

import importlib.util
import ipaddress
import os
import socket
import ssl
import urllib.request
from typing import Any
from urllib.parse import unquote, urlsplit

import certifi
import urllib3
from urllib3.util import Retry, make_headers, parse_url
from urllib3.util.ssl_ import create_urllib3_context

from orchestrator.errors import ConfigError

__all__ = ["NO_RETRIES", "connection_pool", "environ_proxy", "redact_proxy", "tls_context"]

#: No retry, no redirect: urllib3 raises the first error as it is.
NO_RETRIES = Retry(total=False, redirect=False)


def _is_ipv4(value: str) -> bool:
    try:
        socket.inet_aton(value)
    except OSError:
        return False
    return True


def _is_cidr(value: str) -> bool:
    """``a.b.c.d/n`` with 1 <= n <= 32 (``requests.utils.is_valid_cidr``)."""
    if value.count("/") != 1:
        return False
    address, _, mask = value.partition("/")
    try:
        bits = int(mask)
    except ValueError:
        return False
    return 1 <= bits <= 32 and _is_ipv4(address)


def _in_network(ip: str, network: str) -> bool:
    address, _, mask = network.partition("/")
    net = ipaddress.IPv4Network(
        (int.from_bytes(socket.inet_aton(address), "big"), int(mask)), strict=False
    )
    return ipaddress.IPv4Address(int.from_bytes(socket.inet_aton(ip), "big")) in net


def _bypasses(url: str) -> bool:
    """Whether ``NO_PROXY`` exempts ``url`` (``requests.utils.should_bypass_proxies``)."""
    parts = urlsplit(url)
    hostname = parts.hostname
    if hostname is None:
        return True
    no_proxy = os.environ.get("no_proxy") or os.environ.get("NO_PROXY")
    if no_proxy:
        entries = [e for e in no_proxy.replace(" ", "").split(",") if e]
        if _is_ipv4(hostname):
            for entry in entries:
                if _is_cidr(entry):
                    if _in_network(hostname, entry):
                        return True
                elif hostname == entry:
                    return True
        else:
            with_port = f"{hostname}:{parts.port}" if parts.port else hostname
            if any(hostname.endswith(e) or with_port.endswith(e) for e in entries):
                return True
    try:
        return bool(urllib.request.proxy_bypass(hostname))
    except (TypeError, socket.gaierror):
        return False


def environ_proxy(url: str) -> str | None:
    """The proxy URL the environment gives for ``url``, or ``None`` to connect directly.

    ``scheme://host`` keys first, then the scheme, then ``all`` (``ALL_PROXY``), as ``requests``
    selects them.
    """
    if _bypasses(url):
        return None
    proxies = urllib.request.getproxies()
    parts = urlsplit(url)
    if parts.hostname is None:
        return proxies.get(parts.scheme, proxies.get("all"))
    for key in (f"{parts.scheme}://{parts.hostname}", parts.scheme, f"all://{parts.hostname}"):
        if key in proxies:
            return proxies[key]
    return proxies.get("all")


def redact_proxy(proxy: str) -> str:
    """A proxy URL without its password, for display."""
    parts = parse_url(proxy)
    if not parts.auth:
        return proxy
    user = parts.auth.partition(":")[0]
    return parts._replace(auth=f"{user}:***" if ":" in parts.auth else user).url


def tls_context() -> ssl.SSLContext:
    """Certificates verified (and host names matched) against certifi's CA bundle."""
    context = create_urllib3_context(cert_reqs=ssl.CERT_REQUIRED)
    context.load_verify_locations(cafile=certifi.where())
    return context


def connection_pool(
    url: str,
    *,
    size: int,
    timeout: urllib3.Timeout,
    proxy: str | None = None,
) -> urllib3.HTTPConnectionPool | urllib3.ProxyManager:
    """The pool the client sends to ``url`` through: ``size`` kept-open connections (more are
    opened when all are busy, used once and dropped), no retries, the CA bundle of
    :func:`tls_context`; through ``proxy`` (a ``ProxyManager``) if given.

    Raises:
        ConfigError: when ``proxy`` is a SOCKS proxy and PySocks is not installed, or is not a
            URL.
    """
    pool_kw: dict[str, Any] = {"maxsize": size, "block": False, "retries": NO_RETRIES}
    pool_kw["timeout"] = timeout
    if parse_url(url).scheme == "https":
        pool_kw["ssl_context"] = tls_context()
    if proxy is None:
        return urllib3.connection_from_url(url, **pool_kw)
    if "://" not in proxy:
        proxy = f"http://{proxy}"
    parts = parse_url(proxy)
    user, _, password = (parts.auth or "").partition(":")
    if (parts.scheme or "").startswith("socks"):
        if importlib.util.find_spec("socks") is None:
            raise ConfigError(
                f"the proxy for {url} from the environment is SOCKS ({parts.scheme}): "
                "that needs PySocks (pip install PySocks)"
            )
        from urllib3.contrib.socks import SOCKSProxyManager

        return SOCKSProxyManager(  # type: ignore[return-value]
            parts._replace(auth=None).url,
            username=unquote(user) if parts.auth else None,
            password=unquote(password) if parts.auth else None,
            num_pools=2,
            **pool_kw,
        )
    headers = make_headers(proxy_basic_auth=f"{unquote(user)}:{unquote(password)}")
    try:
        return urllib3.ProxyManager(
            parts._replace(auth=None).url,
            num_pools=2,
            proxy_headers=headers if parts.auth else None,
            **pool_kw,
        )
    except ValueError as exc:  # ProxySchemeUnknown and the like
        raise ConfigError(
            f"the proxy for {url} from the environment is not usable: {type(exc).__name__}"
        ) from None
