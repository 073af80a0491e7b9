"""The client's transport: the proxy chosen from the environment is the one ``requests`` chose."""

from __future__ import annotations

import importlib.util

import pytest
import requests.utils
import urllib3

from orchestrator.errors import ConfigError
from orchestrator.krtc.transport import (
    NO_RETRIES,
    connection_pool,
    environ_proxy,
    redact_proxy,
)

PROXY_VARIABLES = [
    "http_proxy",
    "https_proxy",
    "all_proxy",
    "no_proxy",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "ALL_PROXY",
    "NO_PROXY",
]

ENVIRONMENTS = [
    {},
    {"HTTPS_PROXY": "http://proxy.example:3128"},
    {"https_proxy": "http://lower.example:3128", "HTTPS_PROXY": "http://upper.example:3128"},
    {"HTTP_PROXY": "http://plain.example:8080"},
    {"ALL_PROXY": "http://all.example:1080"},
    {"HTTPS_PROXY": "http://p.example:3128", "ALL_PROXY": "http://all.example:1080"},
    {"HTTPS_PROXY": "http://p.example:3128", "NO_PROXY": "krtc.example"},
    {"HTTPS_PROXY": "http://p.example:3128", "NO_PROXY": ".example"},
    {"HTTPS_PROXY": "http://p.example:3128", "NO_PROXY": "other.example, api.krtc.example"},
    {"HTTPS_PROXY": "http://p.example:3128", "NO_PROXY": "example"},
    {"HTTPS_PROXY": "http://p.example:3128", "NO_PROXY": "*"},
    {"HTTPS_PROXY": "http://p.example:3128", "NO_PROXY": "krtc.example:8443"},
    {"HTTP_PROXY": "http://p.example:3128", "NO_PROXY": "10.0.0.0/8"},
    {"HTTP_PROXY": "http://p.example:3128", "NO_PROXY": "10.1.2.3"},
    {"HTTP_PROXY": "http://p.example:3128", "NO_PROXY": "127.0.0.1,localhost"},
    {"HTTP_PROXY": "http://p.example:3128", "no_proxy": "192.168.0.0/16"},
    {"HTTPS_PROXY": "p.example:3128"},
]

URLS = [
    "https://krtc.example/cloud",
    "https://api.krtc.example/cloud",
    "https://krtc.example:8443/cloud",
    "http://10.1.2.3:8080/cloud",
    "http://127.0.0.1:9000/cloud",
    "http://localhost:9000/cloud",
    "http://192.168.3.4/cloud",
]


def _requests_choice(url: str) -> str | None:
    proxy: str | None = requests.utils.select_proxy(url, requests.utils.get_environ_proxies(url))
    return proxy


@pytest.mark.parametrize("environment", ENVIRONMENTS, ids=lambda env: repr(env))
def test_environ_proxy_agrees_with_requests(
    monkeypatch: pytest.MonkeyPatch, environment: dict[str, str]
) -> None:
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    for url in URLS:
        assert environ_proxy(url) == _requests_choice(url), url


def test_pool_without_a_proxy_is_one_host_pool_without_retries() -> None:
    timeout = urllib3.Timeout(connect=1, read=2)
    pool = connection_pool("http://127.0.0.1:9/cloud", size=7, timeout=timeout)
    assert isinstance(pool, urllib3.HTTPConnectionPool)
    assert (pool.host, pool.port) == ("127.0.0.1", 9)
    assert pool.retries is NO_RETRIES
    assert NO_RETRIES.total is False
    assert pool.pool is not None and pool.pool.maxsize == 7
    assert pool.block is False


def test_https_pool_verifies_certificates() -> None:
    timeout = urllib3.Timeout(connect=1, read=2)
    pool = connection_pool("https://krtc.example/cloud", size=2, timeout=timeout)
    assert isinstance(pool, urllib3.HTTPSConnectionPool)
    context = pool.conn_kw["ssl_context"]
    assert context.verify_mode.name == "CERT_REQUIRED"
    assert context.get_ca_certs() or context.cert_store_stats()["x509_ca"] > 0


def test_proxy_credentials_become_a_header_and_are_masked_for_display() -> None:
    timeout = urllib3.Timeout(connect=1, read=2)
    proxy = "http://us%40er:pa%3Ass@proxy.example:3128"
    manager = connection_pool("https://krtc.example/cloud", size=2, timeout=timeout, proxy=proxy)
    assert isinstance(manager, urllib3.ProxyManager)
    assert manager.proxy is not None and manager.proxy.auth is None
    expected = urllib3.util.make_headers(proxy_basic_auth="us@er:pa:ss")
    assert manager.proxy_headers == expected
    assert redact_proxy(proxy) == "http://us%40er:***@proxy.example:3128"
    assert redact_proxy("http://proxy.example:3128") == "http://proxy.example:3128"


def test_socks_proxy_without_pysocks_is_a_config_error() -> None:
    if importlib.util.find_spec("socks") is not None:
        pytest.skip("PySocks is installed")
    timeout = urllib3.Timeout(connect=1, read=2)
    with pytest.raises(ConfigError, match="PySocks"):
        connection_pool(
            "https://krtc.example/cloud", size=2, timeout=timeout, proxy="socks5://u:p@h:1080"
        )
