"""KrtcClient over real HTTP: status and body mapping, transport failures, and secrets."""

from __future__ import annotations

import logging
import shutil
import socket
import ssl
import subprocess
import threading
from collections.abc import Iterator

import pytest
import urllib3
from pydantic import SecretStr

from orchestrator.krtc import errors as e
from orchestrator.krtc.client import KrtcClient
from orchestrator.krtc.enums import Action
from orchestrator.krtc.validation import parse_request
from orchestrator.settings import Settings
from tests.conftest import SENTINEL_SECRET, SENTINEL_STORAGE_SECRET, TEST_ACCESS_KEY
from tests.integration.scripted_server import Reply, ScriptedServer, free_port, scripted_server

QUERY = {"appId": "lee1234", "cname": "krtc2", "sid": "c4pl5e1kereqmo8pac40", "mode": "mix"}
START = {
    "appId": "lee1234",
    "cname": "krtc2",
    "uid": "xxx",
    "mode": "mix",
    "clientRequest": {
        "recordingConfig": {"maxIdleTime": 30},
        "recordingFileConfig": {"avFileType": ["hls"]},
        "storageConfig": {
            "vendor": 4,
            "region": 0,
            "bucket": "b",
            "accessKey": "storage-ak",
            "secretKey": SENTINEL_STORAGE_SECRET,
        },
    },
}


@pytest.fixture(scope="module")
def server() -> Iterator[ScriptedServer]:
    with scripted_server() as s:
        yield s


@pytest.fixture
def client(server: ScriptedServer) -> Iterator[KrtcClient]:
    settings = Settings(
        endpoint=server.url,
        access_key=TEST_ACCESS_KEY,
        secret_key=SecretStr(SENTINEL_SECRET),
        read_timeout_s=0.5,
    )
    with KrtcClient(settings) as c:
        yield c


@pytest.mark.parametrize(
    ("status", "body", "headers", "expected", "retryable"),
    [
        (200, '{"code": 400, "reason": "bad cname"}', {}, e.InvalidRequestError, False),
        (
            400,
            '{"code": 400, "reason": "illegal characters in cname"}',
            {},
            e.InvalidRequestError,
            False,
        ),
        (401, '{"code": 401, "reason": "no cloud recording permission"}', {}, e.AuthError, False),
        (403, '{"code": 403, "reason": "signature expired"}', {}, e.AuthError, False),
        (404, '{"code": 404, "reason": "task not found"}', {}, e.NotFoundError, False),
        (409, '{"code": 409, reason: "duplicate start"}', {}, e.ConflictError, False),
        (
            429,
            '{"code": 429, "reason": "slow down"}',
            {"Retry-After": "2"},
            e.RateLimitedError,
            True,
        ),
        (500, '{"code": 500, "reason": "internal error"}', {}, e.ServerError, True),
        (502, "<html>bad gateway</html>", {}, e.ServerError, True),
        (503, "", {}, e.ServerError, True),
        (504, "gateway timeout", {}, e.ServerError, True),
        (405, '{"code": 405, "reason": "method"}', {}, e.PermanentError, False),
        (200, "not json at all", {}, e.ServerError, True),
    ],
)
def test_response_maps_to_error(server, client, status, body, headers, expected, retryable) -> None:
    server.script(Reply(status=status, body=body, headers=headers))
    with pytest.raises(expected) as info:
        client.query(QUERY)
    error = info.value
    assert type(error) is expected
    assert error.retryable is retryable
    assert error.status == status
    assert SENTINEL_SECRET not in str(error) + repr(error) + repr(error.to_dict())


def test_malformed_error_body_keeps_code_and_reason(server, client) -> None:
    server.script(Reply(status=409, body='{"code": 409, reason: "duplicate start"}'))
    with pytest.raises(e.ConflictError) as info:
        client.start(START)
    assert info.value.reason == "duplicate start"
    assert info.value.to_dict() == {
        "kind": "conflict",
        "status": 409,
        "code": 409,
        "reason": "duplicate start",
    }


def test_conflict_keeps_a_sid_the_server_names(server, client) -> None:
    server.script(Reply(status=409, body='{"code": 409, "reason": "dup", "sid": "abc123"}'))
    with pytest.raises(e.ConflictError) as info:
        client.start(START)
    assert info.value.sid == "abc123"


def test_rate_limit_reads_retry_after(server, client) -> None:
    server.script(Reply(status=429, body="{}", headers={"Retry-After": "3"}))
    with pytest.raises(e.RateLimitedError) as info:
        client.query(QUERY)
    assert info.value.retry_after_s == 3.0


def test_success_parses_typed_response_and_keeps_unknown_fields(server, client) -> None:
    server.script(
        Reply(
            body='{"sid": "s1", "serverResponse": {"fileListMode": "string", '
            '"fileList": "s1_krtc2.m3u8", "status": 5, "sliceStartTime": 1700000000000, '
            '"newField": 1}, "extra": "kept"}'
        )
    )
    response = client.query(QUERY)
    assert response.status == 5
    assert [f.file_name for f in response.files] == ["s1_krtc2.m3u8"]
    assert response.to_json_dict()["extra"] == "kept"
    assert response.to_json_dict()["serverResponse"]["newField"] == 1


def test_start_without_sid_is_an_error(server, client) -> None:
    server.script(Reply(body="{}"))
    with pytest.raises(e.ServerError, match="without a sid"):
        client.start(START)


def test_read_timeout_may_have_applied(server, client) -> None:
    server.script(Reply(delay_s=1.0))
    with pytest.raises(e.TransportError) as info:
        client.start(START)
    assert info.value.maybe_applied is True
    assert info.value.retryable


def test_dropped_connection_may_have_applied(server, client) -> None:
    server.script(Reply(drop=True))
    with pytest.raises(e.TransportError) as info:
        client.stop(QUERY)
    assert info.value.maybe_applied is True


def test_refused_connection_was_not_applied() -> None:
    settings = Settings(
        endpoint=f"http://127.0.0.1:{free_port()}/cloud",
        access_key=TEST_ACCESS_KEY,
        secret_key=SecretStr(SENTINEL_SECRET),
    )
    with KrtcClient(settings) as client, pytest.raises(e.TransportError) as info:
        client.query(QUERY)
    assert info.value.maybe_applied is False


def test_wire_request_headers_and_body(server, client) -> None:
    server.script(Reply())
    client.start(START)
    (got,) = server.received
    assert got.headers["x-action"] == "CloudRecordingStart"
    assert got.headers["x-version"] == "v1"
    assert got.headers["content-type"] == "application/json;charset=UTF-8"
    assert got.headers["authorization"].startswith(
        f"AWS4-HMAC-SHA256 Credential={TEST_ACCESS_KEY}/"
    )
    # The storage secret must reach the API (it is the recording's destination), the API secret
    # never: only a signature derived from it travels.
    assert SENTINEL_STORAGE_SECRET.encode() in got.body
    assert SENTINEL_SECRET.encode() not in got.body
    assert all(SENTINEL_SECRET not in v for v in got.headers.values())


def test_no_secret_in_logs_or_errors(server, client, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    server.script(Reply(status=500, body='{"code": 500, "reason": "internal error"}'))
    with pytest.raises(e.ServerError) as info:
        client.start(START)
    text = caplog.text + str(info.value) + repr(info.value) + repr(client.auth)
    for secret in (SENTINEL_SECRET, SENTINEL_STORAGE_SECRET):
        assert secret not in text


def test_proxy_settings_are_read_once_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, settings: Settings
) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.example:3128")
    monkeypatch.setenv("NO_PROXY", "")
    proxied = KrtcClient(settings.model_copy(update={"endpoint": "https://krtc.example/cloud"}))
    assert proxied.proxy == "http://proxy.example:3128"
    assert isinstance(proxied.http, urllib3.ProxyManager)
    assert (proxied.http.proxy.host, proxied.http.proxy.port) == ("proxy.example", 3128)
    monkeypatch.setenv("NO_PROXY", "krtc.example")
    direct = KrtcClient(settings.model_copy(update={"endpoint": "https://krtc.example/cloud"}))
    assert direct.proxy is None
    assert not isinstance(direct.http, urllib3.PoolManager)


def test_calls_go_through_the_proxy_read_when_the_client_was_built(
    monkeypatch: pytest.MonkeyPatch, server: ScriptedServer
) -> None:
    # The scripted server plays an HTTP proxy: it gets the absolute URL on the request line.
    proxy = server.url.removesuffix("/cloud")
    monkeypatch.setenv("HTTP_PROXY", f"http://user:{SENTINEL_SECRET}@{proxy.split('://')[1]}")
    monkeypatch.setenv("NO_PROXY", "")
    settings = Settings(
        endpoint="http://krtc.example/cloud",
        access_key=TEST_ACCESS_KEY,
        secret_key=SecretStr(SENTINEL_SECRET),
        read_timeout_s=2,
    )
    with KrtcClient(settings) as client:
        assert client.proxy is not None and SENTINEL_SECRET not in client.proxy
        monkeypatch.delenv("HTTP_PROXY")  # read once: later changes do not matter
        server.script(Reply())
        assert client.query(QUERY).sid
    (got,) = server.received
    assert got.path == "http://krtc.example/cloud"
    assert got.headers["host"] == "krtc.example"
    assert got.headers["proxy-authorization"].startswith("Basic ")
    assert "Credential=" in got.headers["authorization"]


def test_a_failed_call_is_sent_once(server, client) -> None:
    # No retry below ours: not after a lost connection, not on a 503 or 429 with Retry-After.
    for reply in (
        Reply(drop=True),
        Reply(status=503, body="", headers={"Retry-After": "0"}),
        Reply(status=429, body="{}", headers={"Retry-After": "0"}),
    ):
        server.script(reply)
        with pytest.raises(e.KrtcApiError):
            client.start(START)
        assert len(server.received) == 1


def test_a_redirect_is_not_followed(server, client) -> None:
    # A signed call is never re-sent elsewhere: a redirect means a wrong endpoint.
    server.script(Reply(status=307, body="", headers={"Location": "http://127.0.0.1:1/cloud"}))
    with pytest.raises(e.PermanentError) as info:
        client.start(START)
    assert info.value.status == 307
    assert len(server.received) == 1


def test_prepared_call_repr_shows_no_secret(client) -> None:
    prepared = client.prepare(parse_request(Action.START, START))
    assert SENTINEL_STORAGE_SECRET.encode() in prepared.body
    assert "CloudRecordingStart" in repr(prepared)
    for secret in (SENTINEL_SECRET, SENTINEL_STORAGE_SECRET, prepared.headers["Authorization"]):
        assert secret not in repr(prepared)


@pytest.fixture(scope="module")
def self_signed_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """An HTTPS server on loopback whose certificate no CA signed."""
    if shutil.which("openssl") is None:
        pytest.skip("needs the openssl command to make a certificate")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"]
        + ["-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"]
        + ["-keyout", str(key), "-out", str(cert)],
        check=True,
        capture_output=True,
    )
    with scripted_server() as plain:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)
        listener = socket.create_server(("127.0.0.1", 0))
        port = listener.getsockname()[1]
        stop = threading.Event()

        def serve() -> None:
            listener.settimeout(0.1)
            while not stop.is_set():
                try:
                    conn, _ = listener.accept()
                except TimeoutError:
                    continue
                try:
                    context.wrap_socket(conn, server_side=True).close()
                except (OSError, ssl.SSLError):
                    conn.close()

        thread = threading.Thread(target=serve, daemon=True)
        thread.start()
        try:
            yield f"https://127.0.0.1:{port}/cloud"
        finally:
            stop.set()
            thread.join(5)
            listener.close()
            assert plain.received == []


def test_tls_certificates_are_verified(self_signed_server: str) -> None:
    settings = Settings(
        endpoint=self_signed_server,
        access_key=TEST_ACCESS_KEY,
        secret_key=SecretStr(SENTINEL_SECRET),
    )
    with KrtcClient(settings) as client, pytest.raises(e.TransportError) as info:
        client.query(QUERY)
    assert "SSLError" in info.value.reason
    assert info.value.maybe_applied is False  # the handshake failed: nothing was sent


def test_a_given_pool_manager_is_used_without_its_retries_and_left_open(server) -> None:
    settings = Settings(
        endpoint=server.url,
        access_key=TEST_ACCESS_KEY,
        secret_key=SecretStr(SENTINEL_SECRET),
        read_timeout_s=2,
    )
    manager = urllib3.PoolManager(retries=urllib3.Retry(total=5))
    with KrtcClient(settings, http=manager) as client:
        assert client.http is manager
        server.script(Reply(drop=True))
        with pytest.raises(e.TransportError):
            client.stop(QUERY)
        assert len(server.received) == 1  # the manager's own retries are not used
        server.script(Reply())
        assert client.query(QUERY).sid
    assert manager.pools  # close() leaves a pool it was given alone
    manager.clear()
