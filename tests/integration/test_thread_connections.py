"""ThreadConnections: a thread's commands go through one connection of the pool, kept between
calls, replaced when the server closed it, given back when the thread ends, never shared with a
forked child (real Redis)."""

from __future__ import annotations

import gc
import os
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from redis import Redis
from redis.client import NEVER_DECODE
from redis.exceptions import NoScriptError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from orchestrator.state.connection import connect
from orchestrator.state.pinned import ThreadConnections

pytestmark = pytest.mark.integration


@pytest.fixture
def client(redis_url: str) -> Iterator[Redis]:
    """A client with the project's options (no command sent twice) and a pool of its own."""
    own = connect(redis_url)
    yield own
    own.close()


def _in_thread(call: Callable[[], Any]) -> Any:
    """``call()``'s result, called on a new thread that has ended when this returns."""
    out: list[Any] = []
    thread = threading.Thread(target=lambda: out.append(call()))
    thread.start()
    thread.join(timeout=10)
    assert out, "the thread's call failed"
    return out[0]


def _client_id(connections: ThreadConnections) -> int:
    return int(connections.execute_command("CLIENT", "ID"))


def test_a_thread_keeps_its_connection_and_another_thread_gets_its_own(client: Redis) -> None:
    connections = ThreadConnections(client)
    mine = _client_id(connections)
    assert _client_id(connections) == mine
    assert _client_id(connections) == mine

    other = _in_thread(lambda: [_client_id(connections), _client_id(connections)])
    assert other[0] == other[1]
    assert other[0] != mine
    # The shared client's commands do not go through the thread's connection.
    assert int(client.client_id()) != mine


def test_a_connection_the_server_closed_is_replaced_before_the_command_is_sent(
    client: Redis, redis_client: Redis, key_prefix: str
) -> None:
    connections = ThreadConnections(client)
    first = _client_id(connections)
    assert redis_client.client_kill_filter(_id=first) == 1

    # The client retries nothing (connect's options): the command works only because the
    # closed connection is found before it is sent, and it runs once.
    counter = f"{key_prefix}:counter"
    assert connections.execute_command("INCR", counter) == 1
    assert redis_client.get(counter) == "1"
    assert _client_id(connections) != first


def test_an_ended_thread_gives_its_connection_back_to_the_pool(client: Redis) -> None:
    connections = ThreadConnections(client)
    first = _in_thread(lambda: _client_id(connections))
    gc.collect()
    # The next thread is handed the same connection by the pool: it was given back, open.
    assert _in_thread(lambda: _client_id(connections)) == first


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_child_makes_its_own_connection_and_leaves_the_parents_alone(
    client: Redis,
) -> None:
    connections = ThreadConnections(client)
    parent = _client_id(connections)
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report its connection's id and leave at once
        code = 1
        try:
            os.write(write_end, str(_client_id(connections)).encode())
            code = 0
        finally:
            os._exit(code)
    os.close(write_end)
    with os.fdopen(read_end) as reader:
        child = int(reader.read() or -1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert child not in (-1, parent)
    # The parent's connection was not touched by the child (nor closed when it exited).
    assert _client_id(connections) == parent


def test_a_command_that_times_out_closes_its_connection_and_its_late_answer_is_never_read(
    redis_url: str, redis_client: Redis
) -> None:
    # A script that keeps Redis busy for longer than the socket timeout: its answer comes late,
    # on a connection that was closed; the next command must get its own answer.
    own = connect(redis_url, socket_timeout=0.1)
    try:
        connections = ThreadConnections(own)
        first = _client_id(connections)
        busy = "local i = 0 while i < 50000000 do i = i + 1 end return 'late'"  # ~1 s
        with pytest.raises(RedisTimeoutError):
            connections.execute_command("EVAL", busy, 0)
        redis_client.ping()  # waits (longer timeout) until the script has answered
        assert connections.execute_command("ECHO", "mine") == "mine"
        assert _client_id(connections) != first
    finally:
        own.close()


def test_errors_and_undecoded_answers_come_back_as_from_the_client(client: Redis) -> None:
    connections = ThreadConnections(client)
    with pytest.raises(NoScriptError):
        connections.execute_command("EVALSHA", "0" * 40, 0)
    with pytest.raises(ResponseError, match="boom"):
        connections.execute_command("EVAL", "return redis.error_reply('boom')", 0)
    assert connections.execute_command("ECHO", "é") == "é"
    assert connections.execute_command("ECHO", "é", **{NEVER_DECODE: True}) == "é".encode()
