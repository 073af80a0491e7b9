"""How long does one reconcile round take for N active sessions? Workers and foreground.

The target (issue 5): on the project's 2-core machine, 10,000 active sessions are reconciled
within one 30 s interval, against the sandbox with 20 ms of latency on every call.

Setup, for the largest N: the sandbox (``krtc-rec sandbox`` in its own process) starts N real
recordings through its public, signed API (many at once, before any latency is injected), and
the bench stores N sessions directly in the session store (phase ``recording``, with those sids).
Then the sandbox gets ``--latency-ms`` of latency (20 by default) and, for each N (smallest
first; sessions are added as N grows):

* **workers**: the task beat sends (``krtc.reconcile``) goes to ``--workers`` real
  ``krtc-rec worker`` processes; it fans the round out in batches and the round's duration is
  read from :meth:`RoundGate.recent` (from the fan-out's begin to the last batch's report).
  ``--rounds`` rounds per N: the first one also stores every recording's file list, the later
  ones are the steady state.
* **foreground**: :func:`run_once` in this process (what ``krtc-rec reconcile --once`` does).

For each it prints the seconds, the queries per second achieved, the ideal
(queries in flight / latency), the share of it achieved and the CPU per query of the processes
that reconciled: the worker processes (user + system, children included, read from ``/proc``
through psutil as ``bench/peers.py`` does) for a round through workers, this process for the
foreground one; and the sandbox's CPU per query, since it shares the machine's cores. Worker
start-up is not counted. ``--profile FILE`` runs the foreground rounds under cProfile.
Everything the bench starts is stopped and every key under its own prefix deleted, even on
Ctrl-C or SIGTERM. Redis: ``REDIS_URL`` if set, else 127.0.0.1:6379 if it answers, else an
embedded ``redis-server``.

Run: ``.venv/bin/python bench/reconcile.py`` (``--help`` for the options).
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
import json  # noqa: E402
import os  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import uuid  # noqa: E402
from concurrent.futures import ThreadPoolExecutor  # noqa: E402
from dataclasses import asdict, dataclass  # noqa: E402
from typing import Any  # noqa: E402

import requests  # noqa: E402

from bench import _support as support  # noqa: E402
from orchestrator.jobs.context import JobContext  # noqa: E402
from orchestrator.krtc.client import KrtcClient  # noqa: E402
from orchestrator.krtc.enums import Mode  # noqa: E402
from orchestrator.reconcile.rounds import RoundGate, RoundSummary  # noqa: E402
from orchestrator.reconcile.runner import run_once  # noqa: E402
from orchestrator.settings import Settings  # noqa: E402
from orchestrator.stack.local import ChildProcess  # noqa: E402
from orchestrator.state import Phase, SessionStore, Source  # noqa: E402
from orchestrator.tasking.queues import send_task  # noqa: E402
from workers.app import create_app  # noqa: E402

APP_ID = "bench-app"
#: Target of issue 5: 10,000 sessions within one default interval.
TARGET_SESSIONS = 10_000
TARGET_S = 30.0
#: Threads that start recordings and store sessions during the setup.
SETUP_THREADS = 32
#: maxIdleTime of the recordings: they must outlive the whole bench.
MAX_IDLE_S = 3600


@dataclass
class Run:
    """One measured round."""

    sessions: int
    mode: str
    in_flight: int
    seconds: float
    queried: int
    changes: int
    latency_ms: float
    #: CPU seconds the reconciling processes used during the round.
    cpu_s: float = 0.0
    #: CPU seconds the sandbox used during the round (it shares the machine's cores).
    sandbox_cpu_s: float = 0.0

    @property
    def cpu_ms_per_query(self) -> float:
        return 1000.0 * self.cpu_s / self.queried if self.queried else float("nan")

    @property
    def sandbox_ms_per_query(self) -> float:
        return 1000.0 * self.sandbox_cpu_s / self.queried if self.queried else float("nan")

    @property
    def qps(self) -> float:
        return self.queried / self.seconds if self.seconds else 0.0

    @property
    def ideal_qps(self) -> float:
        return self.in_flight / (self.latency_ms / 1000.0)


def body(cname: str) -> dict[str, Any]:
    """The start request of every recording: idle long enough to outlive the bench."""
    return support.start_body(cname, app_id=APP_ID, max_idle_s=MAX_IDLE_S)


def start_recordings(settings: Settings, count: int, run: str) -> list[tuple[str, str]]:
    """Start ``count`` recordings through the signed API, many at once: ``(cname, sid)``."""
    client = KrtcClient(settings)
    cnames = [f"{run}-{n}" for n in range(count)]
    try:
        with ThreadPoolExecutor(SETUP_THREADS) as pool:
            sids = list(pool.map(lambda c: client.start(body(c)).sid, cnames))
    finally:
        client.close()
    return [(c, str(s)) for c, s in zip(cnames, sids, strict=True)]


def store_sessions(store: SessionStore, recordings: list[tuple[str, str]]) -> None:
    """A ``recording`` session per recording, as a worker's start would have left it."""

    def one(item: tuple[str, str]) -> None:
        cname, sid = item
        session = store.create(
            app_id=APP_ID, cname=cname, uid="rec", mode=Mode.MIX, request=body(cname)
        ).session
        store.transition(
            session.id,
            to=Phase.RECORDING,
            sid=sid,
            last_status=5,
            why="bench: started through the API",
            source=Source.TASK,
        )

    with ThreadPoolExecutor(SETUP_THREADS) as pool:
        list(pool.map(one, recordings))


def round_through_workers(
    settings: Settings, store: SessionStore, gate: RoundGate, timeout_s: float
) -> RoundSummary:
    """Send beat's task and wait for the round it begins to close."""
    app = create_app(settings, with_tasks=False)
    before = {r.id for r in gate.recent(5)}
    # The gate spaces rounds by most of an interval after the last one began; rounds here are
    # back to back, so the spacing is lifted (the previous round has closed).
    store.redis.delete(store.keys.reconcile_spacing())
    send_task(app, "krtc.reconcile", [])
    # Nothing else begins rounds under the bench's prefix: the first new one is this task's.
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for summary in gate.recent(5):
            if summary.id not in before:
                return summary
        time.sleep(0.05)
    raise RuntimeError(f"no round finished within {timeout_s:g}s")


def foreground_round(ctx: JobContext, args: argparse.Namespace) -> tuple[list[Any], float]:
    """``run_once`` in this process, under cProfile with ``--profile`` (every thread)."""
    if args.profile is None:
        return run_once(ctx, concurrency=args.foreground_concurrency)
    import cProfile
    import threading

    profiles: list[cProfile.Profile] = []

    def profile_thread(*_: Any) -> None:
        # Called first in every new thread: profile it from there on.
        sys.setprofile(None)
        profile = cProfile.Profile()
        profiles.append(profile)
        profile.enable()

    main_profile = cProfile.Profile()
    threading.setprofile(profile_thread)
    main_profile.enable()
    try:
        return run_once(ctx, concurrency=args.foreground_concurrency)
    finally:
        main_profile.disable()
        threading.setprofile(None)
        import pstats

        stats = pstats.Stats(main_profile)
        for profile in profiles:
            profile.disable()
            stats.add(profile)
        stats.dump_stats(str(args.profile))


def print_table(runs: list[Run], args: argparse.Namespace) -> None:
    print(
        f"\nreconcile rounds: {args.latency_ms:g} ms API latency, {os.cpu_count()} cores, "
        f"{args.workers} worker process(es) x {args.concurrency} threads, batches of "
        f"{args.batch_size}\n"
    )
    head = (
        f"{'sessions':>8} {'mode':<14} {'in flight':>9} {'seconds':>8} {'queries/s':>10} "
        f"{'ideal':>7} {'of ideal':>8} {'CPU/query':>10} {'sandbox':>10} {'< 30 s':>6}"
    )
    print(head)
    print("-" * len(head))
    for r in runs:
        within = "yes" if r.seconds * TARGET_SESSIONS / r.sessions <= TARGET_S else "no"
        print(
            f"{r.sessions:>8} {r.mode:<14} {r.in_flight:>9} {r.seconds:>8.2f} {r.qps:>10.0f} "
            f"{r.ideal_qps:>7.0f} {r.qps / r.ideal_qps:>8.0%} "
            f"{r.cpu_ms_per_query:>7.2f} ms {r.sandbox_ms_per_query:>7.2f} ms {within:>6}"
        )
    print(
        "\nin flight = queries that can be under way at once; ideal = in flight / latency;\n"
        "CPU/query = CPU of the worker processes (children included) or, in the foreground,\n"
        "of this process, during the round, per query; sandbox = the sandbox's CPU per query\n"
        "(it shares the cores);\n"
        "'< 30 s': would 10,000 sessions fit in a 30 s interval at this rate"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--sessions", "-n", default="1000,10000", help="comma-separated numbers of sessions"
    )
    parser.add_argument("--latency-ms", type=float, default=20.0, help="sandbox API latency")
    parser.add_argument("--workers", type=int, default=1, help="worker processes")
    parser.add_argument("--concurrency", type=int, default=32, help="threads per worker")
    parser.add_argument("--batch-size", type=int, default=50, help="KRTC_RECONCILE_BATCH_SIZE")
    parser.add_argument(
        "--batch-concurrency",
        type=int,
        default=None,
        help="KRTC_RECONCILE_BATCH_CONCURRENCY: queries in flight per batch task (default: the "
        "setting's default; 1 is the behaviour before batches were queried concurrently)",
    )
    parser.add_argument("--rounds", type=int, default=2, help="rounds through workers per N")
    parser.add_argument(
        "--foreground-concurrency", type=int, default=16, help="threads of run_once (0: skip it)"
    )
    parser.add_argument("--timeout", type=float, default=180.0, help="seconds per round at most")
    parser.add_argument("--json", action="store_true", help="also print the results as JSON")
    parser.add_argument("--logs", type=Path, help="keep the worker and sandbox logs in this dir")
    parser.add_argument(
        "--profile",
        type=Path,
        help="run the foreground rounds under cProfile and write the stats to this file (the "
        "last N's round; read it with python -m pstats)",
    )
    args = parser.parse_args()
    sizes = sorted({int(x) for x in args.sessions.split(",") if x.strip()})

    support.terminate_on_sigterm()
    prefix = f"krtc-bench-{uuid.uuid4().hex[:8]}"
    children: list[ChildProcess] = []
    runs: list[Run] = []
    bad: list[Run] = []
    url, embedded = support.redis_for_bench()
    with tempfile.TemporaryDirectory(prefix="krtc-bench-reconcile-") as tmp:
        workdir = args.logs or Path(tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        try:
            # No latency yet: the setup starts every recording first.
            sandbox, endpoint = support.start_sandbox(workdir, retention_s=3600)
            children.append(sandbox)
            extra: dict[str, Any] = {}
            if args.batch_concurrency is not None:
                extra["reconcile_batch_concurrency"] = args.batch_concurrency
            settings = support.bench_settings(
                endpoint,
                url,
                prefix,
                reconcile_interval=1.0,
                reconcile_batch_size=args.batch_size,
                # One connection per query in flight, as the docs advise.
                http_pool_size=max(64, args.concurrency * (args.batch_concurrency or 1)),
                **extra,
            )
            control = endpoint.removesuffix("/cloud") + "/_sandbox"
            run = uuid.uuid4().hex[:6]

            began = time.monotonic()
            recordings = start_recordings(settings, max(sizes), run)
            print(
                f"started {len(recordings)} recordings in the sandbox in "
                f"{time.monotonic() - began:.1f}s",
                flush=True,
            )
            requests.post(f"{control}/faults", json={"latency_ms": args.latency_ms}, timeout=10)
            support.start_workers(
                args.workers,
                settings,
                workdir,
                children,
                concurrency=args.concurrency,
                hostname="bench",
            )

            store = SessionStore(support.connect_redis(url), prefix=prefix)
            gate = RoundGate(store.redis, store.keys, interval_s=settings.reconcile_interval)
            ctx = JobContext.from_settings(settings)
            ctx.enqueue = functools.partial(send_task, create_app(settings, with_tasks=False))
            stored = 0
            worker_pids = [c.process.pid for c in children[1:]]
            sandbox_pid = [sandbox.process.pid]
            threads = args.workers * args.concurrency
            per_batch = settings.reconcile_batch_concurrency
            for size in sizes:
                began = time.monotonic()
                store_sessions(store, recordings[stored:size])
                stored = size
                print(
                    f"{size} sessions stored ({time.monotonic() - began:.1f}s); rounds ...",
                    flush=True,
                )
                for number in range(args.rounds):
                    cpu_before = support.tree_cpu_s(worker_pids)
                    sandbox_before = support.tree_cpu_s(sandbox_pid)
                    summary = round_through_workers(settings, store, gate, args.timeout)
                    cpu_s = support.tree_cpu_s(worker_pids) - cpu_before
                    sandbox_s = support.tree_cpu_s(sandbox_pid) - sandbox_before
                    mode = "workers" + (" (1st)" if number == 0 else "")
                    runs.append(
                        Run(
                            size,
                            mode,
                            min(threads, -(-size // args.batch_size))
                            * min(per_batch, args.batch_size),
                            summary.duration_s,
                            summary.queried,
                            summary.changes,
                            args.latency_ms,
                            cpu_s,
                            sandbox_s,
                        )
                    )
                    print(
                        f"  {mode}: {summary.duration_s:.2f}s, "
                        f"{runs[-1].cpu_ms_per_query:.2f} ms CPU/query",
                        flush=True,
                    )
                if args.foreground_concurrency:
                    cpu_before = support.tree_cpu_s([os.getpid()])
                    sandbox_before = support.tree_cpu_s(sandbox_pid)
                    outcomes, seconds = foreground_round(ctx, args)
                    cpu_s = support.tree_cpu_s([os.getpid()]) - cpu_before
                    sandbox_s = support.tree_cpu_s(sandbox_pid) - sandbox_before
                    runs.append(
                        Run(
                            size,
                            "foreground",
                            min(args.foreground_concurrency, size),
                            seconds,
                            sum(o.queried for o in outcomes),
                            sum(len(o.changes) for o in outcomes),
                            args.latency_ms,
                            cpu_s,
                            sandbox_s,
                        )
                    )
                    print(
                        f"  foreground: {seconds:.2f}s, "
                        f"{runs[-1].cpu_ms_per_query:.2f} ms CPU/query",
                        flush=True,
                    )
            bad = [r for r in runs if r.queried != r.sessions or r.changes]
            ctx.client.close()
        finally:
            support.clean_up(children, url, [prefix], embedded)
    print_table(runs, args)
    for r in bad:
        print(f"warning: {r.mode} at {r.sessions}: {r.queried} queried, {r.changes} changes")
    if args.json:
        print(
            json.dumps(
                [
                    asdict(r)
                    | {
                        "qps": round(r.qps, 1),
                        "cpu_ms_per_query": round(r.cpu_ms_per_query, 3),
                        "sandbox_ms_per_query": round(r.sandbox_ms_per_query, 3),
                    }
                    for r in runs
                ]
            )
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
