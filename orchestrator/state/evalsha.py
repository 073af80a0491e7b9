"""A Lua script on a hot path, run with one ``EVALSHA`` straight through the client.

redis-py's :class:`~redis.commands.core.Script` does the same, with more work per call (about
10 us of CPU here: argument lists built twice, its pipeline check, a deprecation wrapper). The
scripts every start runs (the session's create, the lane's take, the start's begin and finish)
go through this instead; like ``Script``, it loads the script again when Redis answers
``NOSCRIPT`` (a restart or a ``SCRIPT FLUSH``). Scripts run inside pipelines stay ``Script``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

from redis import Redis
from redis.client import NEVER_DECODE
from redis.exceptions import NoScriptError

__all__ = ["HotScript"]


class HotScript:
    """``script`` on ``client``, called as ``Script`` is: ``hot(keys=[...], args=[...])``.

    Args:
        client: the client that runs it.
        script: the Lua source.
    """

    def __init__(self, client: Redis, script: str) -> None:
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
            return self._client.execute_command(*command, **options)  # type: ignore[no-untyped-call]
        except NoScriptError:
            self._client.script_load(self.script)
            return self._client.execute_command(*command, **options)  # type: ignore[no-untyped-call]
