"""The dramatiq peer of ``bench/peers.py``: an actor that makes the signed start POST, no more.

A Redis broker on ``PEER_REDIS_URL`` (namespace ``PEER_PREFIX``), dramatiq's default middleware.
Run by the bench as ``dramatiq bench._peer_dramatiq --processes N --threads T``.
"""

from __future__ import annotations

import os
from typing import Any

import dramatiq
from dramatiq.brokers.redis import RedisBroker

from bench._peer_client import signed_start

__all__ = ["broker", "start"]

broker = RedisBroker(
    url=os.environ.get("PEER_REDIS_URL", "redis://127.0.0.1:6379/0"),
    namespace=f"{os.environ.get('PEER_PREFIX', 'peer')}-dramatiq",
)
dramatiq.set_broker(broker)
_call = None


@dramatiq.actor(actor_name="peer_start", queue_name="peer-start", max_retries=0)
def start(body: dict[str, Any]) -> None:
    """Make the signed start call of ``body``."""
    global _call
    if _call is None:
        _call = signed_start()
    _call(body)
