"""Every Redis key name of the session store, built from one configurable prefix.

No other module builds key names. The variable parts (ids, appId, cname, uid, idempotency keys)
are percent-encoded, so a ``:`` inside a channel name can never make two keys collide::

    {p}:session:{id}                    hash     one recording session
    {p}:session:{id}:history            list     its history, oldest first (JSON entries)
    {p}:identity:{appId}:{cname}:{uid}  string   id of the one unfinished session (spec D11)
    {p}:idem:{key}                      string   id of the session an idempotency key created
    {p}:active                          set      ids of the unfinished sessions
    {p}:sessions                        zset     ids of all sessions, scored by creation time
    {p}:finished                        zset     ids of the finished sessions, scored by when
                                                 they finished (Redis' clock): the collector
                                                 deletes from its head
    {p}:session:{id}:{action}-lease     string   token of the run of (session, action) whose call
                                                 is in flight (start, update, update-layout), with
                                                 a PX expiry: single flight
    {p}:run:{run id}                    hash     the budget of one run of a job (a task id):
                                                 attempts, and when it first waited for what
                                                 (``wait:sid``, ``wait:confirm``); expires
    {p}:dlq                             zset     dead-letter ids, scored by latest failure
    {p}:dlq:{id}                        string   one dead letter (JSON)
    {p}:dlq-live:{session}:{action}     string   id of the live (not replayed) dead letter of
                                                 (session, action): later failures update it
    {p}:ratelimit:{appId}               string   the appId's rate limit: theoretical arrival
                                                 time of its next call, unix microseconds
    {p}:alert:{session id}:{kind}       hash     the raised alert of (session, kind): first_at,
                                                 last_at, raised (count); its presence dedupes
    {p}:alerts                          list     recent alerts, newest first (JSON), capped
    {p}:alerts:count                    hash     alerts raised per kind (reminders included)
    {p}:alerts:outbox:{sink}            zset     alert ids still to deliver to a sink, scored
                                                 by when they may be taken (Redis time, ms):
                                                 due, end of a lease, or next retry
    {p}:alerts:outbox:{sink}:entries    hash     alert id -> outbox entry (JSON: the alert,
                                                 attempts, last error); never a URL or secret
    {p}:alerts:undelivered              list     deliveries given up (JSON), newest first,
                                                 capped
    {p}:alerts:undelivered:count        hash     deliveries given up per sink
    {p}:event:{id}                      string   one lifecycle event (JSON: type, subject, time,
                                                 snapshot of the session); expires
    {p}:event:{id}:delivery             hash     its delivery: state (pending, delivered,
                                                 dead), attempts, last error; expires
    {p}:events                          zset     event ids, scored by when they happened (ms)
    {p}:events:of:{subject}             list     event ids of one subject (a session, or
                                                 ``schedule:{id}``), oldest first; expires
    {p}:events:queue:{subject}          list     its events not yet delivered, head first:
                                                 only the head is ever in flight (order)
    {p}:events:outbox                   zset     subjects with a queued event, scored by when
                                                 the head may be taken (Redis ms): due, end of
                                                 a lease, or next retry
    {p}:events:dead                     zset     events given up (dead letters), scored by
                                                 when (ms)
    {p}:reconcile:round                 hash     the reconcile round under way: id, pending
                                                 batches, started, sessions, changes
    {p}:reconcile:spacing               string   present for most of an interval after a round
                                                 starts: no second round (a second beat) until
                                                 it expires
    {p}:reconcile:rounds                list     recent finished rounds, newest first (JSON)
    {p}:metrics:api:requests            hash     API calls per "{action}|{outcome}", all workers
    {p}:metrics:api:seconds             hash     API call latency histogram: "{action}|{le}"
                                                 (non-cumulative bucket counts), "{action}|sum",
                                                 "{action}|count"
    {p}:metrics:reconcile:seconds       hash     reconcile round durations: "{le}", "sum", "count"
    {p}:metrics:schedule:lag            hash     seconds scheduled work was dispatched after it
                                                 was due: "{le}", "sum", "count"
    {p}:metrics:redis:ha                hash     high availability: "unreplicated|{kind}" writes
                                                 whose replicas did not acknowledge in time,
                                                 "failovers" the reconciler noticed
    {p}:ha:barrier                      string   a counter written after a relied-on write, so
                                                 that WAIT on its connection covers that write
    {p}:ha:unsure                       zset     sessions whose relied-on write was not
                                                 acknowledged by the replicas, scored by when
                                                 (Redis time): the reconciler checks them
    {p}:ha:primary                      string   the run id of the primary the reconciler last
                                                 saw: another one means a failover (or restart)
    {p}:schedule:{id}                   string   one recording schedule (JSON)
    {p}:schedule:{id}:occurrences       zset     its occurrence ids, scored by planned start
    {p}:schedules                       zset     ids of all schedules, scored by creation time
    {p}:occurrence:{id}                 hash     one occurrence of a schedule: planned start and
                                                 end, outcome, the session it started
    {p}:schedule-due                    zset     due work, ``start|{occurrence id}`` or
                                                 ``stop|{occurrence id}``, scored by due time
    {p}:schedule-claimed                zset     the same members once a tick claimed them,
                                                 scored by the end of the claim's lease
    {p}:gc:spacing                      string   present for most of an interval after a
                                                 collector run began: no second run (a
                                                 second beat) until it expires
    {p}:gc:deleted                      hash     records the collector deleted, per kind
    {p}:gc:cursor                       hash     where the collector's rolling sweeps of the
                                                 sessions and schedules indexes stand (rank)
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import quote

__all__ = ["DEFAULT_PREFIX", "Keys"]

#: The prefix of every key (setting ``redis_prefix``, env ``KRTC_REDIS_PREFIX``).
DEFAULT_PREFIX = "krtc"

_GLOB_SPECIAL = re.compile(r"([*?\[\]\\])")


#: What quote() leaves as is (with ``safe=""``): a value of only these is its own encoding.
_UNRESERVED = re.compile(r"[A-Za-z0-9_.~-]*")


def _part(value: str) -> str:
    # quote() leaves only [A-Za-z0-9_.~-] as is, so ':' and '%' are always encoded and the
    # encoding is injective: two different values never give the same part. Most values (ids,
    # app ids, channel names) are all unreserved: they are returned without calling it.
    if _UNRESERVED.fullmatch(value) is not None:
        return value
    return quote(value, safe="")


@dataclass(frozen=True)
class Keys:
    """Key names under one prefix.

    Args:
        prefix: the first segment of every key; it may itself contain ``:`` (``"app:krtc"``).

    Raises:
        ValueError: the prefix is empty or contains whitespace.
    """

    prefix: str = DEFAULT_PREFIX

    def __post_init__(self) -> None:
        if not self.prefix or any(c.isspace() for c in self.prefix):
            raise ValueError(f"invalid Redis key prefix {self.prefix!r}: non-empty, no whitespace")

    def session(self, session_id: str) -> str:
        """The hash of a session."""
        return f"{self.prefix}:session:{_part(session_id)}"

    def history(self, session_id: str) -> str:
        """The history list of a session."""
        return f"{self.prefix}:session:{_part(session_id)}:history"

    def identity(self, app_id: str, cname: str, uid: str) -> str:
        """The key that holds the id of the unfinished session of (appId, cname, uid)."""
        return f"{self.prefix}:identity:{_part(app_id)}:{_part(cname)}:{_part(uid)}"

    def identities(self) -> str:
        """A ``SCAN MATCH`` pattern for every identity key under the prefix."""
        return _GLOB_SPECIAL.sub(r"\\\1", self.prefix) + ":identity:*"

    def idempotency(self, key: str) -> str:
        """The key that holds the id of the session an idempotency key created."""
        return f"{self.prefix}:idem:{_part(key)}"

    def active(self) -> str:
        """The set of unfinished session ids."""
        return f"{self.prefix}:active"

    def sessions(self) -> str:
        """The sorted set of every session id, scored by creation time (unix seconds)."""
        return f"{self.prefix}:sessions"

    def finished(self) -> str:
        """The sorted set of finished session ids, scored by when they finished (unix s)."""
        return f"{self.prefix}:finished"

    def dead_letters(self) -> str:
        """The sorted set of dead-letter ids, scored by their latest failure (unix seconds)."""
        return f"{self.prefix}:dlq"

    def dead_letter(self, letter_id: str) -> str:
        """One dead letter (JSON)."""
        return f"{self.prefix}:dlq:{_part(letter_id)}"

    def dead_letter_live(self, session_id: str, action: str) -> str:
        """The id of the live dead letter of (session, action): at most one per pair."""
        return f"{self.prefix}:dlq-live:{_part(session_id)}:{_part(action)}"

    def alert(self, session_id: str, kind: str) -> str:
        """The marker of the alert raised for (session, kind): one alert per pair."""
        return f"{self.prefix}:alert:{_part(session_id)}:{_part(kind)}"

    def alerts(self) -> str:
        """The capped list of recent alerts, newest first (JSON)."""
        return f"{self.prefix}:alerts"

    def alert_counts(self) -> str:
        """The hash of alerts raised per kind."""
        return f"{self.prefix}:alerts:count"

    def alert_outbox(self, sink: str) -> str:
        """The sorted set of alert ids to deliver to ``sink``, scored by when they may be taken."""
        return f"{self.prefix}:alerts:outbox:{_part(sink)}"

    def alert_outbox_entries(self, sink: str) -> str:
        """The hash of ``sink``'s outbox entries: alert id -> entry (JSON)."""
        return f"{self.prefix}:alerts:outbox:{_part(sink)}:entries"

    def alerts_undelivered(self) -> str:
        """The capped list of deliveries given up (JSON), newest first."""
        return f"{self.prefix}:alerts:undelivered"

    def alerts_undelivered_counts(self) -> str:
        """The hash of deliveries given up per sink."""
        return f"{self.prefix}:alerts:undelivered:count"

    def event(self, event_id: str) -> str:
        """One lifecycle event (JSON)."""
        return f"{self.prefix}:event:{_part(event_id)}"

    def event_delivery(self, event_id: str) -> str:
        """The delivery state of one event (hash: state, attempts, error, ...)."""
        return f"{self.prefix}:event:{_part(event_id)}:delivery"

    def events(self) -> str:
        """The sorted set of event ids, scored by when they happened (Redis ms)."""
        return f"{self.prefix}:events"

    def events_of(self, subject: str) -> str:
        """The list of one subject's event ids, oldest first."""
        return f"{self.prefix}:events:of:{_part(subject)}"

    def event_queue(self, subject: str) -> str:
        """The list of one subject's events still to deliver, head first."""
        return f"{self.prefix}:events:queue:{_part(subject)}"

    def events_outbox(self) -> str:
        """The sorted set of subjects with events to deliver, scored by when the head is due."""
        return f"{self.prefix}:events:outbox"

    def events_dead(self) -> str:
        """The sorted set of events given up, scored by when (Redis ms)."""
        return f"{self.prefix}:events:dead"

    def rate_limit(self, app_id: str) -> str:
        """The state of the per-appId request rate limit (shared by every worker)."""
        return f"{self.prefix}:ratelimit:{_part(app_id)}"

    def reconcile_round(self) -> str:
        """The hash of the reconcile round under way (absent between rounds)."""
        return f"{self.prefix}:reconcile:round"

    def reconcile_spacing(self) -> str:
        """The key that spaces reconcile rounds at least most of an interval apart."""
        return f"{self.prefix}:reconcile:spacing"

    def reconcile_batch(self, round_id: str, digest: str) -> str:
        """The claim of one batch of a round (a run holds it; ``done`` once reported)."""
        return f"{self.prefix}:reconcile:batch:{_part(round_id)}:{_part(digest)}"

    def reconcile_rounds(self) -> str:
        """The list of recent finished reconcile rounds (JSON), newest first."""
        return f"{self.prefix}:reconcile:rounds"

    def schedule(self, schedule_id: str) -> str:
        """One recording schedule (JSON)."""
        return f"{self.prefix}:schedule:{_part(schedule_id)}"

    def schedule_occurrences(self, schedule_id: str) -> str:
        """The sorted set of a schedule's occurrence ids, scored by planned start."""
        return f"{self.prefix}:schedule:{_part(schedule_id)}:occurrences"

    def schedules(self) -> str:
        """The sorted set of every schedule id, scored by creation time (unix seconds)."""
        return f"{self.prefix}:schedules"

    def schedule_last_tick(self) -> str:
        """When the last schedule tick ran (Redis time, unix seconds): for health checks."""
        return f"{self.prefix}:schedule:last-tick"

    def occurrence(self, occurrence_id: str) -> str:
        """The hash of one occurrence of a schedule."""
        return f"{self.prefix}:occurrence:{_part(occurrence_id)}"

    def schedule_due(self) -> str:
        """The sorted set of due scheduled starts and stops, scored by due time."""
        return f"{self.prefix}:schedule-due"

    def schedule_claimed(self) -> str:
        """The sorted set of claimed starts and stops, scored by the end of their lease."""
        return f"{self.prefix}:schedule-claimed"

    def gc_spacing(self) -> str:
        """The key that spaces collector runs at least most of an interval apart."""
        return f"{self.prefix}:gc:spacing"

    def gc_deleted(self) -> str:
        """The hash of records the collector deleted, per kind."""
        return f"{self.prefix}:gc:deleted"

    def gc_cursor(self) -> str:
        """The hash of the collector's rolling sweep positions (field: the index swept)."""
        return f"{self.prefix}:gc:cursor"

    def metrics_api_requests(self) -> str:
        """The hash of API call counts by action and outcome (every worker adds to it)."""
        return f"{self.prefix}:metrics:api:requests"

    def metrics_api_seconds(self) -> str:
        """The histogram hash of API call latencies by action."""
        return f"{self.prefix}:metrics:api:seconds"

    def metrics_reconcile_seconds(self) -> str:
        """The histogram hash of reconcile round durations."""
        return f"{self.prefix}:metrics:reconcile:seconds"

    def metrics_schedule_lag(self) -> str:
        """The histogram hash of schedule lags (dispatch time minus due time)."""
        return f"{self.prefix}:metrics:schedule:lag"

    def metrics_clock_skew(self) -> str:
        """The hash of clock skews by process (JSON ``{skew_s, at}``; at: Redis time)."""
        return f"{self.prefix}:metrics:clock:skew"

    def metrics_redis_ha(self) -> str:
        """The hash of high-availability counters (unreplicated writes by kind, failovers)."""
        return f"{self.prefix}:metrics:redis:ha"

    def ha_barrier(self) -> str:
        """The counter written before a WAIT (see :mod:`orchestrator.state.replication`)."""
        return f"{self.prefix}:ha:barrier"

    def ha_unsure(self) -> str:
        """The sorted set of sessions whose last relied-on write may not be replicated."""
        return f"{self.prefix}:ha:unsure"

    def ha_primary(self) -> str:
        """The run id of the primary the reconciler saw last."""
        return f"{self.prefix}:ha:primary"

    def lease(self, session_id: str, action: str) -> str:
        """The lease of the run of a session's ``action`` that has a call in flight."""
        return f"{self.prefix}:session:{_part(session_id)}:{_part(action)}-lease"

    def run(self, run_id: str) -> str:
        """The budget of one run of a job (its attempts and waits), by the run's id."""
        return f"{self.prefix}:run:{_part(run_id)}"

    def worker_heartbeats(self) -> str:
        """The hash of workers' last heartbeats: worker name -> Redis time (unix seconds)."""
        return f"{self.prefix}:workers:heartbeat"

    def start_lane(self, part: str) -> str:
        """A structure of the start lane (:mod:`orchestrator.state.lane`): ``ready`` (list),
        ``inflight`` and ``delayed`` (sorted sets by Redis time), ``deaths`` (hash)."""
        return f"{self.prefix}:lane:start:{_part(part)}"

    def celery_queue(self, queue: str) -> str:
        """The list kombu keeps a Celery queue in (its transport's ``global_keyprefix``)."""
        return f"{self.prefix}:celery:{_part(queue)}"

    def pattern(self) -> str:
        """A ``SCAN MATCH`` pattern for every key under the prefix (glob characters escaped)."""
        return _GLOB_SPECIAL.sub(r"\\\1", self.prefix) + ":*"
