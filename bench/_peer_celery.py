"""The bare Celery peer of ``bench/peers.py``: a task that makes the signed start POST, no more.

A plain app on ``PEER_REDIS_URL`` (keys under ``PEER_PREFIX``), no result backend, Celery's
defaults otherwise. Run by the bench as ``celery -A bench._peer_celery worker --pool=threads``.
"""

from __future__ import annotations

import os
from typing import Any

from celery import Celery

from bench._peer_client import signed_start

__all__ = ["app", "start"]

app = Celery("bench-peer", broker=os.environ.get("PEER_REDIS_URL", "redis://127.0.0.1:6379/0"))
app.conf.update(
    broker_transport_options={"global_keyprefix": f"{os.environ.get('PEER_PREFIX', 'peer')}:"},
    task_ignore_result=True,
    task_default_queue="peer-start",
    worker_hijack_root_logger=False,
)
_call = None


@app.task(name="peer.start")
def start(body: dict[str, Any]) -> str:
    """Make the signed start call of ``body``."""
    global _call
    if _call is None:
        _call = signed_start()
    return _call(body)
