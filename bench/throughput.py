"""Producer and end-to-end throughput, each against a bare baseline measured in the same run.

(a) **producer**: ``Recorder.start`` of distinct valid bodies (validate, store the session with
    its Lua script, queue ``krtc.start``), from one thread and from ``--threads`` threads, vs a
    bare Celery app on the same Redis (broker URL only, a no-op task, no result backend) doing
    ``.delay()`` from as many threads. No worker runs: this is the enqueue rate. Everything
    queued is deleted afterwards. Target: at least 0.67x the bare rate.

(b) **end-to-end**: ``--starts`` starts (2,000) through the producer, Redis and ``--workers``
    ``krtc-rec worker`` processes (threads pool, ``--concurrency`` threads each) against
    ``krtc-rec sandbox`` with ``--latency-ms`` (50) on every call, timed from the first enqueue
    until every session is ``recording`` (the last ``phase_since`` the workers wrote), vs the
    same number of signed start calls made by a bare ``ThreadPoolExecutor`` with as many threads
    as the workers have in all, with the project's :class:`KrtcClient` and no Celery or Redis.
    Target: at least 0.5x the bare rate, with at least 32 calls in flight.

Each measurement is repeated ``--rounds`` times, the two sides alternating, and the best round
of each side is kept (the machine is shared: the best round is the least disturbed one). Every
start has its own cname (no 409), and the sandbox is reset between phases. Connections are
warmed up before timing; worker start-up is not counted.

Prints a table (figures, ratios, targets, PASS/FAIL) and exits 1 if a target is missed.
Everything it starts is stopped and every key under its own prefixes deleted, even on Ctrl-C or
SIGTERM. Redis: ``REDIS_URL`` if set, else 127.0.0.1:6379 if it answers, else an embedded
``redis-server``.

Run: ``.venv/bin/python bench/throughput.py`` (``--help`` for the options; ~1.5 min).
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
import json  # noqa: E402
import os  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import uuid  # noqa: E402
from collections.abc import Callable, Iterator  # noqa: E402
from concurrent.futures import ThreadPoolExecutor  # noqa: E402
from contextlib import contextmanager  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from typing import Any  # noqa: E402

import requests  # noqa: E402
from celery import Celery  # noqa: E402
from redis import Redis  # noqa: E402

from bench import _support as support  # noqa: E402
from orchestrator.krtc.client import KrtcClient  # noqa: E402
from orchestrator.producer import Recorder  # noqa: E402
from orchestrator.settings import Settings  # noqa: E402
from orchestrator.stack.local import ChildProcess  # noqa: E402
from orchestrator.state import Keys, Phase  # noqa: E402
from orchestrator.state.connection import (  # noqa: E402
    RedisOptions,
    SentinelUrl,
    broker_url,
    is_sentinel_url,
)

#: Targets of issue 4.
PRODUCER_TARGET = 0.67
END_TO_END_TARGET = 0.5
MIN_IN_FLIGHT = 32
POLL_S = 0.25
#: Sessions read per poll.
POLL_CHUNK = 100


@dataclass
class Row:
    """One line of the table: the project's rate against its baseline's."""

    name: str
    ours: float
    baseline: float
    target: float | None
    unit: str = "/s"

    @property
    def ratio(self) -> float:
        return self.ours / self.baseline if self.baseline else 0.0

    @property
    def passed(self) -> bool:
        return self.target is None or self.ratio >= self.target


@contextmanager
def timed() -> Iterator[Callable[[], float]]:
    began = time.perf_counter()
    ended: list[float] = []
    yield lambda: (ended[0] if ended else time.perf_counter()) - began
    ended.append(time.perf_counter())


def spread(items: list[Any], threads: int, call: Callable[[Any], Any]) -> None:
    """``call`` on every item, from ``threads`` threads (in this thread when 1)."""
    if threads == 1:
        for item in items:
            call(item)
        return
    with ThreadPoolExecutor(threads) as pool:
        for _ in pool.map(call, items):
            pass


# -- (a) the producer ------------------------------------------------------------------------


def bare_app(url: str, prefix: str, options: RedisOptions | None = None) -> tuple[Celery, Any]:
    """A plain Celery app on ``url`` and its no-op task; its keys live under ``prefix``.

    On a ``sentinel://`` URL it gets what Celery's Sentinel transport needs and nothing more:
    the URL in Celery's form, ``master_name`` and ``sentinel_kwargs`` (of ``options``).
    """
    transport: dict[str, Any] = {"global_keyprefix": f"{prefix}:bare:"}
    if is_sentinel_url(url):
        sentinels = SentinelUrl.parse(url)
        transport |= (options or RedisOptions()).sentinel_transport_options(sentinels)
    app = Celery("bench-bare", broker=broker_url(url), set_as_current=False)
    app.conf.update(
        broker_transport_options=transport,
        task_ignore_result=True,
        task_default_queue="bench-noop",
    )

    @app.task(name="bench.noop")
    def noop() -> None:
        return None

    return app, noop


def producer_phase(settings: Settings, count: int, threads: list[int], rounds: int) -> list[Row]:
    """Starts per second through :class:`Recorder` vs bare ``.delay()``, per thread count."""
    app, noop = bare_app(
        settings.redis_url, settings.redis_prefix, RedisOptions.from_settings(settings)
    )
    recorder = Recorder(settings)
    run = uuid.uuid4().hex[:6]
    serial = iter(range(10**9))
    # Warm up both sides: connections, scripts loaded, the producer pools filled.
    spread(
        list(range(50)),
        max(threads),
        lambda _: recorder.start(support.start_body(f"w{run}-{next(serial)}")),
    )
    spread(list(range(50)), max(threads), lambda _: noop.delay())
    rows = []
    try:
        for n in threads:
            best_ours = best_bare = 0.0
            for _ in range(rounds):
                with timed() as bare_s:
                    spread(list(range(count)), n, lambda _: noop.delay())
                bodies = [support.start_body(f"{run}-{next(serial)}") for _ in range(count)]
                with timed() as ours_s:
                    spread(bodies, n, recorder.start)
                best_bare = max(best_bare, count / bare_s())
                best_ours = max(best_ours, count / ours_s())
            label = "thread" if n == 1 else "threads"
            rows.append(
                Row(f"(a) producer start, {n} {label}", best_ours, best_bare, PRODUCER_TARGET)
            )
            print(f"  {rows[-1].name}: {best_ours:.0f}/s vs bare .delay() {best_bare:.0f}/s")
    finally:
        recorder.store.redis.close()
        app.close()
    return rows


# -- (b) end to end --------------------------------------------------------------------------


def sandbox_control(settings: Settings, method: str, path: str) -> Any:
    """Call the sandbox's control API (``/_sandbox/PATH``), next to its API endpoint."""
    base = str(settings.endpoint).rstrip("/").removesuffix("/cloud") + "/_sandbox"
    response = requests.request(method, f"{base}/{path}", timeout=10)
    response.raise_for_status()
    return response.json()


def bare_calls(settings: Settings, bodies: list[dict[str, Any]], threads: int) -> float:
    """Seconds for a bare thread pool to make the signed start calls (sids checked)."""
    client = KrtcClient(settings)
    try:
        with ThreadPoolExecutor(threads) as pool:
            # Warm-up: one connection per thread.
            list(pool.map(lambda b: client.start(b).sid, bodies[:threads]))
            rest = bodies[threads:]
            with timed() as elapsed:
                sids = list(pool.map(lambda b: client.start(b).sid, rest))
        if len(set(sids)) != len(rest):
            raise RuntimeError("the bare pool got fewer distinct sids than calls")
        return len(rest) / elapsed()
    finally:
        client.close()


def wait_recording(redis: Redis, keys: Keys, ids: list[str], timeout_s: float) -> float:
    """Wait until every session is ``recording``; returns the last one's ``phase_since``.

    The workers take the starts in queue order, so the sessions are read from the front, a
    chunk at a time, and only the first chunk not done yet is read again after a pause: polling
    every session would take CPU from the workers it measures. The end time comes from the
    sessions (``phase_since``), so the pause does not delay it.
    """
    pending = list(ids)
    last = 0.0
    deadline = time.monotonic() + timeout_s
    while pending:
        pipe = redis.pipeline(transaction=False)
        chunk = pending[:POLL_CHUNK]
        for session_id in chunk:
            pipe.hmget(keys.session(session_id), "phase", "phase_since")
        still = []
        for session_id, (phase, since) in zip(chunk, pipe.execute(), strict=True):
            value = phase.decode() if isinstance(phase, bytes) else phase or ""
            if value == Phase.RECORDING.value:
                last = max(last, float(since))
            elif value in {Phase.PENDING.value, Phase.STARTING.value}:
                still.append(session_id)
            else:
                raise RuntimeError(f"session {session_id} is {value or 'gone'}, not recording")
        pending = still + pending[len(chunk) :]
        if still:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{len(pending)} sessions not recording after {timeout_s:g}s")
            time.sleep(POLL_S)
    return last


def through_workers(
    recorder: Recorder, bodies: list[dict[str, Any]], producers: int, timeout_s: float
) -> float:
    """Starts per second from the first enqueue until the last session records."""
    ids: list[str] = []
    began = time.time()
    if producers == 1:
        ids = [recorder.start(body).id for body in bodies]
    else:
        with ThreadPoolExecutor(producers) as pool:
            ids = [s.id for s in pool.map(recorder.start, bodies)]
    last = wait_recording(recorder.store.redis, recorder.store.keys, ids, timeout_s)
    return len(bodies) / (last - began)


def end_to_end_phase(
    settings: Settings, args: argparse.Namespace, workdir: Path, children: list[ChildProcess]
) -> Row:
    in_flight = args.workers * args.concurrency
    run = uuid.uuid4().hex[:6]
    batch = iter(range(10**6))

    def bodies(count: int) -> list[dict[str, Any]]:
        b = next(batch)
        return [support.start_body(f"{run}-{b}-{n}") for n in range(count)]

    bare_rates: list[float] = []
    ours_rates: list[float] = []
    recorder = Recorder(settings)
    try:
        support.start_workers(
            args.workers,
            settings,
            workdir,
            children,
            concurrency=args.concurrency,
            hostname="bench-throughput",
        )
        for number in range(args.rounds):
            sandbox_control(settings, "POST", "reset")
            # The bare pool's warm-up calls are not counted (as the workers' are not).
            bare_rates.append(bare_calls(settings, bodies(args.starts + in_flight), in_flight))
            sandbox_control(settings, "POST", "reset")
            # Warm up the workers (threads, connections, scripts), then time.
            through_workers(recorder, bodies(2 * in_flight), args.producers, args.timeout)
            ours_rates.append(
                through_workers(recorder, bodies(args.starts), args.producers, args.timeout)
            )
            stats = sandbox_control(settings, "GET", "stats")
            starts = stats["byAction"].get("CloudRecordingStart", {})
            if starts != {"ok": args.starts + 2 * in_flight}:
                raise RuntimeError(f"unexpected start outcomes in the sandbox: {starts}")
            print(
                f"  round {number + 1}: bare pool {bare_rates[-1]:.0f}/s, "
                f"workers {ours_rates[-1]:.0f}/s",
                flush=True,
            )
    finally:
        recorder.store.redis.close()
    mode = f"{args.workers} worker{'s' if args.workers > 1 else ''} x {args.concurrency}"
    return Row(
        f"(b) end-to-end, {args.starts} starts, {mode}",
        max(ours_rates),
        max(bare_rates),
        END_TO_END_TARGET,
    )


# -- report ----------------------------------------------------------------------------------


def print_table(rows: list[Row], args: argparse.Namespace) -> None:
    print(
        f"\nthroughput: {os.cpu_count()} cores, best of {args.rounds} rounds; end-to-end at "
        f"{args.latency_ms:g} ms API latency, {args.workers * args.concurrency} calls in flight\n"
    )
    head = (
        f"{'measurement':<44} {'project':>9} {'baseline':>9} {'ratio':>6} {'target':>7} "
        f"{'result':>6}"
    )
    print(head)
    print("-" * len(head))
    for r in rows:
        target = f">={r.target:.2f}x" if r.target is not None else "-"
        print(
            f"{r.name:<44} {r.ours:>7.0f}{r.unit} {r.baseline:>7.0f}{r.unit} {r.ratio:>5.2f}x "
            f"{target:>7} {'PASS' if r.passed else 'FAIL':>6}"
        )
    print(
        "\nbaselines: (a) a plain Celery app's .delay() of a no-op task on the same Redis, from "
        "as many threads;\n(b) the same signed start calls from a bare ThreadPoolExecutor of the "
        "same concurrency (KrtcClient, no Celery, no Redis)"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--producer-starts", type=int, default=2000, help="(a) starts per round")
    parser.add_argument(
        "--threads", default="1,4", help="(a) comma-separated producer thread counts"
    )
    parser.add_argument("--starts", type=int, default=2000, help="(b) starts through the workers")
    parser.add_argument("--latency-ms", type=float, default=50.0, help="(b) sandbox latency")
    parser.add_argument("--workers", type=int, default=1, help="(b) worker processes")
    parser.add_argument("--concurrency", type=int, default=32, help="(b) threads per worker")
    parser.add_argument(
        "--producers", type=int, default=1, help="(b) threads that queue the starts"
    )
    parser.add_argument("--rounds", type=int, default=2, help="rounds per measurement")
    parser.add_argument("--timeout", type=float, default=120.0, help="(b) seconds per run at most")
    parser.add_argument("--skip", choices=["a", "b"], help="skip one of the two measurements")
    parser.add_argument("--json", action="store_true", help="also print the rows as JSON")
    parser.add_argument("--logs", type=Path, help="keep the worker and sandbox logs in this dir")
    args = parser.parse_args()
    if args.workers * args.concurrency < MIN_IN_FLIGHT:
        parser.error(f"--workers x --concurrency must be at least {MIN_IN_FLIGHT}")
    threads = [int(x) for x in args.threads.split(",") if x.strip()]

    support.terminate_on_sigterm()
    prefix = f"krtc-bench-{uuid.uuid4().hex[:8]}"
    rows: list[Row] = []
    children: list[ChildProcess] = []
    url, embedded = support.redis_for_bench()
    try:
        with tempfile.TemporaryDirectory(prefix="krtc-bench-throughput-") as tmp:
            workdir = args.logs or Path(tmp)
            workdir.mkdir(parents=True, exist_ok=True)
            sandbox, endpoint = support.start_sandbox(workdir, latency_ms=args.latency_ms)
            children.append(sandbox)
            settings = support.bench_settings(
                endpoint,
                url,
                prefix,
                http_pool_size=max(64, args.workers * args.concurrency),
            )
            if args.skip != "a":
                print("(a) producer start rate ...", flush=True)
                # Its own prefix: nothing it queues may reach (b)'s workers.
                rows += producer_phase(
                    settings.model_copy(update={"redis_prefix": f"{prefix}-a"}),
                    args.producer_starts,
                    threads,
                    args.rounds,
                )
            if args.skip != "b":
                print("(b) end-to-end ...", flush=True)
                rows.append(end_to_end_phase(settings, args, workdir, children))
    finally:
        support.clean_up(children, url, [prefix, f"{prefix}-a"], embedded)
    print_table(rows, args)
    if args.json:
        print(
            json.dumps(
                [
                    {
                        "name": r.name,
                        "project_per_s": round(r.ours, 1),
                        "baseline_per_s": round(r.baseline, 1),
                        "ratio": round(r.ratio, 3),
                        "target": r.target,
                        "passed": r.passed,
                    }
                    for r in rows
                ]
            )
        )
    return 0 if all(r.passed for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
