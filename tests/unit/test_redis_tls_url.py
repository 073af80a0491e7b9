"""``rediss://`` URLs: ``ssl_cert_reqs`` in Celery's spelling serves redis-py (the store) too."""

from __future__ import annotations

import ssl

import pytest

from orchestrator.state.connection import connect, redis_py_url

CA = "ssl_ca_certs=/etc/ssl/ca.pem"


@pytest.mark.parametrize(
    ("given", "level"),
    [("CERT_REQUIRED", "required"), ("cert_optional", "optional"), ("CERT_NONE", "none")],
)
def test_celerys_spelling_becomes_redis_pys(given: str, level: str) -> None:
    url = f"rediss://:pw@h:6380/0?ssl_cert_reqs={given}&{CA}"
    assert redis_py_url(url) == f"rediss://:pw@h:6380/0?ssl_cert_reqs={level}&{CA}"
    assert redis_py_url(f"rediss://h/0?{CA}&ssl_cert_reqs={given}") == (
        f"rediss://h/0?{CA}&ssl_cert_reqs={level}"
    )


@pytest.mark.parametrize(
    "url",
    [
        "rediss://h:6380/0?ssl_cert_reqs=required&" + CA,
        "redis://:CERT_REQUIRED@h/0",
        "rediss://h/0?x_ssl_cert_reqs=CERT_REQUIRED",
        "rediss://h/0?ssl_cert_reqs=CERT_REQUIREDX",
        "sentinel://h1:26379;sentinel://h2:26379/0",
    ],
)
def test_anything_else_is_left_as_it_is(url: str) -> None:
    assert redis_py_url(url) == url


def test_connect_builds_a_verifying_tls_connection_from_celerys_spelling() -> None:
    client = connect(f"rediss://h:6380/0?ssl_cert_reqs=CERT_REQUIRED&{CA}")
    try:
        connection = client.connection_pool.make_connection()
        assert connection.cert_reqs == ssl.CERT_REQUIRED
        assert connection.ca_certs == "/etc/ssl/ca.pem"
    finally:
        client.close()
