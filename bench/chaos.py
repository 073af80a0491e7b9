"""Chaos soak: N recordings through the producer while faults rain, then the invariants.

It starts its own stack: a ``redis-server`` with AOF (``appendonly yes``) on a free port (so it
can be restarted), ``krtc-rec sandbox`` (its own process, long retention), two ``krtc-rec
worker`` processes (threads pool) and one ``krtc-rec beat``, with short intervals (reconcile
every second) and short timeouts. One worker runs 3 s ahead (``faketime -f +3s``), beat 2 s
behind (``faketime -f -2s``).

For ``--duration`` seconds it drives ``--recordings`` recordings through :class:`Recorder`, one
channel each: start (sometimes twice: the second must return the same session), then stop after
a random time (sometimes at once: before the start is sent). Meanwhile:

* random 5xx answers without effect (sandbox ``error_rate``, status changing over time);
* lost answers of applied calls: ``apply_then_fail`` with ``how="error"`` (a 500) and
  ``how="hang"`` (answered after the client's read timeout);
* duplicate deliveries: copies of queued task messages (LRANGE a queue, LPUSH a copy) and of
  messages in flight (from kombu's unacked hash): the same task id delivered twice;
* worker SIGKILLs: ``kill -9`` of a worker's process group, and a new worker in its place;
* a Redis restart: ``SHUTDOWN NOSAVE`` or SIGKILL, then the same port and directory (AOF);
* the clock skews above, all along.

Then the faults stop, every session's stop is requested (again), and it waits up to ``--settle``
seconds for every session to be final. The channels of orphaned sessions are then emptied (their
users leave; spec D12: only ``maxIdleTime`` bounds a recording whose sid is unknown) and it waits
for those recordings to end. The invariants (``bench/_chaos_checks.py``) are checked against the
sandbox's own records. It prints a summary (recordings, faults injected by kind, invariant
checks with counts) and exits 1 when one is violated, naming the sessions with their history and
what the sandbox saw; 2 when the run itself could not be carried out.

The seed (``--seed``, else random) is printed first: it decides the plan of recordings and
faults, and seeds the sandbox. ``--budget`` bounds the whole run; every loop is bounded.
Everything it starts is stopped, even on Ctrl-C or SIGTERM.

Run: ``.venv/bin/python bench/chaos.py`` (``--help``; about 3 minutes by default).
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
import functools  # noqa: E402
import heapq  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import random  # noqa: E402
import shutil  # noqa: E402
import signal  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import uuid  # noqa: E402
from collections import Counter  # noqa: E402
from collections.abc import Callable  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from typing import Any, cast  # noqa: E402

import requests  # noqa: E402
from redis import Redis  # noqa: E402
from redis.exceptions import RedisError  # noqa: E402

from bench import _support as support  # noqa: E402
from bench._chaos_checks import INVARIANTS, Evidence, Violation, check, was_orphaned  # noqa: E402
from orchestrator.alerts import AlertStore  # noqa: E402
from orchestrator.errors import OrchestratorError  # noqa: E402
from orchestrator.producer import Recorder  # noqa: E402
from orchestrator.settings import Settings, settings_env  # noqa: E402
from orchestrator.stack import EmbeddedRedis  # noqa: E402
from orchestrator.stack.local import ChildProcess  # noqa: E402
from orchestrator.state import Session  # noqa: E402
from orchestrator.state.connection import RedisOptions  # noqa: E402
from orchestrator.tasking.queues import START_QUEUE, STOP_QUEUE  # noqa: E402

APP_ID = "chaos-app"
#: maxIdleTime of the soak's recordings: how long an orphan runs once its channel is empty.
MAX_IDLE_S = 3
WORKER_SKEW = "+3s"
BEAT_SKEW = "-2s"
#: Seconds kept at the end of the budget for the checks and the report.
REPORT_S = 8.0
POLL_S = 0.5


@dataclass
class Planned:
    """One recording of the plan and what became of it on the producer's side."""

    index: int
    cname: str
    start_at: float
    stop_after: float
    start_twice: bool
    session_id: str | None = None
    stop_requested: bool = False
    producer_errors: int = 0


@dataclass
class Tally:
    """What the soak did and saw, for the summary."""

    faults: Counter[str] = field(default_factory=Counter)
    producer: Counter[str] = field(default_factory=Counter)
    events: list[tuple[float, str]] = field(default_factory=list)
    began: float = field(default_factory=time.monotonic)

    def event(self, text: str) -> None:
        """Note a fault (or step) with its time since the soak began."""
        self.events.append((time.monotonic() - self.began, text))
        print(f"  [{time.monotonic() - self.began:6.1f}s] {text}", flush=True)


class Stack:
    """The soak's own Redis, sandbox, workers and beat, and how to hurt them."""

    def __init__(self, workdir: Path, seed: int, skew: bool) -> None:
        self.workdir = workdir
        self.seed = seed
        self.skew = skew
        self.redis_server = EmbeddedRedis()
        self.children: list[ChildProcess] = []
        self.workers: list[ChildProcess | None] = [None, None]
        self.spawned = 0
        self.settings: Settings | None = None
        self.control = ""

    def start(self) -> Settings:
        """Redis, the sandbox, two workers and beat; returns the soak's settings."""
        url = self.redis_server.start().removesuffix("/0") + "/15"
        sandbox, endpoint = support.start_sandbox(
            self.workdir,
            retention_s=3600,
            extra=["--start-duration", "0.3", "--stop-duration", "0.2", "--hang", "4"]
            + ["--seed", str(self.seed)],
        )
        self.children.append(sandbox)
        self.control = endpoint.removesuffix("/cloud") + "/_sandbox"
        self.settings = support.bench_settings(
            endpoint,
            url,
            f"chaos-{uuid.uuid4().hex[:8]}",
            connect_timeout_s=1.0,
            read_timeout_s=1.5,
            redis_connect_timeout_s=1.0,
            redis_socket_timeout_s=2.0,
            visibility_timeout=15,
            retry_backoff_base=0.1,
            retry_backoff_max=0.5,
            reconcile_interval=1.0,
            stuck_after=20.0,
            schedule_tick_interval=1.0,
            worker_concurrency=8,
        )
        for slot in (0, 1):
            self.spawn_worker(slot)
        self.children.append(
            support.spawn(
                "beat",
                ["-m", "orchestrator.cli", "beat", "--schedule-file"]
                + [str(self.workdir / "beat-schedule")],
                self.env(),
                self.workdir / "beat.log",
                wrapper=self.wrapper(BEAT_SKEW),
            )
        )
        for worker in self.workers:
            assert worker is not None
            worker.wait_for("ready.", timeout_s=60)
        return self.settings

    def env(self) -> dict[str, str]:
        assert self.settings is not None
        return {**os.environ, **settings_env(self.settings), "PYTHONUNBUFFERED": "1"}

    def wrapper(self, skew: str) -> list[str]:
        return ["faketime", "-f", skew] if self.skew else []

    def spawn_worker(self, slot: int) -> ChildProcess:
        """A new worker in ``slot`` (slot 1 runs skewed); not waited for."""
        self.spawned += 1
        name = f"worker-{slot}-{self.spawned}"
        argv = ["-m", "orchestrator.cli", "worker", "--concurrency=8", "--loglevel=INFO"]
        argv += [f"--hostname=chaos{slot}-{self.spawned}@%h"]
        child = support.spawn(
            name,
            argv,
            self.env(),
            self.workdir / f"{name}.log",
            wrapper=self.wrapper(WORKER_SKEW) if slot == 1 else [],
        )
        self.children.append(child)
        self.workers[slot] = child
        return child

    def kill_worker(self, slot: int) -> None:
        """SIGKILL the process group of the worker in ``slot`` and start another."""
        worker = self.workers[slot]
        if worker is not None and worker.process.poll() is None:
            os.killpg(worker.process.pid, signal.SIGKILL)
            worker.process.wait(10)
        self.spawn_worker(slot)

    def restart_redis(self, how: str, down_s: float) -> None:
        """Stop Redis (``nosave``: SHUTDOWN NOSAVE; ``kill``: SIGKILL), wait, start it again."""
        if how == "kill":
            self.redis_server.kill()
        else:
            self.redis_server.shutdown_nosave()
        time.sleep(down_s)
        self.redis_server.start()

    def sandbox(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        """Call the sandbox's control API."""
        response = requests.request(method, f"{self.control}/{path}", json=body, timeout=10)
        response.raise_for_status()
        return response.json()

    def stop(self) -> None:
        """Stop every child (the last started first), then Redis (and remove its files)."""
        try:
            for child in reversed(self.children):
                child.stop()
        finally:
            self.redis_server.stop()


# -- faults ------------------------------------------------------------------------------------


def duplicate_messages(redis: Redis, prefix: str, rng: random.Random, most: int) -> int:
    """Push copies of queued (or in-flight) start and stop messages, and of start lane entries;
    how many were pushed.

    A copy keeps the task id (the same task delivered twice) with a delivery tag of its own, as
    a message restored after the visibility timeout while its first delivery still runs.
    """
    celery = f"{prefix}:celery:"
    found: list[tuple[str, dict[str, Any]]] = []
    for queue in (START_QUEUE, STOP_QUEUE):
        for raw in cast("list[bytes]", redis.lrange(f"{celery}{queue}", 0, 9)):
            found.append((queue, json.loads(raw)))
    for raw in cast("list[bytes]", redis.hvals(f"{celery}unacked")):
        message, _exchange, routing_key = json.loads(raw)
        if routing_key in (START_QUEUE, STOP_QUEUE):
            found.append((routing_key, message))
    # Start lane entries, waiting or in flight (a delivery is "{take}:{n}|{entry}").
    lane = f"{prefix}:lane:start:"
    entries = [e.decode() for e in cast("list[bytes]", redis.lrange(f"{lane}ready", 0, 9))]
    entries += [
        m.decode().split("|", 1)[1]
        for m in cast("list[bytes]", redis.zrange(f"{lane}inflight", 0, 9))
    ]
    candidates: list[tuple[str, dict[str, Any] | str]] = [*found, *(("", e) for e in entries)]
    pushed = 0
    for queue, message in rng.sample(candidates, min(most, len(candidates))):
        if isinstance(message, str):
            redis.lpush(f"{lane}ready", message)
        else:
            message["properties"]["delivery_tag"] = str(uuid.uuid4())
            redis.lpush(f"{celery}{queue}", json.dumps(message))
        pushed += 1
    return pushed


def lost_answer(rng: random.Random) -> dict[str, Any]:
    """One ``apply_then_fail`` entry: a start or a stop, answered 500 or after the timeout."""
    return {"action": rng.choice(["start", "stop"]), "how": rng.choice(["error", "hang"])}


# -- the run -----------------------------------------------------------------------------------


def plan(count: int, duration_s: float, rng: random.Random, run: str) -> list[Planned]:
    """When each recording starts and how long until its stop is requested."""
    window = max(1.0, duration_s * 0.8)
    out = []
    for n in range(count):
        stop_after = 0.0 if rng.random() < 0.15 else rng.uniform(0.5, 5.0)
        out.append(
            Planned(
                index=n,
                cname=f"chaos-{run}-{n}",
                start_at=window * n / max(1, count),
                stop_after=stop_after,
                start_twice=rng.random() < 0.15,
            )
        )
    return out


def producer_call(item: Planned, tally: Tally, what: str, call: Callable[[], object]) -> bool:
    """Run a producer call; False (counted) when Redis is away: the caller tries again."""
    try:
        call()
        return True
    except OrchestratorError as exc:
        item.producer_errors += 1
        tally.producer[f"{what} refused ({type(exc).__name__})"] += 1
        return False


def drive(
    stack: Stack,
    recorder: Recorder,
    items: list[Planned],
    args: argparse.Namespace,
    rng: random.Random,
    tally: Tally,
    deadline: float,
) -> None:
    """Start and stop the planned recordings while the faults run, for ``args.duration`` s."""
    assert stack.settings is not None
    prefix = stack.settings.redis_prefix
    # Raw bytes: the copies of task messages must be byte for byte the originals.
    broker = support.connect_redis(
        stack.settings.redis_url,
        RedisOptions.from_settings(stack.settings).with_timeouts(2.0),
        decode_responses=False,
    )
    duration = args.duration
    began = time.monotonic()
    # (offset s, order, kind, payload)
    events: list[tuple[float, int, str, Any]] = []
    order = iter(range(10**9))

    def at(offset: float, kind: str, payload: Any = None) -> None:
        heapq.heappush(events, (offset, next(order), kind, payload))

    for item in items:
        at(item.start_at, "start", item)
    status_every = 5.0
    for n in range(int(duration / status_every) + 1):
        at(n * status_every, "error_rate", None)
    lost_every = duration / max(1, args.lost_answers)
    for n in range(args.lost_answers):
        at(1.0 + n * lost_every + rng.uniform(0, lost_every / 2), "lost_answer", None)
    t = 1.0
    while t < duration:
        at(t, "duplicate", None)
        t += rng.uniform(0.7, 2.0)
    for n in range(args.worker_kills):
        at(duration * (0.3 + 0.4 * n / max(1, args.worker_kills - 1)), "kill_worker", n % 2)
    for n in range(args.redis_restarts):
        at(duration * (0.45 + 0.3 * n / max(1, args.redis_restarts)), "restart_redis", n)
    at(duration, "end", None)

    while events:
        offset, _, kind, payload = heapq.heappop(events)
        now = time.monotonic() - began
        if now < offset:
            time.sleep(offset - now)
        if time.monotonic() > deadline:
            tally.event("budget reached during the drive: ending it early")
            break
        if kind == "end":
            break
        if kind == "start":
            item = payload
            body = support.start_body(item.cname, app_id=APP_ID, max_idle_s=MAX_IDLE_S)
            key = f"chaos-{item.cname}"

            def start(item: Planned = item, body: dict[str, Any] = body, key: str = key) -> None:
                session = recorder.start(body, idempotency_key=key)
                if item.session_id is not None and session.id != item.session_id:
                    tally.producer["start twice gave another session"] += 1
                item.session_id = session.id

            if producer_call(item, tally, "start", start):
                tally.producer["start"] += 1
                if item.start_twice:
                    item.start_twice = False
                    at(now + rng.uniform(0.0, 1.0), "start", item)
                    tally.producer["start again (same body)"] += 1
                elif not item.stop_requested:
                    at(now + item.stop_after, "stop", item)
            else:
                at(now + POLL_S, "start", item)
        elif kind == "stop":
            item = payload
            assert item.session_id is not None
            sid = item.session_id
            if producer_call(item, tally, "stop", functools.partial(recorder.stop, sid)):
                item.stop_requested = True
                tally.producer["stop"] += 1
            else:
                at(now + POLL_S, "stop", item)
        elif kind == "error_rate":
            status = rng.choice([500, 502, 503, 504])
            stack.sandbox("POST", "faults", {"error_rate": args.error_rate, "error_status": status})
            tally.faults["5xx rate changes"] += 1
        elif kind == "lost_answer":
            entry = lost_answer(rng)
            stack.sandbox("POST", "faults", {"apply_then_fail": [entry]})
            tally.faults[f"lost answer queued: {entry['action']} {entry['how']}"] += 1
        elif kind == "duplicate":
            try:
                pushed = duplicate_messages(broker, prefix, rng, 2)
            except RedisError:
                pushed = 0  # Redis is restarting
            tally.faults["duplicate deliveries pushed"] += pushed
        elif kind == "kill_worker":
            stack.kill_worker(payload)
            tally.faults["worker SIGKILLs"] += 1
            tally.event(f"kill -9 worker slot {payload}; a new one starts")
        elif kind == "restart_redis":
            how = rng.choice(["nosave", "kill"])
            tally.event(f"Redis restart ({'SHUTDOWN NOSAVE' if how == 'nosave' else 'SIGKILL'})")
            stack.restart_redis(how, down_s=1.0)
            tally.faults[f"Redis restarts ({how})"] += 1
            tally.event("Redis is back")
    broker.close()


def finish(
    stack: Stack, recorder: Recorder, items: list[Planned], tally: Tally, deadline: float
) -> None:
    """Stop the faults, request every stop, and wait for the sessions to settle."""
    stack.sandbox("DELETE", "faults")
    tally.event("faults stopped; every stop requested")
    for item in items:
        while item.session_id is None and time.monotonic() < deadline - REPORT_S:
            sid_holder = item

            def start(item: Planned = sid_holder) -> None:
                body = support.start_body(item.cname, app_id=APP_ID, max_idle_s=MAX_IDLE_S)
                item.session_id = recorder.start(body, idempotency_key=f"chaos-{item.cname}").id

            if not producer_call(item, tally, "start", start):
                time.sleep(POLL_S)
        while item.session_id is not None and time.monotonic() < deadline - REPORT_S:
            sid = item.session_id
            if producer_call(item, tally, "stop", functools.partial(recorder.stop, sid)):
                item.stop_requested = True
                break
            time.sleep(POLL_S)
    while time.monotonic() < deadline - REPORT_S:
        if all(recorder.get(i.session_id).is_finished for i in items if i.session_id):
            tally.event("every session is final")
            return
        time.sleep(POLL_S)
    tally.event("settle time over: some sessions are not final")


def end_orphans(stack: Stack, sessions: dict[str, Session], tally: Tally, deadline: float) -> None:
    """Empty the channels of orphaned sessions and wait for their recordings to end idle."""
    orphans = [cname for cname, s in sessions.items() if was_orphaned(s)]
    if not orphans:
        return
    for cname in orphans:
        stack.sandbox("POST", "channels", {"appId": APP_ID, "cname": cname, "users": []})
    tally.event(f"{len(orphans)} orphan channel(s) emptied: their recordings end after idle")
    until = min(deadline - REPORT_S / 2, time.monotonic() + MAX_IDLE_S + 3.0)
    while time.monotonic() < until:
        active = stack.sandbox("GET", f"recordings?appId={APP_ID}&active=true")["recordings"]
        if not any(r["cname"] in orphans for r in active):
            return
        time.sleep(POLL_S)


def gather(stack: Stack, recorder: Recorder, items: list[Planned]) -> dict[str, Session]:
    """cname -> session with history, for every recording that got a session."""
    return {i.cname: recorder.get(i.session_id, with_history=True) for i in items if i.session_id}


def alert_kinds(recorder: Recorder, sessions: dict[str, Session]) -> dict[str, set[str]]:
    """session id -> the kinds of alert raised for it (from the durable per-session markers)."""
    store = AlertStore(recorder.store.redis, keys=recorder.store.keys)
    kinds = ("orphaned", "abnormal_exit", "lost", "stray_recording", "start_failed", "stuck")
    return {s.id: {k for k in kinds if store.is_raised(s.id, k)} for s in sessions.values()}


# -- the report --------------------------------------------------------------------------------


def report(
    seed: int,
    items: list[Planned],
    evidence: Evidence,
    violations: list[Violation],
    tally: Tally,
    stats: dict[str, Any],
    dead_letters: int,
) -> None:
    """Print the summary table, and the sessions involved in a violation with their history."""
    sessions = evidence.sessions
    phases = Counter(s.phase.value for s in sessions.values())
    orphaned = sum(1 for s in sessions.values() if was_orphaned(s))
    outcomes: Counter[str] = Counter()
    for action, counts in stats.get("byAction", {}).items():
        for outcome, n in counts.items():
            outcomes[f"{action.removeprefix('CloudRecording')} {outcome}"] += n
    took = time.monotonic() - tally.began
    print(f"\nchaos soak: seed {seed}, {took:.0f}s, {os.cpu_count()} cores")
    print("\nrecordings")
    print(f"  {'planned':<44} {len(items):>6}")
    print(f"  {'sessions created':<44} {len(sessions):>6}")
    for phase, n in sorted(phases.items()):
        print(f"  {'  final phase ' + phase:<44} {n:>6}")
    print(f"  {'  ever orphaned':<44} {orphaned:>6}")
    orphan_cnames = {c for c, s in sessions.items() if was_orphaned(s)}
    still = sum(1 for r in evidence.recordings_mid if r["active"] and r["cname"] in orphan_cnames)
    print(f"  {'  orphan recordings running after settle':<44} {still:>6}  (spec D12: ended by")
    print(f"  {'':<44} {'':>6}   emptying their channels)")
    print(f"  {'sandbox recordings started':<44} {len(evidence.recordings_end):>6}")
    print(f"  {'dead letters':<44} {dead_letters:>6}")
    for what, n in sorted(tally.producer.items()):
        print(f"  {'producer ' + what:<44} {n:>6}")
    print("\nfaults injected")
    for what, n in sorted(tally.faults.items()):
        if what == "skewed":
            continue
        print(f"  {what:<44} {n:>6}")
    for key in sorted(outcomes):
        if any(w in key for w in ("injected", "applied_then")):
            print(f"  {'sandbox ' + key:<44} {outcomes[key]:>6}")
    print(f"  {'skewed processes (beat -2s, worker +3s)':<44} {tally.faults['skewed']:>6}")
    print("\ninvariants")
    counts = Counter(v.invariant for v in violations)
    for name, meaning in INVARIANTS.items():
        verdict = "ok" if not counts[name] else "VIOLATED"
        print(f"  {name:<24} {counts[name]:>4}  {verdict:<8}  {meaning}")
    if not violations:
        print("\nall invariants hold")
        return
    print(f"\n{len(violations)} violation(s):")
    for v in violations:
        print(f"  {v.invariant}: session {v.session_id or '-'}: {v.detail}")
    by_id = {s.id: (cname, s) for cname, s in sessions.items()}
    for session_id in sorted({v.session_id for v in violations if v.session_id}):
        cname, session = by_id[session_id]
        print(f"\nsession {session_id} ({cname}): phase {session.phase.value}, sid {session.sid}, "
              f"desired {session.desired.value}, attempts {session.attempts}, alerts "
              f"{sorted(evidence.alerts.get(session_id, set()))}")  # fmt: skip
        origin = session.created_at
        for entry in session.history:
            print(f"  +{entry.at - origin:7.3f}s {entry.source.value:<8} {entry.what}"
                  f"{' (' + entry.why + ')' if entry.why else ''}")  # fmt: skip
        for rec in evidence.recordings_end:
            if rec["cname"] == cname:
                print(f"  sandbox: sid {rec['sid']} started +{rec['startedAt'] - origin:.3f}s, "
                      f"status {rec['status']}, stop requested "
                      f"{_rel(rec['stopRequestedAt'], origin)}, ended "
                      f"{_rel(rec['endedAt'], origin)} ({rec['endReason']})")  # fmt: skip
    print("\nfault timeline:")
    for offset, text in tally.events:
        print(f"  {offset:6.1f}s {text}")


def _rel(at: float | None, origin: float) -> str:
    return "-" if at is None else f"+{at - origin:.3f}s"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--recordings", "-n", type=int, default=80, help="recordings to drive")
    parser.add_argument("--duration", type=float, default=90.0, help="seconds of faults")
    parser.add_argument("--settle", type=float, default=60.0, help="seconds to settle at most")
    parser.add_argument("--budget", type=float, default=240.0, help="seconds for the whole run")
    parser.add_argument("--seed", type=int, help="seed (default: random)")
    parser.add_argument("--error-rate", type=float, default=0.08, help="share of calls: 5xx")
    parser.add_argument("--lost-answers", type=int, default=12, help="apply_then_fail entries")
    parser.add_argument("--worker-kills", type=int, default=2, help="worker SIGKILLs")
    parser.add_argument("--redis-restarts", type=int, default=1, help="Redis restarts")
    parser.add_argument("--no-skew", action="store_true", help="run beat and workers unskewed")
    parser.add_argument("--logs", type=Path, help="keep the logs in this directory")
    args = parser.parse_args(argv)
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(2**31)
    print(f"chaos soak: seed {seed} (rerun with --seed {seed})", flush=True)
    if not args.no_skew and shutil.which("faketime") is None:
        print("faketime is not installed (apt-get install faketime), or pass --no-skew")
        return 2
    rng = random.Random(seed)
    support.terminate_on_sigterm()
    tally = Tally()
    deadline = tally.began + args.budget
    with tempfile.TemporaryDirectory(prefix="krtc-chaos-") as tmp:
        workdir = args.logs or Path(tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        stack = Stack(workdir, seed, skew=not args.no_skew)
        try:
            settings = stack.start()
            tally.faults["skewed"] = 0 if args.no_skew else 2
            tally.event(f"stack up: Redis {settings.redis_url}, sandbox, 2 workers, beat")
            recorder = Recorder(settings)
            items = plan(args.recordings, args.duration, rng, uuid.uuid4().hex[:6])
            settle_by = min(deadline, time.monotonic() + args.duration + args.settle)
            drive(stack, recorder, items, args, rng, tally, deadline)
            finish(stack, recorder, items, tally, settle_by)
            mid = stack.sandbox("GET", f"recordings?appId={APP_ID}")["recordings"]
            sessions = gather(stack, recorder, items)
            end_orphans(stack, sessions, tally, deadline)
            sessions = gather(stack, recorder, items)
            evidence = Evidence(
                sessions=sessions,
                recordings_mid=mid,
                recordings_end=stack.sandbox("GET", f"recordings?appId={APP_ID}")["recordings"],
                alerts=alert_kinds(recorder, sessions),
            )
            violations = check(evidence)
            missing = [i.cname for i in items if i.session_id is None]
            violations += [Violation("unsettled", None, f"{c}: no session") for c in missing]
            report(
                seed,
                items,
                evidence,
                violations,
                tally,
                stack.sandbox("GET", "stats"),
                len(recorder.dead_letters.list()),
            )
            if args.logs is None and violations:
                print(f"(logs: rerun with --logs DIR --seed {seed} to keep them)")
            return 1 if violations else 0
        except KeyboardInterrupt:
            print("interrupted: stopping everything", flush=True)
            return 130
        except Exception as exc:  # the run could not be carried out
            print(f"the soak could not run: {type(exc).__name__}: {exc}", flush=True)
            return 2
        finally:
            stack.stop()


if __name__ == "__main__":
    raise SystemExit(main())
