"""The event outbox: lifecycle events not yet accepted by the receiver, kept in Redis.

Events are queued by the scripts that make the changes they report
(:mod:`orchestrator.state.events`); this module takes them out again: :meth:`EventOutbox.lease`
takes the head of the subject due longest ago, then the lane acknowledges it, retries it later
or gives it up (a dead letter, kept with its error). It also lists events and replays one. It
mirrors the alert outbox (:mod:`orchestrator.alerts.outbox`) with one difference: entries wait
per subject, in order, and only a subject's head is in flight.
"""

from __future__ import annotations

import builtins
from dataclasses import dataclass
from typing import Any, cast

from redis import Redis

from orchestrator.events.model import Delivery, Event
from orchestrator.events.scripts import ACK, GIVE_UP, PEEK, REPLAY, RETRY, TAKE
from orchestrator.state.backend import redis_errors
from orchestrator.state.codec import text
from orchestrator.state.keys import Keys

__all__ = ["DEFAULT_LEASE_S", "EventLease", "EventOutbox"]

#: Seconds a lane holds a subject's head: above one attempt (3.05 s connect + 5 s read).
DEFAULT_LEASE_S = 30.0


@dataclass(frozen=True)
class EventLease:
    """The head of a subject, taken until ``token`` (Redis ms).

    Attributes:
        event: the event to deliver.
        token: the lease's token (the subject's score while leased).
        attempts: attempts made before this one.
        queued_ms: when it was queued (or replayed), Redis ms: retries are counted from here.
    """

    event: Event
    token: str
    attempts: int
    queued_ms: int


class EventOutbox:
    """The events and their deliveries, under the session store's key prefix.

    Args:
        redis: the client (with or without ``decode_responses``).
        keys: the key names (share the session store's).
    """

    def __init__(self, redis: Redis, *, keys: Keys) -> None:
        self._redis = redis
        self.keys = keys
        self._peek = redis.register_script(PEEK)
        self._take = redis.register_script(TAKE)
        self._ack = redis.register_script(ACK)
        self._retry = redis.register_script(RETRY)
        self._give_up = redis.register_script(GIVE_UP)
        self._replay = redis.register_script(REPLAY)

    # -- delivering ----------------------------------------------------------------------------

    def lease(self, lease_s: float) -> EventLease | float | None:
        """Take the head of the subject due longest ago for ``lease_s`` seconds.

        Returns:
            The lease; or, when nothing is due, seconds until something is (``None``: empty).

        Raises:
            StateUnavailableError: Redis is unreachable.
        """
        outbox = self.keys.events_outbox()
        for _ in range(10):
            with redis_errors(self._redis):
                subject, score = (text(x) for x in self._peek(keys=[outbox]))
            if not subject:
                return float(score) / 1000 if score else None
            with redis_errors(self._redis):
                head, token = (
                    text(x)
                    for x in self._take(
                        keys=[outbox, self.keys.event_queue(subject)],
                        args=[subject, score, max(int(lease_s * 1000), 1)],
                    )
                )
            if not head:
                continue  # taken by another lane, or an empty queue: look again
            event = self.get(head)
            if event is None:
                # Expired or deleted: nothing to send; drop it from the queue.
                self._settle_missing(subject, head, token)
                continue
            delivery = self._delivery(head)
            return EventLease(event, token, delivery.attempts, self._queued_ms(head, event))
        return 0.0

    def ack(self, lease: EventLease) -> bool:
        """The receiver accepted: the next event of the subject is due. False if not the head."""
        event = lease.event
        keys = [
            self.keys.events_outbox(),
            self.keys.event_queue(event.subject),
            self.keys.event_delivery(event.id),
        ]
        with redis_errors(self._redis):
            return bool(self._ack(keys=keys, args=[event.subject, event.id]))

    def retry(self, lease: EventLease, error: str, delay_s: float) -> bool:
        """The head is due again in ``delay_s`` seconds. False if the lease was lost."""
        event = lease.event
        keys = [self.keys.events_outbox(), self.keys.event_delivery(event.id)]
        args: builtins.list[str | int] = [
            event.subject,
            lease.token,
            max(int(delay_s * 1000), 0),
            error,
        ]
        with redis_errors(self._redis):
            return bool(self._retry(keys=keys, args=args))

    def give_up(self, lease: EventLease, error: str) -> bool:
        """Make the head a dead letter; the next event is due. False if the lease was lost."""
        event = lease.event
        with redis_errors(self._redis):
            return bool(
                self._give_up(
                    keys=self._settle_keys(event.subject, event.id),
                    args=[event.subject, event.id, lease.token, error],
                )
            )

    def _settle_keys(self, subject: str, event_id: str) -> builtins.list[str]:
        return [
            self.keys.events_outbox(),
            self.keys.event_queue(subject),
            self.keys.event_delivery(event_id),
            self.keys.events_dead(),
        ]

    def _settle_missing(self, subject: str, event_id: str, token: str) -> None:
        with redis_errors(self._redis):
            self._give_up(
                keys=self._settle_keys(subject, event_id),
                args=[subject, event_id, token, "the event record is gone (expired)"],
            )

    # -- reading and replaying -----------------------------------------------------------------

    def get(self, event_id: str) -> Event | None:
        """The event, if it is still kept."""
        with redis_errors(self._redis):
            raw = cast("str | bytes | None", self._redis.get(self.keys.event(event_id)))
        return None if raw is None else Event.from_json(text(raw))

    def delivery(self, event_id: str) -> Delivery:
        """Where the event's delivery stands."""
        return self._delivery(event_id)

    def list(
        self, *, session: str | None = None, limit: int = 100
    ) -> builtins.list[tuple[Event, Delivery]]:
        """Events, newest first, with their deliveries (one subject's with ``session``)."""
        if limit < 1:
            raise ValueError(f"limit must be positive, got {limit}")
        with redis_errors(self._redis):
            if session is not None:
                ids = cast(
                    "builtins.list[str | bytes]",
                    self._redis.lrange(self.keys.events_of(session), -limit, -1),
                )[::-1]
            else:
                ids = cast(
                    "builtins.list[str | bytes]",
                    self._redis.zrevrange(self.keys.events(), 0, limit - 1),
                )
            pipe = self._redis.pipeline(transaction=False)
            for raw_id in ids:
                pipe.get(self.keys.event(text(raw_id)))
                pipe.hgetall(self.keys.event_delivery(text(raw_id)))
            replies = pipe.execute()
        found = []
        for i in range(0, len(replies), 2):
            if replies[i] is None:
                continue  # expired
            found.append((Event.from_json(text(replies[i])), _delivery(replies[i + 1])))
        return found

    def replay(self, event_id: str) -> str:
        """Queue the event again, with the same id, after its subject's queued events.

        Returns:
            ``replayed``, ``queued`` (it still waits: nothing changed) or ``missing``.
        """
        event = self.get(event_id)
        if event is None:
            return "missing"
        keys = [*self._settle_keys(event.subject, event_id), self.keys.event(event_id)]
        with redis_errors(self._redis):
            return text(self._replay(keys=keys, args=[event.subject, event_id]))

    def pending(self) -> int:
        """Subjects with events waiting (queued, leased or due for a retry)."""
        with redis_errors(self._redis):
            return int(cast(int, self._redis.zcard(self.keys.events_outbox())))

    def dead(self) -> int:
        """Events given up so far (still kept)."""
        with redis_errors(self._redis):
            return int(cast(int, self._redis.zcard(self.keys.events_dead())))

    def _delivery(self, event_id: str) -> Delivery:
        with redis_errors(self._redis):
            raw = self._redis.hgetall(self.keys.event_delivery(event_id))
        return _delivery(raw)

    def _queued_ms(self, event_id: str, event: Event) -> int:
        with redis_errors(self._redis):
            raw = cast(
                "str | bytes | None",
                self._redis.hget(self.keys.event_delivery(event_id), "queued_ms"),
            )
        return int(text(raw)) if raw else event.at_ms


def _delivery(raw: Any) -> Delivery:
    fields = {text(k): text(v) for k, v in (raw or {}).items()}
    return Delivery(
        state=fields.get("state", "unknown"),
        attempts=int(fields.get("attempts", "0") or 0),
        error=fields.get("error") or None,
        updated_ms=int(fields.get("updated_ms", "0") or 0),
    )
