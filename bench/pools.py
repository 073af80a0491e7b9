"""Which Celery pool should the workers use? Start+stop pairs through a real worker, per pool.

Every run uses the same Redis, the same sandbox (``krtc-rec sandbox`` in its own process, with
``--latency-ms`` of injected latency, 50 by default, on every call) and one worker process:

* ``threads`` with concurrency 32 (the default of ``krtc-rec worker``);
* ``prefork`` with concurrency 2 and 8 (child processes; mind the number of cores);
* ``solo`` (one job at a time, in the worker's main thread);
* ``gevent`` with concurrency 32, only when gevent can be imported (it is not a dependency:
  ``pip install --target DIR gevent`` and run with ``PYTHONPATH=DIR`` to include it).

A run queues ``--pairs`` starts through the producer API (:class:`Recorder`), waits until every
session records, then queues their stops and waits until every session is stopped. It reports:

* throughput: jobs (starts + stops) per second, from the first enqueue of each phase to the last
  phase change the worker recorded in the session histories, summed over both phases;
* latency: enqueue -> ``recording`` of each start, p50 and p99;
* the ideal: one API call per job, so ``concurrency / latency`` jobs per second at most;
* each pool's throughput relative to ``threads``.

Worker start-up is not counted. Everything the bench starts is stopped and every key under its
own prefix deleted, even on Ctrl-C or SIGTERM. Redis: ``REDIS_URL`` if set, else 127.0.0.1:6379
if it answers, else an embedded ``redis-server``.

Run: ``.venv/bin/python bench/pools.py`` (``--help`` for the options).
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
import importlib.util  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import uuid  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402

from bench import _support as support  # noqa: E402
from orchestrator.producer import Recorder  # noqa: E402
from orchestrator.settings import Settings  # noqa: E402
from orchestrator.stack.local import ChildProcess  # noqa: E402
from orchestrator.state import Phase, Session  # noqa: E402

POLL_S = 0.1


@dataclass
class Pool:
    """One worker configuration to measure."""

    name: str
    pool: str
    concurrency: int

    def argv(self) -> list[str]:
        common = [f"--concurrency={self.concurrency}", "--loglevel=INFO"]
        if self.pool == "gevent":
            # krtc-rec worker offers only the pools that need no extra package, so gevent runs
            # through celery's own command (which monkey-patches before anything is imported).
            return [
                "-m",
                "celery",
                "-A",
                "workers.app:app",
                "worker",
                "--pool=gevent",
                f"--queues={','.join(_queues())}",
                "--without-gossip",
                "--without-mingle",
                *common,
            ]
        return ["-m", "orchestrator.cli", "worker", f"--pool={self.pool}", *common]


@dataclass
class Result:
    pool: Pool
    jobs: int = 0
    elapsed_s: float = 0.0
    start_latencies_s: list[float] = field(default_factory=list)
    stop_latencies_s: list[float] = field(default_factory=list)
    error: str | None = None

    @property
    def throughput(self) -> float:
        return self.jobs / self.elapsed_s if self.elapsed_s else 0.0


def _queues() -> list[str]:
    try:
        from orchestrator.tasking.queues import QUEUES  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        from orchestrator.tasking.config import QUEUES  # type: ignore[attr-defined,no-redef,unused-ignore]
    return list(QUEUES)


def _when(session: Session, phase: Phase) -> float:
    """When the session entered ``phase``, from its history (the worker's clock)."""
    marker = f"-> {phase.value}"
    for entry in session.history:
        # "phase starting -> recording; set sid, ...": the phase change comes first.
        change = entry.what.split(";", 1)[0]
        if change.startswith("phase ") and change.endswith(marker):
            return entry.at
    raise RuntimeError(f"session {session.id} has no '{marker}' in its history")


def wait_all(recorder: Recorder, ids: list[str], phase: Phase, timeout_s: float) -> list[Session]:
    """Wait until every session is in ``phase``; a session that fails aborts the run."""
    pending = set(ids)
    done: dict[str, Session] = {}
    deadline = time.monotonic() + timeout_s
    while pending:
        for session_id in list(pending):
            session = recorder.get(session_id)
            if session.phase == phase:
                done[session_id] = recorder.get(session_id, with_history=True)
                pending.discard(session_id)
            elif session.is_finished:
                raise RuntimeError(f"session {session_id} ended {session.phase.value}")
        if not pending:
            break
        if time.monotonic() > deadline:
            raise RuntimeError(f"{len(pending)} sessions not {phase.value} after {timeout_s:g}s")
        time.sleep(POLL_S)
    return [done[i] for i in ids]


def run_pool(pool: Pool, settings: Settings, pairs: int, workdir: Path, timeout_s: float) -> Result:
    result = Result(pool)
    worker = support.start_worker(pool.name, settings, workdir, pool.argv())
    recorder = Recorder(settings)
    try:
        run = uuid.uuid4().hex[:6]
        # Starts: all queued at once, then the wait until every one records.
        enqueued: dict[str, float] = {}
        first = time.time()
        for n in range(pairs):
            session = recorder.start(support.start_body(f"{run}-{n}"))
            enqueued[session.id] = session.created_at
        ids = list(enqueued)
        recording = wait_all(recorder, ids, Phase.RECORDING, timeout_s)
        started = {s.id: _when(s, Phase.RECORDING) for s in recording}
        result.start_latencies_s = [started[i] - enqueued[i] for i in ids]
        start_span = max(started.values()) - first
        # Stops: the same, from the moment the first stop is queued.
        stop_queued: dict[str, float] = {}
        first = time.time()
        for session_id in ids:
            stop_queued[session_id] = time.time()
            recorder.stop(session_id)
        stopped = wait_all(recorder, ids, Phase.STOPPED, timeout_s)
        ended = {s.id: _when(s, Phase.STOPPED) for s in stopped}
        result.stop_latencies_s = [ended[i] - stop_queued[i] for i in ids]
        stop_span = max(ended.values()) - first
        result.jobs = 2 * pairs
        result.elapsed_s = start_span + stop_span
    except RuntimeError as exc:
        result.error = str(exc)
    finally:
        worker.stop()
    return result


def print_table(results: list[Result], latency_ms: float, pairs: int) -> None:
    baseline = next(
        (r.throughput for r in results if r.pool.pool == "threads" and not r.error), 0.0
    )
    print(
        f"\n{pairs} start+stop pairs ({2 * pairs} jobs) per pool, {latency_ms:g} ms API latency, "
        f"{os.cpu_count()} cores\n"
    )
    head = (
        f"{'pool':<12} {'conc':>4} {'jobs/s':>8} {'ideal':>7} {'of ideal':>8} "
        f"{'vs threads':>10} {'start p50':>10} {'start p99':>10} {'stop p50':>9}"
    )
    print(head)
    print("-" * len(head))
    for r in results:
        ideal = r.pool.concurrency / (latency_ms / 1000.0)
        if r.error:
            print(f"{r.pool.name:<12} {r.pool.concurrency:>4}  failed: {r.error}")
            continue
        ratio = f"{r.throughput / baseline:.2f}x" if baseline else "-"
        print(
            f"{r.pool.name:<12} {r.pool.concurrency:>4} {r.throughput:>8.1f} {ideal:>7.0f} "
            f"{r.throughput / ideal:>8.0%} {ratio:>10} "
            f"{support.percentile(r.start_latencies_s, 0.5):>9.2f}s "
            f"{support.percentile(r.start_latencies_s, 0.99):>9.2f}s "
            f"{support.percentile(r.stop_latencies_s, 0.5):>8.2f}s"
        )
    print(
        "\nideal = concurrency / latency (one API call per job); latency = enqueue -> phase "
        "reached, measured from the session histories"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pairs", "-n", type=int, default=200, help="start+stop pairs per pool")
    parser.add_argument("--latency-ms", type=float, default=50.0, help="sandbox API latency")
    parser.add_argument("--threads", type=int, default=32, help="concurrency of threads/gevent")
    parser.add_argument(
        "--pools",
        default="threads,prefork-2,prefork-8,solo,gevent",
        help="comma-separated subset of threads, prefork-2, prefork-8, solo, gevent",
    )
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds per phase at most")
    parser.add_argument("--json", action="store_true", help="also print the results as JSON")
    parser.add_argument("--logs", type=Path, help="keep the worker and sandbox logs in this dir")
    args = parser.parse_args()

    available = {
        "threads": Pool("threads", "threads", args.threads),
        "prefork-2": Pool("prefork", "prefork", 2),
        "prefork-8": Pool("prefork", "prefork", 8),
        "solo": Pool("solo", "solo", 1),
        "gevent": Pool("gevent", "gevent", args.threads),
    }
    wanted = [name.strip() for name in args.pools.split(",") if name.strip()]
    unknown = [name for name in wanted if name not in available]
    if unknown:
        parser.error(f"unknown pools: {', '.join(unknown)}")
    if "gevent" in wanted and importlib.util.find_spec("gevent") is None:
        print("gevent is not installed: skipping the gevent pool", file=sys.stderr)
        wanted.remove("gevent")

    support.terminate_on_sigterm()
    prefix = f"krtc-bench-{uuid.uuid4().hex[:8]}"
    children: list[ChildProcess] = []
    results: list[Result] = []
    url, embedded = support.redis_for_bench()
    with tempfile.TemporaryDirectory(prefix="krtc-bench-queue-") as tmp:
        workdir = args.logs or Path(tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        try:
            sandbox, endpoint = support.start_sandbox(workdir, latency_ms=args.latency_ms)
            children.append(sandbox)
            settings = support.bench_settings(endpoint, url, prefix)
            for name in wanted:
                pool = available[name]
                print(f"running {pool.name} (concurrency {pool.concurrency}) ...", flush=True)
                results.append(run_pool(pool, settings, args.pairs, workdir, args.timeout))
        finally:
            support.clean_up(children, url, [prefix], embedded)
    print_table(results, args.latency_ms, args.pairs)
    if args.json:
        print(
            json.dumps(
                [
                    {
                        "pool": r.pool.pool,
                        "concurrency": r.pool.concurrency,
                        "jobs_per_s": round(r.throughput, 1),
                        "start_p50_s": round(support.percentile(r.start_latencies_s, 0.5), 3),
                        "start_p99_s": round(support.percentile(r.start_latencies_s, 0.99), 3),
                        "error": r.error,
                    }
                    for r in results
                ]
            )
        )
    return 1 if any(r.error for r in results) else 0


if __name__ == "__main__":
    raise SystemExit(main())
