"""How the project's Redis clients are built: timeouts, health checks, and who retries what."""

from __future__ import annotations

import pytest
from redis.exceptions import ConnectionError, TimeoutError

from orchestrator.errors import ConfigError
from orchestrator.settings import Settings
from orchestrator.state.connection import ReadRetry, RedisOptions, connect, redis_client
from orchestrator.tasking.config import celery_config, check_timing


def test_every_client_has_timeouts_keepalive_a_health_check_and_no_blind_retry() -> None:
    settings = Settings(
        redis_url="redis://127.0.0.1:6379/3",
        redis_connect_timeout_s=1.5,
        redis_socket_timeout_s=2.5,
        redis_health_check_interval_s=7,
    )

    kwargs = redis_client(settings).connection_pool.connection_kwargs

    assert (kwargs["socket_connect_timeout"], kwargs["socket_timeout"]) == (1.5, 2.5)
    assert kwargs["health_check_interval"] == 7
    assert kwargs["socket_keepalive"] is True
    assert kwargs["decode_responses"] is True
    # redis-py 6 would send any command (a Lua script too) 3 more times: never here.
    assert kwargs["retry"].get_retries() == 0


def test_the_defaults_bound_every_wait() -> None:
    options = RedisOptions.from_settings(Settings())

    assert options == RedisOptions()
    assert (options.connect_timeout_s, options.socket_timeout_s) == (2.0, 2.0)
    assert options.longest_wait_s == 5.0


def test_a_unix_socket_gets_the_timeouts_without_tcp_options() -> None:
    kwargs = connect("unix:///tmp/krtc-none.sock").connection_pool.connection_kwargs

    assert kwargs["socket_timeout"] == 2.0 and "socket_keepalive" not in kwargs


def test_overrides_win_over_the_options() -> None:
    options = RedisOptions().with_timeouts(0.5)

    kwargs = connect("redis://h:1/0", options, decode_responses=False).connection_pool
    assert kwargs.connection_kwargs["socket_timeout"] == 0.5
    assert kwargs.connection_kwargs["decode_responses"] is False


def test_a_read_is_retried_after_connection_errors_only() -> None:
    retry = ReadRetry(2)
    calls: list[str] = []

    def flaky() -> str:
        calls.append("call")
        if len(calls) < 3:
            raise ConnectionError("Connection closed by server.")
        return "value"

    assert retry(flaky) == "value" and len(calls) == 3

    def slow() -> str:
        calls.append("slow")
        raise TimeoutError("Timeout reading from socket")

    calls.clear()
    with pytest.raises(TimeoutError):
        retry(slow)
    assert calls == ["slow"], "a timeout is not retried"

    def down() -> str:
        calls.append("down")
        raise ConnectionError("Connection refused")

    calls.clear()
    with pytest.raises(ConnectionError):
        retry(down)
    assert len(calls) == 3, "two retries, then the error"


def test_the_broker_and_result_backend_get_the_same_limits() -> None:
    config = celery_config(Settings(redis_socket_timeout_s=3.0, redis_health_check_interval_s=9))

    transport = config["broker_transport_options"]
    assert (transport["socket_timeout"], transport["socket_connect_timeout"]) == (3.0, 2.0)
    assert transport["health_check_interval"] == 9 and transport["socket_keepalive"] is True
    assert config["redis_socket_timeout"] == 3.0
    assert config["redis_backend_health_check_interval"] == 9
    assert config["redis_socket_timeout"] < config["task_soft_time_limit"]


def test_no_health_check_leaves_kombus_own_interval() -> None:
    transport = celery_config(Settings(redis_health_check_interval_s=0))["broker_transport_options"]

    assert "health_check_interval" not in transport


def test_a_socket_timeout_within_the_brokers_poll_is_refused() -> None:
    with pytest.raises(ConfigError, match="KRTC_REDIS_SOCKET_TIMEOUT_S"):
        check_timing(Settings(redis_socket_timeout_s=1.0))
