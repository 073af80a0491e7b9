"""The alert outbox: deliveries not yet accepted by their sink, kept in Redis until they are.

An alert counts as raised once it is stored *and* queued here for every background sink, in the
same Lua script (:data:`orchestrator.alerts.scripts.RAISE`): a process that dies right after
raising loses no page. Each sink has a sorted set of alert ids scored by when the entry may be
taken (milliseconds of Redis's clock) and a hash of the entries (the alert, attempts so far, the
last error; a sink's name, never its URL or a secret). A delivery lane *leases* the entry due
longest ago (its score becomes the end of the lease), and then acknowledges it (gone), retries
it (due again after a backoff) or gives it up (moved to the undelivered list, shown by
``krtc-rec alerts --undelivered``). A lease that ends without any of these (its process died) makes
the entry due again, for any process running an alerter. The lease's score is its token: a lane
whose lease expired and was taken by another can no longer reschedule or give up the entry.

Delivery is at least once: a process killed after the receiver accepted but before the
acknowledgement lands leaves an entry that is sent again. Receivers drop repeats by alert id
(``X-KRTC-Alert-Id``; chat robots show the id in the message).
"""

from __future__ import annotations

import builtins
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

from redis import Redis

from orchestrator.alerts.model import Alert
from orchestrator.alerts.scripts import ACK, GIVE_UP, LEASE, RETRY
from orchestrator.state.backend import redis_errors
from orchestrator.state.codec import text
from orchestrator.state.keys import Keys

__all__ = [
    "DEFAULT_LEASE_S",
    "DEFAULT_OUTBOX_LIMIT",
    "DEFAULT_UNDELIVERED_LIMIT",
    "AlertOutbox",
    "Lease",
    "Undelivered",
]

#: Seconds a lane holds an entry: above one attempt (3.05 s connect + 5 s read) with room.
DEFAULT_LEASE_S = 30.0
#: Entries per sink; beyond it the entry due longest ago is dropped (recorded as undelivered).
DEFAULT_OUTBOX_LIMIT = 1000
#: Given-up deliveries kept for ``krtc-rec alerts --undelivered``.
DEFAULT_UNDELIVERED_LIMIT = 1000


@dataclass(frozen=True)
class Lease:
    """An entry taken by a lane until ``token`` (Redis ms): deliver it, then settle it.

    Attributes:
        sink: the sink's name.
        alert: the alert to deliver.
        token: the entry's score while leased (the end of the lease, Redis milliseconds).
        attempts: attempts made before this one.
        queued_ms: when the alert was queued (Redis milliseconds).
    """

    sink: str
    alert: Alert
    token: str
    attempts: int
    queued_ms: int


@dataclass(frozen=True)
class Undelivered:
    """A delivery given up: after its attempts, a permanent refusal, or dropped from a full outbox.

    Attributes:
        sink: the sink's name.
        alert: the alert (``None`` if its entry was unreadable).
        attempts: attempts made.
        error: the last error (scrubbed of the sink's secrets).
        at: when it was given up, unix seconds (Redis's clock).
    """

    sink: str
    alert: Alert | None
    attempts: int
    error: str
    at: float


class AlertOutbox:
    """The outbox of every sink, under the session store's key prefix.

    Args:
        redis: the client (with or without ``decode_responses``).
        keys: the key names (share the session store's).
        undelivered_limit: given-up deliveries kept.
    """

    def __init__(
        self, redis: Redis, *, keys: Keys, undelivered_limit: int = DEFAULT_UNDELIVERED_LIMIT
    ) -> None:
        if undelivered_limit < 1:
            raise ValueError("undelivered_limit must be at least 1")
        self._redis = redis
        self.keys = keys
        self.undelivered_limit = undelivered_limit
        self._lease = redis.register_script(LEASE)
        self._ack = redis.register_script(ACK)
        self._retry = redis.register_script(RETRY)
        self._give_up = redis.register_script(GIVE_UP)

    def sink_keys(self, sinks: Sequence[str]) -> builtins.list[str]:
        """The outbox and entries keys of each sink, in order (for the raise script)."""
        return [
            k for s in sinks for k in (self.keys.alert_outbox(s), self.keys.alert_outbox_entries(s))
        ]

    def lease(self, sink: str, lease_s: float) -> Lease | float | None:
        """Take the entry of ``sink`` due longest ago for ``lease_s`` seconds.

        Returns:
            The lease; or, when nothing is due, seconds until the next entry is (``None``: the
            outbox is empty).

        Raises:
            StateUnavailableError: Redis is unreachable.
        """
        with redis_errors(self._redis):
            reply = cast(
                "builtins.list[str | bytes]",
                self._lease(keys=self._pair(sink), args=[max(int(lease_s * 1000), 1)]),
            )
        alert_id = text(reply[0])
        if not alert_id:
            wait = text(reply[1])
            return float(wait) / 1000 if wait else None
        entry: dict[str, Any] = json.loads(text(reply[2]))
        return Lease(
            sink=sink,
            alert=Alert.model_validate(entry["alert"]),
            token=text(reply[1]),
            attempts=int(entry.get("attempts", 0)),
            queued_ms=int(entry.get("queued_ms", 0)),
        )

    def ack(self, lease: Lease) -> bool:
        """The sink accepted: forget the entry. False if it was gone already."""
        with redis_errors(self._redis):
            return bool(self._ack(keys=self._pair(lease.sink), args=[lease.alert.id]))

    def retry(self, lease: Lease, error: str, delay_s: float) -> bool:
        """Make the entry due again in ``delay_s`` seconds, counting this attempt.

        Returns:
            False if the lease was lost (another process holds the entry, or it was delivered).
        """
        entry = self._entry(lease, attempts=lease.attempts + 1, error=error)
        args: builtins.list[str | int] = [
            lease.alert.id,
            lease.token,
            max(int(delay_s * 1000), 0),
            entry,
        ]
        with redis_errors(self._redis):
            return bool(self._retry(keys=self._pair(lease.sink), args=args))

    def give_up(self, lease: Lease, error: str) -> bool:
        """Move the entry to the undelivered list, counting this attempt.

        Returns:
            False if the lease was lost.
        """
        record = json.dumps(
            {
                "sink": lease.sink,
                "error": error,
                "entry": json.loads(self._entry(lease, attempts=lease.attempts + 1, error=error)),
            }
        )
        keys = [
            *self._pair(lease.sink),
            self.keys.alerts_undelivered(),
            self.keys.alerts_undelivered_counts(),
        ]
        args: builtins.list[str | int] = [
            lease.alert.id,
            lease.token,
            lease.sink,
            record,
            self.undelivered_limit,
        ]
        with redis_errors(self._redis):
            return bool(self._give_up(keys=keys, args=args))

    def pending(self, sink: str) -> int:
        """Entries of ``sink`` not yet delivered nor given up (leased ones included)."""
        with redis_errors(self._redis):
            return int(cast(int, self._redis.zcard(self.keys.alert_outbox(sink))))

    def undelivered(self, limit: int = 100) -> builtins.list[Undelivered]:
        """The deliveries given up most recently, newest first."""
        if limit < 1:
            raise ValueError(f"limit must be positive, got {limit}")
        with redis_errors(self._redis):
            raws = cast(
                "builtins.list[str | bytes]",
                self._redis.lrange(self.keys.alerts_undelivered(), 0, limit - 1),
            )
        return [_undelivered(json.loads(text(raw))) for raw in raws]

    def undelivered_counts(self) -> dict[str, int]:
        """Deliveries given up so far, per sink."""
        with redis_errors(self._redis):
            raw = cast(
                "dict[str | bytes, str | bytes]",
                self._redis.hgetall(self.keys.alerts_undelivered_counts()),
            )
        return {text(k): int(text(v)) for k, v in raw.items()}

    def _pair(self, sink: str) -> builtins.list[str]:
        return [self.keys.alert_outbox(sink), self.keys.alert_outbox_entries(sink)]

    @staticmethod
    def _entry(lease: Lease, *, attempts: int, error: str) -> str:
        alert = json.loads(lease.alert.model_dump_json())
        entry = {"attempts": attempts, "error": error, "queued_ms": lease.queued_ms, "alert": alert}
        return json.dumps(entry)


def _undelivered(record: dict[str, Any]) -> Undelivered:
    entry = record.get("entry") or {}
    alert = entry.get("alert")
    return Undelivered(
        sink=str(record.get("sink", "")),
        alert=Alert.model_validate(alert) if alert else None,
        attempts=int(entry.get("attempts", 0)),
        error=str(record.get("error", "")),
        at=int(record.get("at_ms", 0)) / 1000,
    )
