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
Everything the bench starts is stopped and every key under its own prefix deleted. Redis:
``REDIS_URL`` if set, else 127.0.0.1:6379 if it answers, else an embedded ``redis-server``.

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
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import uuid  # noqa: E402
from datetime import UTC, datetime  # noqa: E402
from typing import Any  # noqa: E402

from pydantic import SecretStr  # noqa: E402
from redis import Redis  # noqa: E402

from orchestrator.schedule import Occurrence, Outcome, Scheduler, ScheduleStore  # noqa: E402
from orchestrator.settings import DEFAULT_REDIS_URL, Settings, settings_env  # noqa: E402
from orchestrator.stack.local import ChildProcess  # noqa: E402
from orchestrator.stack.redis_server import EmbeddedRedis, redis_answers  # noqa: E402
from orchestrator.state import Keys, Phase, SessionStore  # noqa: E402

ACCESS_KEY = "AKBENCHSCHEDULE"
SECRET_KEY = "bench-schedule-secret-not-printed"
#: Seconds between adding the last schedule and the first due time.
LEAD_S = 3.0


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))]


def spawn(name: str, argv: list[str], env: dict[str, str], workdir: Path) -> ChildProcess:
    log_path = workdir / f"{name}.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "orchestrator.cli", *argv],
            env=env,
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return ChildProcess(name, process, log_path)


def start_sandbox(latency_ms: float, workdir: Path) -> tuple[ChildProcess, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KRTC_")}
    env |= {"KRTC_ACCESS_KEY": ACCESS_KEY, "KRTC_SECRET_KEY": SECRET_KEY, "PYTHONUNBUFFERED": "1"}
    child = spawn(
        "sandbox",
        ["sandbox", "--port", "0", "--latency-ms", f"{latency_ms:g}", "--start-duration", "0"]
        + ["--stop-duration", "0", "--retention", "600", "--log-level", "warning"],
        env,
        workdir,
    )
    child.wait_for("listening on ", timeout_s=30)
    line = next(x for x in child.log().splitlines() if "listening on " in x)
    return child, line.split("listening on ", 1)[1].strip()


def start_body(cname: str) -> dict[str, Any]:
    return {
        "appId": "bench-app",
        "cname": cname,
        "uid": "rec",
        "mode": "mix",
        "clientRequest": {
            "recordingConfig": {"maxIdleTime": 30},
            "recordingFileConfig": {"avFileType": ["hls"]},
        },
    }


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
            start_body(f"{name}-{run}-{n}"),
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


def delete_prefix(url: str, prefix: str) -> None:
    client = Redis.from_url(url)
    try:
        keys = list(client.scan_iter(match=Keys(prefix).pattern(), count=1000))
        for start in range(0, len(keys), 500):
            client.delete(*keys[start : start + 500])
    finally:
        client.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", "-n", type=int, default=1000, help="occurrences per scenario")
    parser.add_argument("--latency-ms", type=float, default=50.0, help="sandbox API latency")
    parser.add_argument("--concurrency", type=int, default=32, help="worker threads")
    parser.add_argument(
        "--scenarios", default="burst,minute", help="comma-separated subset of burst, minute"
    )
    args = parser.parse_args()

    embedded = None
    url = os.environ.get("REDIS_URL", DEFAULT_REDIS_URL)
    if not redis_answers(url):
        embedded = EmbeddedRedis()
        url = embedded.start()
    prefix = f"bench-schedule-{uuid.uuid4().hex[:8]}"
    children: list[ChildProcess] = []
    workdir = Path(tempfile.mkdtemp(prefix="bench-schedule-"))
    try:
        sandbox, endpoint = start_sandbox(args.latency_ms, workdir)
        children.append(sandbox)
        settings = Settings(
            endpoint=endpoint,
            access_key=ACCESS_KEY,
            secret_key=SecretStr(SECRET_KEY),
            redis_url=url,
            redis_prefix=prefix,
            reconcile_interval=600.0,
        )
        env = {**os.environ, **settings_env(settings)}
        worker = spawn("worker", ["worker", "-c", str(args.concurrency)], env, workdir)
        children.append(worker)
        worker.wait_for("ready.", timeout_s=60)
        beat = spawn("beat", ["beat", "--schedule-file", str(workdir / "beat")], env, workdir)
        children.append(beat)
        client = Redis.from_url(url, decode_responses=True)
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
                    f"{name:<10} {label:<26} {percentile(values, 0.5):>6.2f}s "
                    f"{percentile(values, 0.99):>6.2f}s {max(values):>6.2f}s"
                )
        print("\nlag = time recorded by the tick or the worker minus the occurrence's due time")
        return 0
    finally:
        for child in reversed(children):
            child.stop()
        delete_prefix(url, prefix)
        if embedded is not None:
            embedded.stop()


if __name__ == "__main__":
    sys.exit(main())
