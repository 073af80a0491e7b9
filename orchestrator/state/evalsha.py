"""A Lua script on a hot path, run with one ``EVALSHA`` straight through the client.

redis-py's :class:`~redis.commands.core.Script` does the same, with more work per call (about
10 us of CPU here: argument lists built twice, its pipeline check, a deprecation wrapper). The
scripts every start runs (the session's create, the lane's take, the start's begin and finish)
go through this instead; like ``Script``, it loads the script again when Redis answers
``NOSCRIPT`` (a restart or a ``SCRIPT FLUSH``). :func:`run_together` sends several calls in one
round trip (a pipeline), with the same reload. Other scripts run inside pipelines stay
``Script``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any, NamedTuple, Protocol

from redis import Redis
from redis.client import NEVER_DECODE
from redis.exceptions import NoScriptError

__all__ = ["HotCall", "HotScript", "ScriptClient", "run_together"]


class ScriptClient(Protocol):
    """What a :class:`HotScript` calls: a redis-py client, or
    :class:`~orchestrator.state.pinned.ThreadConnections`."""

    def execute_command(self, *args: Any, **options: Any) -> Any: ...

    def script_load(self, script: str) -> Any: ...


class HotScript:
    """``script`` on ``client``, called as ``Script`` is: ``hot(keys=[...], args=[...])``.

    Args:
        client: the client that runs it.
        script: the Lua source.
    """

    def __init__(self, client: ScriptClient, script: str) -> None:
        self._client = client
        self.script = script
        self.sha = hashlib.sha1(script.encode()).hexdigest()

    def __call__(
        self, keys: Sequence[Any] = (), args: Sequence[Any] = (), *, raw: bool = False
    ) -> Any:
        """Run the script; ``raw``: return the reply undecoded (bytes), whatever the client's
        ``decode_responses``."""
        options = {NEVER_DECODE: True} if raw else {}
        command = ("EVALSHA", self.sha, len(keys), *keys, *args)
        try:
            return self._client.execute_command(*command, **options)
        except NoScriptError:
            self._client.script_load(self.script)
            return self._client.execute_command(*command, **options)


class HotCall(NamedTuple):
    """One call of a :class:`HotScript` for :func:`run_together` (``raw`` as in its call)."""

    script: HotScript
    keys: Sequence[Any]
    args: Sequence[Any]
    raw: bool = False


def run_together(client: Redis, calls: Sequence[HotCall]) -> list[Any]:
    """Run ``calls`` in one round trip (a pipeline, not a transaction), in order.

    Returns each call's reply, or the error Redis answered it with (a
    :class:`~redis.exceptions.ResponseError`): one call's error does not fail the others. A call
    answered ``NOSCRIPT`` (it did not run) is sent again after its script is loaded.

    Raises:
        redis.exceptions.ConnectionError, TimeoutError: as a pipeline does (then any of the calls
            may have run, or none).
    """
    replies = _pipeline(client, calls)
    again = [i for i, reply in enumerate(replies) if isinstance(reply, NoScriptError)]
    if again:
        for script in {calls[i].script.sha: calls[i].script for i in again}.values():
            client.script_load(script.script)
        for i, reply in zip(again, _pipeline(client, [calls[i] for i in again]), strict=True):
            replies[i] = reply
    return replies


def _pipeline(client: Redis, calls: Sequence[HotCall]) -> list[Any]:
    pipe = client.pipeline(transaction=False)
    for call in calls:
        options = {NEVER_DECODE: True} if call.raw else {}
        pipe.execute_command(  # type: ignore[no-untyped-call]
            "EVALSHA", call.script.sha, len(call.keys), *call.keys, *call.args, **options
        )
    return pipe.execute(raise_on_error=False)
