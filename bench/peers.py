"""The project's end-to-end start path against its peers, all in one run (issue 11).

Three systems start ``--starts`` recordings (2,000) against the same ``krtc-rec sandbox`` (50 ms
latency on every call), each with ``--workers`` worker processes (2) of ``--concurrency`` threads
(32), each fed from one producer thread:

* **project**: ``Recorder.start`` (the session and its queued start, one Lua script) and
  ``krtc-rec worker`` processes, timed from the first enqueue until every session is
  ``recording`` (the last ``phase_since`` the workers wrote);
* **celery**: a bare Celery app (``bench/_peer_celery.py``): ``.delay()`` of a task that only
  makes the signed start POST, ``celery worker --pool=threads``, Celery's defaults otherwise;
* **dramatiq**: ``.send()`` of an actor that only makes the signed POST
  (``bench/_peer_dramatiq.py``), ``dramatiq --processes N --threads T``.

The peers' signed POST is ``requests`` + ``requests-aws4auth`` by default (``--peer-client
requests``), or the project's own ``KrtcClient`` (``--peer-client project``); see
``bench/_peer_client.py``. A peer's run ends when the sandbox has answered every start (polled
every 20 ms, so a peer's time may be up to 20 ms long).

Each round runs every system once (the order rotates), after a warm-up of ``2 x workers x
concurrency`` starts; the sandbox is reset before each. The best round of each system is kept
(the machine is shared: the best round is the least disturbed), with the CPU it used: the worker
processes' (``/proc`` through psutil, children included) and Redis' (``INFO cpu`` deltas), per
start. Redis is an embedded ``redis-server`` of the bench's own (AOF on, as in production), so
its CPU is only the systems'; ``--redis-url`` uses another (``sentinel://`` too, with
``KRTC_REDIS_MASTER_NAME``, for the project's system only: the peers are plain apps).

Also measured: (a) the producer's ``start`` against a bare Celery ``.delay()`` from one thread
(as ``bench/throughput.py`` does), and, with ``--round-trips N``, the Redis commands the project
sends per start job (``MONITOR`` over N starts: commands of the worker processes, a
``MULTI``...``EXEC`` counted once, grouped by command; ``EVALSHA`` by script name).

Prints a table with rates, ratios, CPU per start and the targets of issue 11; exits 1 if a
target is missed. Everything it starts is stopped and its keys deleted, also on Ctrl-C/SIGTERM.

Run: ``.venv/bin/python bench/peers.py`` (about 2 minutes; ``--help`` for the options). Needs the
bench extra: ``pip install -e '.[dev,bench]'``.
"""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]
sys.path.insert(0, str(ROOT))

import argparse  # noqa: E402
import hashlib  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import tempfile  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
import uuid  # noqa: E402
from collections import Counter  # noqa: E402
from collections.abc import Callable  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from typing import Any  # noqa: E402

import psutil  # noqa: E402
from redis import Redis  # noqa: E402

from bench import _support as support  # noqa: E402
from bench.throughput import producer_phase, sandbox_control, wait_recording  # noqa: E402
from orchestrator.producer import Recorder  # noqa: E402
from orchestrator.settings import Settings  # noqa: E402
from orchestrator.stack.local import ChildProcess  # noqa: E402
from orchestrator.stack.redis_server import EmbeddedRedis  # noqa: E402
from orchestrator.state.connection import is_sentinel_url  # noqa: E402

SYSTEMS = ("project", "celery", "dramatiq")
#: Targets of issue 11.
VS_DRAMATIQ = 1.0
VS_CELERY = 1.3
CPU_PER_JOB_MS = 1.75
REDIS_VS_PEERS = 1.5
PRODUCER_VS_DELAY = 2.0
PEER_POLL_S = 0.02


@dataclass
class Result:
    """One system's best round."""

    system: str
    rate: float = 0.0
    worker_cpu_ms: float = 0.0
    redis_cpu_ms: float = 0.0
    sandbox_cpu_ms: float = 0.0
    rounds: list[float] = field(default_factory=list)


def redis_cpu_s(redis: Redis) -> float:
    info = redis.info("cpu")
    return float(info["used_cpu_sys"]) + float(info["used_cpu_user"])


class System:
    """A system under test: its workers, how it queues a start, how it knows it is done."""

    def __init__(self, name: str, pids: list[int]) -> None:
        self.name = name
        self.pids = pids

    def run(self, bodies: list[dict[str, Any]], timeout_s: float) -> float:
        """Queue ``bodies``, wait until all are started; returns starts per second."""
        raise NotImplementedError


class ProjectSystem(System):
    def __init__(self, pids: list[int], recorder: Recorder) -> None:
        super().__init__("project", pids)
        self.recorder = recorder

    def run(self, bodies: list[dict[str, Any]], timeout_s: float) -> float:
        began = time.time()
        ids = [self.recorder.start(body).id for body in bodies]
        store = self.recorder.store
        last = wait_recording(store.redis, store.keys, ids, timeout_s)
        return len(bodies) / (last - began)


class PeerSystem(System):
    def __init__(
        self, name: str, pids: list[int], settings: Settings, send: Callable[[Any], None]
    ) -> None:
        super().__init__(name, pids)
        self.settings = settings
        self.send = send

    def run(self, bodies: list[dict[str, Any]], timeout_s: float) -> float:
        before = self._answered()
        began = time.perf_counter()
        for body in bodies:
            self.send(body)
        deadline = time.monotonic() + timeout_s
        while self._answered() - before < len(bodies):
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.name}: not every start answered after {timeout_s:g}s")
            time.sleep(PEER_POLL_S)
        return len(bodies) / (time.perf_counter() - began)

    def _answered(self) -> int:
        stats = sandbox_control(self.settings, "GET", "stats")
        outcomes = stats["byAction"].get("CloudRecordingStart", {})
        if set(outcomes) - {"ok"}:
            raise RuntimeError(f"{self.name}: unexpected start outcomes {outcomes}")
        return int(outcomes.get("ok", 0))


def peer_env(settings: Settings, url: str, prefix: str, client: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KRTC_", "PEER_"))}
    return env | {
        "KRTC_ENDPOINT": str(settings.endpoint),
        "KRTC_ACCESS_KEY": support.ACCESS_KEY,
        "KRTC_SECRET_KEY": support.SECRET_KEY,
        "PEER_REDIS_URL": url,
        "PEER_PREFIX": prefix,
        "PEER_CLIENT": client,
        "PYTHONUNBUFFERED": "1",
    }


def start_celery_peer(
    args: argparse.Namespace, env: dict[str, str], workdir: Path, children: list[ChildProcess]
) -> list[int]:
    pids = []
    for n in range(args.workers):
        argv = ["-m", "celery", "-A", "bench._peer_celery", "worker", "--pool=threads"]
        argv += [f"--concurrency={args.concurrency}", f"--hostname=peer-{n}@%h", "-Q", "peer-start"]
        argv += ["--loglevel=INFO"]
        child = support.spawn(f"celery-{n}", argv, env, workdir / f"celery-{n}.log")
        children.append(child)
        child.wait_for("ready.", timeout_s=60)
        pids.append(child.process.pid)
    return pids


def start_dramatiq_peer(
    args: argparse.Namespace, env: dict[str, str], workdir: Path, children: list[ChildProcess]
) -> list[int]:
    argv = ["-m", "dramatiq", "bench._peer_dramatiq", f"--processes={args.workers}"]
    argv += [f"--threads={args.concurrency}", "--queues=peer-start"]
    child = support.spawn("dramatiq", argv, env, workdir / "dramatiq.log")
    children.append(child)
    deadline = time.monotonic() + 60
    while child.log().count("is ready for action") < args.workers:
        if child.process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"dramatiq did not start:\n{child.log()}")
        time.sleep(0.1)
    return [child.process.pid]


def run_round(
    system: System,
    redis: Redis,
    sandbox_pid: int,
    bodies: Callable[[int], list[dict[str, Any]]],
    args: argparse.Namespace,
) -> tuple[float, float, float, float]:
    """One measured run of ``system`` after a warm-up: (rate, worker, Redis, sandbox CPU ms/job)."""
    in_flight = args.workers * args.concurrency
    sandbox_control(system_settings, "POST", "reset")
    system.run(bodies(2 * in_flight), args.timeout)
    time.sleep(0.3)  # let the warm-up's tail settle before reading the counters
    cpu0, redis0, sandbox0 = (
        support.tree_cpu_s(system.pids),
        redis_cpu_s(redis),
        support.tree_cpu_s([sandbox_pid]),
    )
    rate = system.run(bodies(args.starts), args.timeout)
    cpu1, redis1, sandbox1 = (
        support.tree_cpu_s(system.pids),
        redis_cpu_s(redis),
        support.tree_cpu_s([sandbox_pid]),
    )
    per = 1000.0 / args.starts
    return rate, (cpu1 - cpu0) * per, (redis1 - redis0) * per, (sandbox1 - sandbox0) * per


def script_names() -> dict[str, str]:
    """sha1 -> name of every Lua script the project registers (to name ``EVALSHA`` calls)."""
    names = {}
    for module in ("orchestrator.state.scripts", "orchestrator.alerts.scripts"):
        mod = __import__(module, fromlist=["__all__"])
        for name in getattr(mod, "__all__", []):
            value = getattr(mod, name)
            if isinstance(value, str) and "redis.call" in value:
                names[hashlib.sha1(value.encode()).hexdigest()] = name
    return names


def round_trips(
    project: ProjectSystem,
    url: str,
    bodies: list[dict[str, Any]],
    timeout_s: float,
    dump: Path | None = None,
) -> tuple[float, Counter[str]]:
    """Commands the worker processes send to Redis per start job (``MONITOR``).

    A ``MULTI`` ... ``EXEC`` block counts once (one round trip), as ``MULTI``; commands run
    inside Lua scripts are not counted. The bench's own connections (producer, polling) are
    left out by their client ports.
    """
    names = script_names()
    lines: list[str] = []
    # No socket timeout: MONITOR waits for the next command however long the pause.
    monitor = support.connect_redis(url, decode_responses=False, socket_timeout=None)
    stop = threading.Event()
    ready = threading.Event()

    def listen() -> None:
        with monitor.monitor() as m:
            ready.set()
            for event in m.listen():
                lines.append(f"{event['client_address']}:{event['client_port']} {event['command']}")
                if stop.is_set():
                    break

    thread = threading.Thread(target=listen, daemon=True)
    thread.start()
    ready.wait(5)
    time.sleep(0.2)
    own = {c.laddr.port for c in psutil.Process().net_connections("tcp") if c.laddr}
    project.run(bodies, timeout_s)
    time.sleep(0.5)
    stop.set()
    monitor.ping()
    thread.join(5)
    if dump is not None:
        dump.write_text("\n".join(lines) + "\n", encoding="utf-8")
    counts: Counter[str] = Counter()
    in_multi: set[str] = set()
    for line in lines:
        client, _, command = line.partition(" ")
        port = client.rsplit(":", 1)[-1]
        if client.startswith("lua") or not port.isdigit() or int(port) in own:
            continue
        words = command.split()
        if not words:
            continue
        verb = words[0].upper()
        if verb == "MULTI":
            in_multi.add(client)
            counts["MULTI...EXEC"] += 1
            continue
        if verb == "EXEC":
            in_multi.discard(client)
            continue
        if client in in_multi:
            continue
        if verb == "EVALSHA" and len(words) > 1:
            verb = f"EVALSHA {names.get(words[1], words[1][:8])}"
        counts[verb] += 1
    n = len(bodies)
    return sum(counts.values()) / n, Counter({k: v for k, v in counts.items()})


system_settings: Settings


def main() -> int:
    global system_settings
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--starts", type=int, default=2000, help="starts per measured run")
    parser.add_argument("--latency-ms", type=float, default=50.0, help="sandbox latency")
    parser.add_argument("--workers", type=int, default=2, help="worker processes per system")
    parser.add_argument("--concurrency", type=int, default=32, help="threads per worker")
    parser.add_argument("--rounds", type=int, default=2, help="rounds (each runs every system)")
    parser.add_argument("--systems", default=",".join(SYSTEMS), help="comma-separated systems")
    parser.add_argument("--peer-client", choices=["requests", "project"], default="requests")
    parser.add_argument("--producer-starts", type=int, default=2000, help="0: skip (a)")
    parser.add_argument("--round-trips", type=int, default=100, help="0: skip the MONITOR run")
    parser.add_argument("--monitor-dump", type=Path, help="write the MONITOR lines here")
    parser.add_argument(
        "--redis-url",
        help="use this Redis, not an embedded one (a sentinel:// URL: --systems project only)",
    )
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds per run at most")
    parser.add_argument("--json", action="store_true", help="also print the results as JSON")
    parser.add_argument("--logs", type=Path, help="keep the workers' and sandbox's logs here")
    args = parser.parse_args()
    systems = [s for s in args.systems.split(",") if s]
    if set(systems) - set(SYSTEMS):
        parser.error(f"--systems: choose among {', '.join(SYSTEMS)}")
    if args.redis_url and is_sentinel_url(args.redis_url) and set(systems) - {"project"}:
        parser.error(
            "the peers (celery, dramatiq) are plain apps on a redis:// URL: with a sentinel:// "
            "--redis-url, run --systems project"
        )

    support.terminate_on_sigterm()
    prefix = f"krtc-bench-{uuid.uuid4().hex[:8]}"
    children: list[ChildProcess] = []
    embedded: EmbeddedRedis | None = None
    if args.redis_url:
        url = args.redis_url
    else:
        embedded = EmbeddedRedis()
        url = embedded.start()
    results = {name: Result(name) for name in systems}
    producer_rows = []
    trips: tuple[float, Counter[str]] | None = None
    try:
        with tempfile.TemporaryDirectory(prefix="krtc-bench-peers-") as tmp:
            workdir = args.logs or Path(tmp)
            workdir.mkdir(parents=True, exist_ok=True)
            sandbox, endpoint = support.start_sandbox(workdir, latency_ms=args.latency_ms)
            children.append(sandbox)
            settings = support.bench_settings(
                endpoint, url, prefix, http_pool_size=max(64, args.concurrency)
            )
            system_settings = settings
            if args.producer_starts:
                print("(a) producer start rate, one thread ...", flush=True)
                producer_rows = producer_phase(
                    settings.model_copy(update={"redis_prefix": f"{prefix}-a"}),
                    args.producer_starts,
                    [1],
                    args.rounds,
                )
            env = peer_env(settings, url, f"{prefix}-peer", args.peer_client)
            under_test: dict[str, System] = {}
            recorder = Recorder(settings)
            if "project" in systems:
                first = len(children)
                support.start_workers(
                    args.workers,
                    settings,
                    workdir,
                    children,
                    concurrency=args.concurrency,
                    hostname="bench-peers",
                )
                pids = [c.process.pid for c in children[first:]]
                under_test["project"] = ProjectSystem(pids, recorder)
            if "celery" in systems:
                from bench import _peer_celery

                _peer_celery.app.conf.broker_url = url
                _peer_celery.app.conf.broker_transport_options = {
                    "global_keyprefix": f"{prefix}-peer:"
                }
                pids = start_celery_peer(args, env, workdir, children)
                under_test["celery"] = PeerSystem(
                    "celery", pids, settings, lambda b: _peer_celery.start.delay(b)
                )
            if "dramatiq" in systems:
                os.environ["PEER_REDIS_URL"] = url
                os.environ["PEER_PREFIX"] = f"{prefix}-peer"
                from bench import _peer_dramatiq

                pids = start_dramatiq_peer(args, env, workdir, children)
                under_test["dramatiq"] = PeerSystem(
                    "dramatiq", pids, settings, lambda b: _peer_dramatiq.start.send(b)
                )
            run = uuid.uuid4().hex[:6]
            batch = iter(range(10**6))

            def bodies(count: int) -> list[dict[str, Any]]:
                b = next(batch)
                return [support.start_body(f"{run}-{b}-{n}") for n in range(count)]

            redis = support.connect_redis(url, decode_responses=False)
            order = list(under_test)
            for number in range(args.rounds):
                shown = []
                for name in order[number % len(order) :] + order[: number % len(order)]:
                    rate, cpu, rcpu, scpu = run_round(
                        under_test[name], redis, sandbox.process.pid, bodies, args
                    )
                    result = results[name]
                    result.rounds.append(rate)
                    if rate >= result.rate:
                        result.rate, result.worker_cpu_ms = rate, cpu
                        result.redis_cpu_ms, result.sandbox_cpu_ms = rcpu, scpu
                    shown.append(f"{name} {rate:.0f}/s ({cpu:.2f} ms CPU, Redis {rcpu:.2f} ms)")
                print(f"  round {number + 1}: " + ", ".join(shown), flush=True)
            if args.round_trips and "project" in under_test:
                project = under_test["project"]
                assert isinstance(project, ProjectSystem)
                sandbox_control(settings, "POST", "reset")
                trips = round_trips(
                    project, url, bodies(args.round_trips), args.timeout, args.monitor_dump
                )
            redis.close()
            recorder.store.redis.close()
    finally:
        support.clean_up(children, url, [prefix, f"{prefix}-a", f"{prefix}-peer"], embedded)
    return report(args, results, producer_rows, trips)


def report(
    args: argparse.Namespace,
    results: dict[str, Result],
    producer_rows: list[Any],
    trips: tuple[float, Counter[str]] | None,
) -> int:
    print(
        f"\npeers: {os.cpu_count()} cores, {args.workers} workers x {args.concurrency} threads "
        f"per system, {args.starts} starts, {args.latency_ms:g} ms API latency, best of "
        f"{args.rounds} rounds; peers' POST: {args.peer_client}\n"
    )
    head = (
        f"{'system':<10} {'starts/s':>9} {'rounds':>17} {'worker CPU':>11} {'Redis CPU':>10} "
        f"{'sandbox CPU':>12}"
    )
    print(head + "\n" + "-" * len(head))
    for r in results.values():
        rounds = "/".join(f"{x:.0f}" for x in r.rounds)
        print(
            f"{r.system:<10} {r.rate:>9.0f} {rounds:>17} {r.worker_cpu_ms:>8.2f} ms "
            f"{r.redis_cpu_ms:>7.2f} ms {r.sandbox_cpu_ms:>9.2f} ms"
        )
    checks: list[tuple[str, str, bool]] = []
    ours = results.get("project")
    if ours is not None:
        for peer, target in (("dramatiq", VS_DRAMATIQ), ("celery", VS_CELERY)):
            if peer in results and results[peer].rate:
                ratio = ours.rate / results[peer].rate
                checks.append(
                    (f"end to end vs {peer}", f"{ratio:.2f}x >= {target}x", ratio >= target)
                )
        checks.append(
            (
                "worker CPU per start job",
                f"{ours.worker_cpu_ms:.2f} ms <= {CPU_PER_JOB_MS} ms",
                ours.worker_cpu_ms <= CPU_PER_JOB_MS,
            )
        )
        peers = [r.redis_cpu_ms for n, r in results.items() if n != "project"]
        if peers:
            ratio = ours.redis_cpu_ms / max(peers)
            checks.append(
                (
                    "Redis CPU per job vs the peers'",
                    f"{ratio:.2f}x <= {REDIS_VS_PEERS}x",
                    ratio <= REDIS_VS_PEERS,
                )
            )
    for row in producer_rows:
        checks.append(
            (
                f"producer start vs .delay(), 1 thread ({row.ours:.0f} vs {row.baseline:.0f}/s)",
                f"{row.ratio:.2f}x >= {PRODUCER_VS_DELAY}x",
                row.ratio >= PRODUCER_VS_DELAY,
            )
        )
    if checks:
        print()
        width = max(len(c[0]) for c in checks)
        for name, figure, passed in checks:
            print(f"{name:<{width}}  {figure:<22} {'PASS' if passed else 'FAIL'}")
    if trips is not None:
        per_job, counts = trips
        n = args.round_trips
        print(f"\nRedis commands per start job from the project's workers ({n} starts, MONITOR):")
        print(f"  {per_job:.2f} in all (MULTI...EXEC once; inside scripts not counted)")
        for verb, count in counts.most_common():
            print(f"  {count / n:6.2f}  {verb}")
    if args.json:
        print(
            json.dumps(
                {
                    "systems": {
                        r.system: {
                            "rate": round(r.rate, 1),
                            "rounds": [round(x, 1) for x in r.rounds],
                            "worker_cpu_ms": round(r.worker_cpu_ms, 3),
                            "redis_cpu_ms": round(r.redis_cpu_ms, 3),
                            "sandbox_cpu_ms": round(r.sandbox_cpu_ms, 3),
                        }
                        for r in results.values()
                    },
                    "checks": [{"name": c[0], "figure": c[1], "passed": c[2]} for c in checks],
                    "round_trips_per_job": None if trips is None else round(trips[0], 2),
                }
            )
        )
    return 0 if all(c[2] for c in checks) else 1


if __name__ == "__main__":
    raise SystemExit(main())
