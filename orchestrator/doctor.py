"""Is the deployment healthy? One check per part, each saying what to do when it is not.

:func:`diagnose` runs every check against the deployment's Redis (and, through it, its workers);
``krtc-rec status`` prints them. A check never raises: a part it cannot look at is a failed
check that says why. Ages are measured on Redis' clock (the deployment's one clock), except the
skew of this host, which is what the last check measures.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any, cast

from celery import Celery
from redis import Redis

from orchestrator.alerts.store import AlertStore
from orchestrator.errors import OrchestratorError
from orchestrator.metrics.skew import SKEW_LIMIT_S
from orchestrator.reconcile.rounds import RoundGate
from orchestrator.schedule.store import ScheduleStore
from orchestrator.settings import Settings
from orchestrator.state import DeadLetterStore, Keys, RedisClock, SessionStore
from orchestrator.tasking.queues import QUEUES, queue_lengths

__all__ = ["Check", "diagnose", "healthy", "PING_TIMEOUT_S", "BACKLOG_WARN"]

#: Seconds workers have to answer a ping.
PING_TIMEOUT_S = 2.0
#: Messages waiting in one queue past which the backlog is a problem.
BACKLOG_WARN = 1000
#: Memory use (share of ``maxmemory``) past which Redis is a problem.
MEMORY_WARN = 0.8


@dataclass(frozen=True)
class Check:
    """The outcome of one check.

    Attributes:
        name: what was checked (``redis``, ``workers``, ``queues``...).
        ok: whether it is healthy.
        detail: what was found.
        fix: what to do (empty when ok).
    """

    name: str
    ok: bool
    detail: str
    fix: str = ""

    def to_json(self) -> dict[str, Any]:
        """The check as a JSON object."""
        return asdict(self)


def healthy(checks: list[Check]) -> bool:
    """Whether every check passed."""
    return all(check.ok for check in checks)


def diagnose(settings: Settings, store: SessionStore, celery: Celery) -> list[Check]:
    """Every check, in order: Redis first (nothing else can be read without it)."""
    redis = store.redis
    first = _guard("redis", lambda: _redis(redis))
    if not first.ok and "unreachable" in first.detail:
        return [first]
    checks = [first]
    # Each age is taken when its check runs (store.clock(), Redis' time): the workers' check
    # waits for their answers, and a tick written meanwhile must not look newer than "now".
    for name, check in (
        ("workers", lambda: _workers(celery)),
        ("queues", lambda: _queues(redis, settings)),
        ("reconciler", lambda: _reconciler(store, settings, store.clock())),
        ("scheduler", lambda: _scheduler(store, settings, store.clock())),
        ("dead letters", lambda: _dead_letters(store)),
        ("alerts", lambda: _alerts(store, store.clock())),
        ("clock", lambda: _clock(redis)),
    ):
        checks.append(_guard(name, check))
    return checks


def _guard(name: str, check: Callable[[], Check]) -> Check:
    try:
        return check()
    except (OrchestratorError, OSError) as exc:
        return Check(name, False, f"could not check: {exc}", "see the error; is Redis reachable?")


def _redis(redis: Redis) -> Check:
    try:
        info = cast("dict[str, Any]", redis.info())
    except Exception as exc:  # any redis-py error: say what it was
        fix = "start Redis, or point REDIS_URL at it (docker-compose up -d redis)"
        if "[SSL" in str(exc):
            fix = (
                "the TLS handshake failed: check the certificate options in REDIS_URL's query "
                "(ssl_ca_certs: the CA that signed the server's certificate; ssl_certfile and "
                "ssl_keyfile if the server asks for a client certificate)"
            )
        return Check("redis", False, f"unreachable: {type(exc).__name__}: {exc}", fix)
    problems: list[str] = []
    fixes: list[str] = []
    aof = int(info.get("aof_enabled", 0)) == 1
    policy = str(info.get("maxmemory_policy", "?"))
    used = int(info.get("used_memory", 0))
    limit = int(info.get("maxmemory", 0))
    if not aof:
        problems.append("AOF off")
        fixes.append("turn on AOF (appendonly yes, appendfsync everysec): a restart loses stops")
    if policy != "noeviction":
        problems.append(f"maxmemory-policy {policy}")
        fixes.append("set maxmemory-policy noeviction: an evicted session is a lost recording")
    if limit and used > MEMORY_WARN * limit:
        problems.append(f"memory {used / limit:.0%} of maxmemory")
        fixes.append("raise maxmemory or shorten the retention")
    memory = f"{used / 2**20:.1f} MiB used" + (f" of {limit / 2**20:.0f} MiB" if limit else "")
    detail = (
        f"Redis {info.get('redis_version', '?')}, AOF {'on' if aof else 'off'}, "
        f"maxmemory-policy {policy}, {memory}"
    )
    if problems:
        return Check("redis", False, f"{detail}: {', '.join(problems)}", "; ".join(fixes))
    return Check("redis", True, detail)


def _workers(celery: Celery) -> Check:
    inspect = celery.control.inspect(timeout=PING_TIMEOUT_S)
    replies = cast("dict[str, list[dict[str, Any]]] | None", inspect.active_queues()) or {}
    if not replies:
        return Check(
            "workers",
            False,
            f"no worker answered within {PING_TIMEOUT_S:g}s",
            "start workers (krtc-rec worker, or docker-compose up -d worker); queued jobs wait",
        )
    consumed = {q["name"].split(":")[-1] for queues in replies.values() for q in queues}
    missing = [queue for queue in QUEUES if queue not in consumed]
    names = ", ".join(sorted(replies))
    detail = f"{len(replies)} alive ({names}); queues {', '.join(sorted(consumed))}"
    if missing:
        return Check(
            "workers",
            False,
            f"{detail}; nobody consumes {', '.join(missing)}",
            "start a worker on every queue (krtc-rec worker consumes them all by default)",
        )
    return Check("workers", True, detail)


def _queues(redis: Redis, settings: Settings) -> Check:
    lengths = queue_lengths(redis, Keys(settings.redis_prefix))
    detail = ", ".join(f"{queue} {n}" for queue, n in lengths.items())
    backlog = [queue for queue, n in lengths.items() if n > BACKLOG_WARN]
    if backlog:
        return Check(
            "queues",
            False,
            f"{detail}: backlog in {', '.join(backlog)}",
            "add workers (docker-compose up -d --scale worker=N) or find what slows them "
            "(Flower, krtc-rec metrics)",
        )
    return Check("queues", True, detail)


def _reconciler(store: SessionStore, settings: Settings, now: float) -> Check:
    gate = RoundGate(store.redis, store.keys, interval_s=settings.reconcile_interval)
    recent = gate.recent(1)
    limit = 3 * settings.reconcile_interval + 60
    if not recent:
        return Check(
            "reconciler",
            False,
            "no reconcile round has finished yet",
            "start beat (krtc-rec beat, or docker-compose up -d beat) and a worker",
        )
    age = now - recent[0].started
    detail = (
        f"last round began {age:.0f}s ago ({recent[0].sessions} sessions, "
        f"{recent[0].duration_s:.1f}s)"
    )
    if age > limit:
        return Check(
            "reconciler",
            False,
            detail,
            f"rounds should begin every {settings.reconcile_interval:g}s: check beat "
            "(docker-compose logs beat) and the krtc-reconcile queue",
        )
    return Check("reconciler", True, detail)


def _scheduler(store: SessionStore, settings: Settings, now: float) -> Check:
    last = ScheduleStore(store.redis, prefix=store.keys.prefix, clock=store.clock).last_tick()
    limit = 3 * settings.schedule_tick_interval + 30
    if last is None:
        return Check(
            "scheduler",
            False,
            "no schedule tick has run yet",
            "start beat (krtc-rec beat) and a worker: scheduled meetings are not started",
        )
    age = now - last
    detail = f"last tick {age:.0f}s ago"
    if age > limit:
        return Check(
            "scheduler",
            False,
            detail,
            f"ticks should run every {settings.schedule_tick_interval:g}s: check beat and the "
            "krtc-schedule queue (ops/runbooks/schedule-lag.md)",
        )
    return Check("scheduler", True, detail)


def _dead_letters(store: SessionStore) -> Check:
    size = DeadLetterStore(store.redis, keys=store.keys).size()
    if size:
        return Check(
            "dead letters",
            False,
            f"{size} waiting",
            "read them (krtc-rec dlq list), fix the cause, then replay or purge them "
            "(ops/runbooks/dead-letters.md)",
        )
    return Check("dead letters", True, "none")


def _alerts(store: SessionStore, now: float) -> Check:
    alerts = AlertStore(store.redis, keys=store.keys).recent(1000)
    last_hour = [a for a in alerts if now - a.at <= 3600]
    critical = [a for a in last_hour if a.severity.value == "critical"]
    detail = f"{len(last_hour)} in the last hour ({len(critical)} critical)"
    if critical:
        kinds = ", ".join(sorted({a.kind.value for a in critical}))
        return Check(
            "alerts",
            False,
            f"{detail}: {kinds}",
            "read them (krtc-rec alerts) and follow their runbooks in ops/runbooks/",
        )
    return Check("alerts", True, detail)


def _clock(redis: Redis) -> Check:
    skew = RedisClock(redis, wall=time.time).sync()
    detail = f"this host is {skew:+.3f}s off Redis' TIME"
    if abs(skew) > SKEW_LIMIT_S:
        return Check(
            "clock",
            False,
            detail,
            "synchronize this host's clock (chrony/NTP; ops/runbooks/clock-skew.md)",
        )
    return Check("clock", True, detail)
