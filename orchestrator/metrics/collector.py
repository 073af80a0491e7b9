"""The Prometheus view of the whole cluster, computed from Redis at each scrape.

==================================  =========  ==============  ==================================
metric                              type       labels          from
==================================  =========  ==============  ==================================
``krtc_api_requests_total``         counter    action, outcome the workers' call counters
``krtc_api_request_seconds``        histogram  action          the workers' latency histograms
``krtc_sessions``                   gauge      phase           the unfinished sessions' phases
``krtc_alerts_total``               counter    kind            the alert store's per-kind counts
``krtc_alerts_undelivered_total``   counter    sink            deliveries given up (the outbox)
``krtc_alerts_outbox``              gauge      sink            deliveries waiting in the outbox
``krtc_dlq_size``                   gauge                      the dead letters waiting
``krtc_reconcile_round_seconds``    histogram                  rounds closed by the RoundGate
``krtc_schedule_lag_seconds``       histogram                  :func:`record_schedule_lag`
``krtc_clock_skew_seconds``         gauge      process         :mod:`orchestrator.metrics.skew`
``krtc_queue_length``               gauge      queue           the Celery queues' Redis lists and
                                                               the start lane (``start-lane``)
``krtc_redis_used_memory_bytes``    gauge                      ``INFO memory``: ``used_memory``
``krtc_redis_maxmemory_bytes``      gauge                      ``maxmemory`` (0: no limit)
``krtc_records``                    gauge      kind            records kept (retention)
``krtc_gc_deleted_total``           counter    kind            the collector's deletions
``krtc_redis_unreplicated_writes_total`` counter kind          relied-on writes the replicas
                                                               did not acknowledge in time
``krtc_redis_failovers_total``      counter                    failovers the reconciler noticed
==================================  =========  ==============  ==================================

Every known label value is exported, with 0 when nothing happened yet, so that ``rate()`` and
``increase()`` see a series' first increment. A scrape that cannot read Redis fails (the server
answers 503), so Prometheus marks the target down instead of showing stale or empty numbers.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import cast

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector
from redis import Redis

from orchestrator.alerts.sinks import DingTalkSink, FeishuSink, SlackSink, WebhookSink, WeComSink
from orchestrator.alerts.store import AlertStore
from orchestrator.krtc.enums import Action
from orchestrator.metrics.histograms import (
    API_SECONDS,
    RECONCILE_ROUND_SECONDS,
    SCHEDULE_LAG_SECONDS,
    HistogramSpec,
)
from orchestrator.metrics.recorder import OUTCOMES
from orchestrator.metrics.skew import read_skews
from orchestrator.retention import KINDS as GC_KINDS
from orchestrator.state import DeadLetterStore, Keys, Phase, SessionStore
from orchestrator.state.backend import redis_errors
from orchestrator.state.codec import text
from orchestrator.state.replication import UNREPLICATED_KINDS
from orchestrator.tasking.queues import queue_lengths

__all__ = ["RedisCollector", "ACTIONS", "RECORD_KINDS", "SESSION_PHASES", "SINKS"]

#: The ``action`` label values: the API actions' short names.
ACTIONS = tuple(action.short_name for action in Action)
#: The ``phase`` label values of ``krtc_sessions``: the unfinished phases (finished sessions
#: only accumulate until they expire, which says nothing about the present).
SESSION_PHASES = tuple(phase.value for phase in Phase if not phase.is_finished)
#: The ``sink`` label values: the background sinks' names.
SINKS = tuple(cls.name for cls in (WebhookSink, DingTalkSink, FeishuSink, WeComSink, SlackSink))
#: The ``kind`` label values of ``krtc_records``.
RECORD_KINDS = ("sessions_active", "sessions_finished", "dead_letters", "alerts", "schedules")


class RedisCollector(Collector):
    """Reads the metrics of :mod:`orchestrator.metrics.collector` from Redis on each collect.

    Args:
        redis: a client of the project's Redis (``decode_responses`` or not).
        keys: the key names of the deployment (its prefix).

    Raises:
        StateUnavailableError, StateBackendError: from :meth:`collect`, when Redis fails.
    """

    def __init__(self, redis: Redis, keys: Keys) -> None:
        self._redis = redis
        self.keys = keys
        self._store = SessionStore(redis, prefix=keys.prefix)
        self._dead_letters = DeadLetterStore(redis, keys=keys)
        self._alerts = AlertStore(redis, keys=keys)

    def describe(self) -> list[Metric]:
        # Registering must not read Redis (the default would collect once).
        return []

    def collect(self) -> Iterator[Metric]:
        hashes = self._read_hashes()
        yield self._requests(hashes[self.keys.metrics_api_requests()])
        yield self._histogram(
            "krtc_api_request_seconds",
            "API call latency in seconds, by action (every worker).",
            API_SECONDS,
            hashes[self.keys.metrics_api_seconds()],
            label="action",
            values=ACTIONS,
        )
        yield self._sessions()
        alerts = CounterMetricFamily(
            "krtc_alerts", "Alerts raised, by kind (reminders included).", labels=["kind"]
        )
        for kind, count in sorted(self._alerts.counts().items()):
            alerts.add_metric([kind], count)
        yield alerts
        yield from self._outbox()
        yield GaugeMetricFamily(
            "krtc_dlq_size",
            "Jobs that failed for good and wait in the dead letters.",
            value=self._dead_letters.size(),
        )
        yield self._histogram(
            "krtc_reconcile_round_seconds",
            "Duration of finished reconcile rounds in seconds.",
            RECONCILE_ROUND_SECONDS,
            hashes[self.keys.metrics_reconcile_seconds()],
        )
        yield self._histogram(
            "krtc_schedule_lag_seconds",
            "Seconds scheduled starts and stops were dispatched after they were due.",
            SCHEDULE_LAG_SECONDS,
            hashes[self.keys.metrics_schedule_lag()],
        )
        yield from self._high_availability(hashes[self.keys.metrics_redis_ha()])
        yield self._skews()
        yield self._queues()
        yield from self._retention()

    def _queues(self) -> GaugeMetricFamily:
        with redis_errors(self._redis):
            lengths = queue_lengths(self._redis, self.keys)
        family = GaugeMetricFamily(
            "krtc_queue_length",
            "Messages waiting in each Celery queue, and starts in the start lane.",
            labels=["queue"],
        )
        for queue, length in lengths.items():
            family.add_metric([queue], length)
        return family

    def _retention(self) -> Iterator[Metric]:
        keys = self.keys
        with redis_errors(self._redis):
            pipe = self._redis.pipeline(transaction=False)
            pipe.info("memory")
            pipe.scard(keys.active())
            pipe.zcard(keys.finished())
            pipe.zcard(keys.dead_letters())
            pipe.llen(keys.alerts())
            pipe.zcard(keys.schedules())
            pipe.hgetall(keys.gc_deleted())
            memory, *counts, deleted = pipe.execute()
        yield GaugeMetricFamily(
            "krtc_redis_used_memory_bytes",
            "Bytes of memory Redis uses (INFO memory used_memory).",
            value=int(memory.get("used_memory", 0)),
        )
        yield GaugeMetricFamily(
            "krtc_redis_maxmemory_bytes",
            "Redis' maxmemory in bytes (0: no limit; then only the host's memory bounds it).",
            value=int(memory.get("maxmemory", 0)),
        )
        records = GaugeMetricFamily(
            "krtc_records",
            "Records kept in Redis, by kind (sessions active and finished, dead letters, "
            "recent alerts, schedules).",
            labels=["kind"],
        )
        for kind, count in zip(RECORD_KINDS, counts, strict=True):
            records.add_metric([kind], int(count))
        yield records
        by_kind = dict.fromkeys(GC_KINDS, 0)
        by_kind.update({text(k): int(text(v)) for k, v in deleted.items()})
        gc = CounterMetricFamily(
            "krtc_gc_deleted",
            "Records the collector deleted after their retention, by kind.",
            labels=["kind"],
        )
        for kind, count in by_kind.items():
            gc.add_metric([kind], count)
        yield gc

    @staticmethod
    def _high_availability(raw: dict[str, str]) -> Iterator[Metric]:
        unreplicated = CounterMetricFamily(
            "krtc_redis_unreplicated_writes",
            "Writes callers rely on that too few replicas acknowledged in time, by kind.",
            labels=["kind"],
        )
        for kind in UNREPLICATED_KINDS:
            unreplicated.add_metric([kind], int(raw.get(f"unreplicated|{kind}", 0)))
        yield unreplicated
        yield CounterMetricFamily(
            "krtc_redis_failovers",
            "Redis failovers (or restarts) the reconciler noticed: a new primary run id.",
            value=int(raw.get("failovers", 0)),
        )

    def _skews(self) -> GaugeMetricFamily:
        with redis_errors(self._redis):
            skews = read_skews(self._redis, self.keys, self._store.clock())
        family = GaugeMetricFamily(
            "krtc_clock_skew_seconds",
            "Each process's wall clock minus Redis' TIME, at its last comparison (seconds).",
            labels=["process"],
        )
        for process, skew in sorted(skews.items()):
            family.add_metric([process], skew)
        return family

    def _outbox(self) -> Iterator[Metric]:
        outbox = self._alerts.outbox
        given_up = {sink: 0 for sink in SINKS}
        given_up.update(outbox.undelivered_counts())
        undelivered = CounterMetricFamily(
            "krtc_alerts_undelivered",
            "Alert deliveries given up, by sink (attempts spent, refused, or outbox full).",
            labels=["sink"],
        )
        waiting = GaugeMetricFamily(
            "krtc_alerts_outbox",
            "Alert deliveries waiting in the outbox (queued, leased or due for a retry), by sink.",
            labels=["sink"],
        )
        for sink in sorted(given_up):
            undelivered.add_metric([sink], given_up[sink])
            waiting.add_metric([sink], outbox.pending(sink))
        yield undelivered
        yield waiting

    def _read_hashes(self) -> dict[str, dict[str, str]]:
        names = [
            self.keys.metrics_api_requests(),
            self.keys.metrics_api_seconds(),
            self.keys.metrics_reconcile_seconds(),
            self.keys.metrics_schedule_lag(),
            self.keys.metrics_redis_ha(),
        ]
        with redis_errors(self._redis):
            pipe = self._redis.pipeline(transaction=False)
            for name in names:
                pipe.hgetall(name)
            replies = cast("list[dict[str | bytes, str | bytes]]", pipe.execute())
        return {
            name: {text(k): text(v) for k, v in reply.items()}
            for name, reply in zip(names, replies, strict=True)
        }

    @staticmethod
    def _requests(raw: dict[str, str]) -> CounterMetricFamily:
        counts = {(action, outcome): 0.0 for action in ACTIONS for outcome in OUTCOMES}
        for field, value in raw.items():
            action, _, outcome = field.partition("|")
            counts[(action, outcome)] = counts.get((action, outcome), 0.0) + float(value)
        family = CounterMetricFamily(
            "krtc_api_requests",
            "KRTC API calls by action and outcome (ok, transient, permanent, not_found, "
            "conflict, error), from every worker.",
            labels=["action", "outcome"],
        )
        for (action, outcome), count in sorted(counts.items()):
            family.add_metric([action, outcome], count)
        return family

    @staticmethod
    def _histogram(
        name: str,
        documentation: str,
        spec: HistogramSpec,
        raw: dict[str, str],
        *,
        label: str | None = None,
        values: tuple[str, ...] = (),
    ) -> HistogramMetricFamily:
        if label is None:
            family = HistogramMetricFamily(name, documentation)
            reading = spec.read(raw)
            family.add_metric([], reading.buckets, sum_value=reading.sum)
            return family
        family = HistogramMetricFamily(name, documentation, labels=[label])
        seen = {field.split("|", 1)[0] for field in raw}
        for value in sorted(set(values) | seen):
            reading = spec.read(raw, (value,))
            family.add_metric([value], reading.buckets, sum_value=reading.sum)
        return family

    def _sessions(self) -> GaugeMetricFamily:
        counts = dict.fromkeys(SESSION_PHASES, 0)
        ids = self._store.active_ids()
        if ids:
            with redis_errors(self._redis):
                pipe = self._redis.pipeline(transaction=False)
                for session_id in ids:
                    pipe.hget(self.keys.session(session_id), "phase")
                phases = cast("list[str | bytes | None]", pipe.execute())
            for phase in phases:
                if phase is not None:
                    counts[text(phase)] = counts.get(text(phase), 0) + 1
        family = GaugeMetricFamily(
            "krtc_sessions", "Unfinished recording sessions by phase.", labels=["phase"]
        )
        for phase, count in sorted(counts.items()):
            family.add_metric([phase], count)
        return family
