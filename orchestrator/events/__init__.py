"""Lifecycle webhooks (the Standard Webhooks convention).

::

    a state change's Lua script ── EMIT ──> {p}:event:{id}, the subject's queue, the outbox
                                                        (orchestrator.state.events)
    EventDispatcher (a lane per process)                                      (delivery.py)
      ├── EventOutbox.lease  the head of the subject due longest ago          (outbox.py)
      ├── EventWebhook.send  signed POST: webhook-id / -timestamp / -signature (signing.py)
      └── ack / retry (backoff, KRTC_EVENTS_RETRY_FOR_S) / give up (dead letter + alert)
"""

from orchestrator.events.delivery import EventDispatcher, EventWebhook
from orchestrator.events.model import Delivery, Event
from orchestrator.events.outbox import EventLease, EventOutbox
from orchestrator.events.signing import decode_secret, sign, signature_headers, verify

__all__ = [
    "Delivery",
    "Event",
    "EventDispatcher",
    "EventLease",
    "EventOutbox",
    "EventWebhook",
    "decode_secret",
    "sign",
    "signature_headers",
    "verify",
]
