"""Celery configuration, derived from the orchestrator's settings, with its safety checks.

Each choice answers an item of the project's Celery-over-Redis pitfalls:

- ``task_acks_late`` + ``worker_prefetch_multiplier=1``: a worker killed mid-task loses nothing;
  the message is redelivered (tasks are idempotent per session).
- ``task_reject_on_worker_lost``: a dying pool child requeues its task instead of acking it; a
  task that keeps killing its worker is stopped by a delivery counter (workers.delivery).
- ``visibility_timeout`` above the longest run plus the largest retry delay: an ETA'd retry is
  never handed out twice (checked by :func:`check_timing`, which refuses to start otherwise).
- JSON only; ``result_extended`` off: no raw arguments in results; arguments are ids anyway.
- ``worker_cancel_long_running_tasks_on_connection_loss``: acks-late tasks are not run twice
  after a broker connection loss. Only for the prefork pool: ``krtc-rec worker`` turns it off
  for the threads and solo pools, which cannot cancel a job (Celery would stop the worker).
- The broker's and the result backend's Redis connections get the same connect and socket
  timeouts, keepalive and health checks as every other client of the project
  (:mod:`orchestrator.state.connection`); the socket timeout stays above kombu's ``BRPOP``
  timeout (:data:`BROKER_POLL_S`), so that a poll that finds nothing is never read as a dead
  connection, and below the task time limits (checked by :func:`check_timing`).
"""

from __future__ import annotations

from typing import Any

from orchestrator.errors import ConfigError
from orchestrator.settings import Settings
from orchestrator.state.connection import RedisOptions, SentinelUrl, broker_url, is_sentinel_url
from orchestrator.tasking.queues import QUEUES, START_QUEUE, STOP_QUEUE, TASK_QUEUES
from orchestrator.tasking.timing import (
    BOOKKEEPING_S,
    hard_time_limit_s,
    longest_run_s,
    redis_wait_s,
    soft_time_limit_s,
)

__all__ = [
    "START_QUEUE",
    "STOP_QUEUE",
    "QUEUES",
    "BOOKKEEPING_S",
    "BROKER_POLL_S",
    "celery_config",
    "check_timing",
    "hard_time_limit_s",
    "longest_run_s",
]


#: Seconds kombu's ``BRPOP`` waits for a message (its ``brpop_timeout``, left at its default).
BROKER_POLL_S = 1.0


def check_timing(settings: Settings) -> None:
    """Refuse a configuration in which a task could be delivered twice.

    Raises:
        ConfigError: when ``KRTC_VISIBILITY_TIMEOUT`` is not above the longest run plus the largest
            retry delay (``KRTC_RETRY_BACKOFF_MAX``), the backoff base is above its maximum, or
            the Redis socket timeout is not above the broker's poll.
    """
    if settings.redis_socket_timeout_s <= BROKER_POLL_S:
        raise ConfigError(
            f"KRTC_REDIS_SOCKET_TIMEOUT_S ({settings.redis_socket_timeout_s:g}s) must exceed "
            f"the broker's BRPOP poll ({BROKER_POLL_S:g}s): an empty poll would be taken for a "
            "dead connection"
        )
    if settings.retry_backoff_base > settings.retry_backoff_max:
        raise ConfigError(
            f"KRTC_RETRY_BACKOFF_BASE ({settings.retry_backoff_base:g}s) must not exceed "
            f"KRTC_RETRY_BACKOFF_MAX ({settings.retry_backoff_max:g}s)"
        )
    needed = hard_time_limit_s(settings) + settings.retry_backoff_max
    if settings.visibility_timeout <= needed:
        raise ConfigError(
            f"KRTC_VISIBILITY_TIMEOUT ({settings.visibility_timeout}s) must exceed the task time "
            f"limit ({hard_time_limit_s(settings)}s: connect + read timeout + "
            f"{max(BOOKKEEPING_S, redis_wait_s(settings)) + 5:g}s) plus KRTC_RETRY_BACKOFF_MAX "
            f"({settings.retry_backoff_max:g}s) = {needed:g}s; otherwise a delayed retry is "
            "handed to a second worker and runs twice"
        )


def celery_config(settings: Settings) -> dict[str, Any]:
    """The Celery settings for ``settings`` (after :func:`check_timing`)."""
    check_timing(settings)
    # Every key Celery writes starts with the project's prefix too, so that one Redis can hold
    # several deployments (and tests) without their queues mixing.
    redis = RedisOptions.from_settings(settings)
    transport = {
        "visibility_timeout": settings.visibility_timeout,
        "global_keyprefix": f"{settings.redis_prefix}:celery:",
        **redis.transport_options(),
    }
    if is_sentinel_url(settings.redis_url):
        # Celery's master_name option for the broker and the result backend alike.
        transport |= redis.sentinel_transport_options(SentinelUrl.parse(settings.redis_url))
    url = broker_url(settings.redis_url)
    return {
        "broker_url": url,
        "result_backend": url,
        "broker_transport_options": transport,
        "result_backend_transport_options": transport,
        "broker_connection_retry_on_startup": True,
        # The result backend reads its Redis options from these, not from its transport options.
        "redis_socket_timeout": redis.socket_timeout_s,
        "redis_socket_connect_timeout": redis.connect_timeout_s,
        "redis_socket_keepalive": True,
        "redis_backend_health_check_interval": redis.health_check_interval_s,
        "task_serializer": "json",
        "result_serializer": "json",
        "accept_content": ["json"],
        "event_serializer": "json",
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "worker_prefetch_multiplier": 1,
        "worker_cancel_long_running_tasks_on_connection_loss": True,
        # Producers follow sessions, not task results: no STARTED state and no stored result
        # (each cost Redis round trips per task); failures are still stored, and Flower sees
        # every state from the task events.
        "task_track_started": False,
        "task_ignore_result": True,
        "task_store_errors_even_if_ignored": True,
        "result_extended": False,
        "result_expires": 86400,
        "task_default_queue": START_QUEUE,
        "task_routes": {name: {"queue": queue} for name, queue in TASK_QUEUES.items()},
        "task_time_limit": hard_time_limit_s(settings),
        "task_soft_time_limit": soft_time_limit_s(settings),
        # Task events cost two publishes per task (received, succeeded) and most of the event
        # loop's work; Flower enables them in the workers while it runs (enable_events).
        "worker_send_task_events": settings.task_events,
        "task_send_sent_event": True,
        "worker_hijack_root_logger": False,
        # No ``expires`` on beat's tasks: Celery sets it from the beat's clock and checks it
        # against the worker's, so a beat a second behind its workers had every tick discarded
        # as revoked. A stale tick costs little instead: a reconcile round begins only if the
        # last one began most of an interval ago (Redis decides: reconcile/rounds.py), and a
        # schedule tick that finds nothing due claims nothing.
        "beat_schedule": {
            "krtc-reconcile": {
                "task": "krtc.reconcile",
                "schedule": settings.reconcile_interval,
            },
            # Scheduled recordings are due in Redis, never as ETA tasks; this tick claims them.
            "krtc-schedule-tick": {
                "task": "krtc.schedule_tick",
                "schedule": settings.schedule_tick_interval,
            },
            # Retention: a gate in Redis lets one run through per interval (two beats).
            "krtc-gc": {
                "task": "krtc.gc",
                "schedule": float(settings.gc_interval_s),
            },
        },
    }
