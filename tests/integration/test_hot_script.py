"""HotScript: one EVALSHA per call, the script loaded when Redis does not know it (real Redis)."""

from __future__ import annotations

import uuid

import pytest
from redis import Redis

from orchestrator.state.evalsha import HotScript


def test_an_unknown_script_is_loaded_then_run_with_keys_and_args(
    redis_client: Redis, key_prefix: str
) -> None:
    # A script Redis has never seen (its text is new), so the first EVALSHA meets NOSCRIPT.
    text = f"-- {uuid.uuid4().hex}\nreturn {{KEYS[1], ARGV[1], #KEYS, #ARGV}}"
    hot = HotScript(redis_client, text)
    assert redis_client.script_exists(hot.sha) == [False]

    assert hot(keys=[f"{key_prefix}:k"], args=["v", 2]) == [f"{key_prefix}:k", "v", 1, 2]
    assert redis_client.script_exists(hot.sha) == [True]
    assert hot(keys=[f"{key_prefix}:a", f"{key_prefix}:b"], args=["w"]) == [
        f"{key_prefix}:a",
        "w",
        2,
        1,
    ]


def test_a_raw_call_returns_bytes_where_decoding_would_fail(redis_client: Redis) -> None:
    hot = HotScript(redis_client, "return {ARGV[1], 'caf\\195\\169', '\\255'}")
    assert hot(args=["x"], raw=True) == [b"x", "café".encode(), b"\xff"]
    with pytest.raises(UnicodeDecodeError):
        hot(args=["x"])
