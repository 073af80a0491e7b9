"""A Celery message built here and pushed by the session store's own script (an outbox).

A start is a new session *and* a queued ``krtc.start``. Sent separately, that is two Redis round
trips, and a broker error in between leaves a stored session with nothing queued (the reconciler
re-queues it later). Pushed by the CREATE script instead, it is one round trip, and the message
exists if and only if the session was created.

The message is Celery's own (task protocol 2, built by ``app.amqp.as_task_v2``) in the envelope
kombu's Redis transport keeps in a queue's list: the body base64-encoded JSON, the routing in
``properties.delivery_info``. The worker cannot tell it from one kombu sent (a test proves it with
a real worker).
"""

from __future__ import annotations

import base64
import json
import uuid
from dataclasses import dataclass
from typing import Any

from celery import Celery
from kombu.serialization import dumps

from orchestrator.tasking.queues import TASK_QUEUES

__all__ = ["QueuedMessage", "celery_message"]


@dataclass(frozen=True)
class QueuedMessage:
    """A task message ready to be pushed (``LPUSH key payload``), and its task id."""

    key: str
    payload: str
    task_id: str


def celery_message(app: Celery, task: str, args: list[Any]) -> QueuedMessage:
    """The message kombu would push for ``app.send_task(task, args)`` to the task's queue."""
    queue = TASK_QUEUES[task]
    task_id = str(uuid.uuid4())
    message = app.amqp.as_task_v2(task_id, task, args=args, kwargs={}, ignore_result=True)
    content_type, content_encoding, body = dumps(message.body, serializer="json")
    raw = body if isinstance(body, bytes) else body.encode(content_encoding)
    envelope = {
        "body": base64.b64encode(raw).decode("ascii"),
        "content-encoding": content_encoding,
        "content-type": content_type,
        "headers": message.headers,
        "properties": {
            **message.properties,
            "delivery_mode": 2,
            "delivery_info": {"exchange": "", "routing_key": queue},
            "priority": 0,
            "body_encoding": "base64",
            "delivery_tag": str(uuid.uuid4()),
        },
    }
    prefix = app.conf.broker_transport_options.get("global_keyprefix", "")
    return QueuedMessage(f"{prefix}{queue}", json.dumps(envelope), task_id)
