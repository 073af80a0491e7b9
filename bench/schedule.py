"""How late are scheduled starts? Dispatch lag of 1,000 occurrences due in the same minute.

One real stack: Redis, the sandbox (``krtc-rec sandbox``, ``--latency-ms`` on every call, 50 by
default), one worker (``krtc-rec worker``, threads) and one beat (``krtc-rec beat``: a dispatch
tick every ``KRTC_SCHEDULE_TICK_INTERVAL`` = 1 s). Two scenarios, each with ``--count`` one-off
schedules (1,000 by default) on distinct channels:

* ``burst``: every occurrence due at the same second (the worst case for one minute);
* ``minute``: due times spread evenly over one minute.

For every occurrence it reports, from its due time:

* **dispatched**: the tick recorded the start as queued (session created, ``krtc.start`` sent);
* **session**: the session's creation time;
* **recording**: the worker's start call was answered (the session's ``recording`` phase), which
  includes queueing behind the other starts and the sandbox latency.

Schedules are added a few seconds before the first is due (the worker and beat are up by then).
Everything the bench starts is stopped and every key under its own prefix deleted, even on Ctrl-C
or SIGTERM (the logs stay in a ``bench-schedule-*`` temporary directory). Redis: ``REDIS_URL`` if
set (Sentinels too: ``sentinel://...``), else 127.0.0.1:6379 if it answers, else an embedded
``redis-server``.

Run: ``.venv/bin/python bench/schedule.py`` (``--help`` for the options).
"""

from __future__ import annotations

import sys
from pathlib import Path

# Run as a script: import the project (and bench._support) from the repository's root.
HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]
sys.path.insert(0, str(ROOT))

import argparse  # noqa: E402
import os  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import uuid  # noqa: E402
from datetime import UTC, datetime  # noqa: E402

from bench import _support as support  # noqa: E402
from orchestrator.schedule import Occurrence, Outcome, Scheduler, ScheduleStore  # noqa: E402
from orchestrator.settings import settings_env  # noqa: E402
from orchestrator.stack.local import ChildProcess  # noqa: E402
from orchestrator.state import Phase, SessionStore  # noqa: E402

#: Seconds between adding the last schedule and the first due time.
LEAD_S = 3.0


def run_scenario(
    name: str, spread_s: float, count: int, scheduler: Scheduler, sessions: SessionStore
) -> dict[str, list[float]]:
    """Add ``count`` schedules due over ``spread_s`` seconds; the lags once all recorded."""
    run = uuid.uuid4().hex[:6]
    first_due = time.time() + LEAD_S + count * 0.002
    ids = []
    for n in range(count):
        due = first_due + (spread_s * n / count if spread_s else 0.0)
        added = scheduler.add(
            support.start_body(f"{name}-{run}-{n}"),
            start_at=datetime.fromtimestamp(due, UTC),
            duration_s=3600,
            misfire_grace_s=300,
        )
        ids.append(f"{added.id}-1")
    late = first_due - time.time()
    if late < 0:
        raise RuntimeError(f"adding took too long: the first was due {-late:.1f}s before the end")
    deadline = first_due + spread_s + 120
    pending = set(ids)
    done: dict[str, Occurrence] = {}
    while pending and time.time() < deadline:
        time.sleep(0.5)
        for occurrence_id in list(pending):
            occurrence = scheduler.occurrence(occurrence_id)
            if occurrence.outcome != Outcome.SCHEDULED:
                done[occurrence_id] = occurrence
                pending.discard(occurrence_id)
    if pending:
        raise RuntimeError(f"{len(pending)} occurrences never dispatched")
    not_started = [o.id for o in done.values() if o.outcome != Outcome.STARTED]
    if not_started:
        raise RuntimeError(f"{len(not_started)} occurrences not started, e.g. {not_started[0]}")
    lags: dict[str, list[float]] = {"dispatched": [], "session": [], "recording": []}
    recording_deadline = time.time() + 120
    for occurrence in done.values():
        assert occurrence.session_id and occurrence.dispatched_at is not None
        lags["dispatched"].append(occurrence.dispatched_at - occurrence.start)
        session = sessions.get_or_raise(occurrence.session_id, with_history=True)
        lags["session"].append(session.created_at - occurrence.start)
        while session.phase in (Phase.PENDING, Phase.STARTING):
            if time.time() > recording_deadline:
                raise RuntimeError(f"session {session.id} never recorded")
            time.sleep(0.2)
            session = sessions.get_or_raise(occurrence.session_id, with_history=True)
        reached = next(
            (e.at for e in session.history if e.what.split(";")[0].endswith("-> recording")),
            None,
        )
        if reached is not None:
            lags["recording"].append(reached - occurrence.start)
    return lags


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", "-n", type=int, default=1000, help="occurrences per scenario")
    parser.add_argument("--latency-ms", type=float, default=50.0, help="sandbox API latency")
    parser.add_argument("--concurrency", type=int, default=32, help="worker threads")
    parser.add_argument(
        "--scenarios", default="burst,minute", help="comma-separated subset of burst, minute"
    )
    args = parser.parse_args()

    support.terminate_on_sigterm()
    url, embedded = support.redis_for_bench()
    prefix = f"bench-schedule-{uuid.uuid4().hex[:8]}"
    children: list[ChildProcess] = []
    workdir = Path(tempfile.mkdtemp(prefix="bench-schedule-"))
    try:
        sandbox, endpoint = support.start_sandbox(
            workdir,
            latency_ms=args.latency_ms,
            retention_s=600,
        )
        children.append(sandbox)
        settings = support.bench_settings(
            endpoint,
            url,
            prefix,
            reconcile_interval=600.0,
        )
        worker = ["-m", "orchestrator.cli", "worker", "-c", str(args.concurrency)]
        children.append(support.start_worker("0", settings, workdir, worker))
        beat = ["-m", "orchestrator.cli", "beat", "--schedule-file", str(workdir / "beat")]
        env = {**os.environ, **settings_env(settings)}
        children.append(support.spawn("beat", beat, env, workdir / "beat.log"))
        client = support.connect_redis(url)
        scheduler = Scheduler(settings, store=ScheduleStore(client, prefix=prefix))
        sessions = SessionStore(client, prefix=prefix)
        time.sleep(2.0)  # beat's first ticks
        print(
            f"\n{args.count} one-off schedules per scenario; tick every "
            f"{settings.schedule_tick_interval:g}s; worker threads {args.concurrency}; "
            f"sandbox latency {args.latency_ms:g} ms; {os.cpu_count()} cores\n"
        )
        head = f"{'scenario':<10} {'lag from due time to':<26} {'p50':>7} {'p99':>7} {'max':>7}"
        print(head)
        print("-" * len(head))
        for name in args.scenarios.split(","):
            spread = {"burst": 0.0, "minute": 60.0}[name]
            lags = run_scenario(name, spread, args.count, scheduler, sessions)
            for what, label in (
                ("dispatched", "start queued"),
                ("session", "session created"),
                ("recording", "recording (API answered)"),
            ):
                values = lags[what]
                print(
                    f"{name:<10} {label:<26} {support.percentile(values, 0.5):>6.2f}s "
                    f"{support.percentile(values, 0.99):>6.2f}s {max(values):>6.2f}s"
                )
        print("\nlag = time recorded by the tick or the worker minus the occurrence's due time")
        return 0
    finally:
        support.clean_up(children, url, [prefix], embedded)


if __name__ == "__main__":
    sys.exit(main())
