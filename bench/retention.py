"""Does retention keep Redis bounded? A churn of sessions, and bytes per record.

``churn`` (default): ``--sessions`` (200,000) sessions go through the store, create ->
recording -> stopped, with a typical request body and history and no API call, at full speed,
with a ``--retention`` of 60 s while the collector runs every ``--gc-interval`` seconds (as beat
would run ``krtc.gc``). Redis' ``used_memory`` is printed every ``--sample`` seconds, and at the
end the second half of the samples is checked to stay within +-10% of its mean: retention
turns the churn into a flat curve.

``measure``: bytes of Redis memory per active session, per finished session (five history
entries, its index entries), per dead letter and per alert: ``--count`` records of each kind,
``used_memory`` before and after (index entries included), and ``MEMORY USAGE`` of one record's
keys, for the sizing table of docs/operations.md.

Everything is under the bench's own key prefix, deleted at the end (even on Ctrl-C). Redis:
``REDIS_URL`` if set (Sentinels too: ``sentinel://...``), else 127.0.0.1:6379 if it answers,
else an embedded ``redis-server``.

Run: ``.venv/bin/python bench/retention.py [churn|measure]`` (``--help`` for the options).
"""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]
sys.path.insert(0, str(ROOT))

import argparse  # noqa: E402
import statistics  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
import uuid  # noqa: E402
from typing import Any, cast  # noqa: E402

from redis import Redis  # noqa: E402

from bench._support import (  # noqa: E402
    connect_redis,
    delete_prefix,
    redis_for_bench,
    redis_options,
    start_body,
)
from orchestrator.alerts import Alerter  # noqa: E402
from orchestrator.alerts.store import AlertStore  # noqa: E402
from orchestrator.krtc.enums import Mode  # noqa: E402
from orchestrator.retention import Collector, RetentionPolicy  # noqa: E402
from orchestrator.state import DeadLetter, DeadLetterStore, Phase, SessionStore  # noqa: E402


def used_memory(redis: Redis) -> int:
    return int(cast("dict[str, Any]", redis.info("memory"))["used_memory"])


def one_session(store: SessionStore, n: int, *, finish: bool = True) -> str:
    """A session with a typical request and history (created, starting, recording, stopping,
    stopped: five entries)."""
    cname = f"room-{n}"
    body = start_body(cname)
    session_id = store.create(
        app_id=body["appId"],
        cname=cname,
        uid=body["uid"],
        mode=Mode(body["mode"]),
        request=body,
        idempotency_key=f"web-{n}",
    ).session.id
    store.transition(session_id, to=Phase.STARTING, why="start call under way")
    store.transition(
        session_id, to=Phase.RECORDING, sid=f"sid-{uuid.uuid4().hex}", why="start answered"
    )
    if finish:
        store.transition(session_id, to=Phase.STOPPING, why="stop requested")
        store.transition(session_id, to=Phase.STOPPED, why="stop confirmed (status 8)")
    return session_id


def churn(args: argparse.Namespace, url: str, prefix: str) -> int:
    redis = connect_redis(url)
    store = SessionStore(
        redis, prefix=prefix, retention_s=args.retention, idempotency_ttl_s=args.retention
    )
    collector = Collector(
        redis,
        store.keys,
        policy=RetentionPolicy(session_s=args.retention, interval_s=args.gc_interval),
        clock=store.clock,
    )
    stop = threading.Event()
    samples: list[tuple[float, int, int, int]] = []
    deleted = [0]

    def collect() -> None:
        while not stop.wait(args.gc_interval):
            deleted[0] += collector.run().deleted["sessions"]

    def sample(begin: float, done: list[int]) -> None:
        while not stop.wait(args.sample):
            samples.append(
                (
                    time.monotonic() - begin,
                    used_memory(redis),
                    done[0],
                    int(cast(int, redis.zcard(store.keys.finished()))),
                )
            )
            t, mem, n, kept = samples[-1]
            print(
                f"{t:7.0f} s  {mem / 2**20:8.1f} MiB  {n:8d} sessions  {kept:7d} kept", flush=True
            )

    done = [0]
    begin = time.monotonic()
    threads = [
        threading.Thread(target=collect, daemon=True),
        threading.Thread(target=sample, args=(begin, done), daemon=True),
    ]
    for thread in threads:
        thread.start()
    print(
        f"churn: {args.sessions} sessions"
        + (f" at {args.rate:g}/s" if args.rate else "")
        + f", retention {args.retention} s, gc every "
        f"{args.gc_interval} s; used_memory every {args.sample} s",
        flush=True,
    )
    try:
        for n in range(args.sessions):
            if args.rate:
                # A steady churn: memory then tracks rate x retention, not the machine's load.
                ahead = begin + n / args.rate - time.monotonic()
                if ahead > 0:
                    time.sleep(ahead)
            one_session(store, n)
            done[0] = n + 1
        # Let the last sessions age past their retention, and the collector delete them.
        time.sleep(args.tail)
    finally:
        stop.set()
        for thread in threads:
            thread.join(30)
    elapsed = time.monotonic() - begin
    print(
        f"{args.sessions} sessions in {elapsed:.0f} s ({args.sessions / elapsed:.0f}/s); "
        f"the collector deleted {deleted[0]}"
    )
    second = [mem for t, mem, n, _ in samples[len(samples) // 2 :] if n < args.sessions]
    if len(second) < 3:
        print("too few samples in the second half: run longer")
        return 1
    mean = statistics.fmean(second)
    low, high = min(second), max(second)
    spread = max(mean - low, high - mean) / mean
    print(
        f"second half of the churn: used_memory mean {mean / 2**20:.1f} MiB, "
        f"min {low / 2**20:.1f}, max {high / 2**20:.1f}: within +-{spread:.1%}"
    )
    ok = spread <= 0.10
    print("flat (within +-10%)" if ok else "NOT flat")
    return 0 if ok else 1


def measure(args: argparse.Namespace, url: str, prefix: str) -> int:
    redis = connect_redis(url)
    store = SessionStore(redis, prefix=prefix)
    n = args.count

    def per_record(make: Any) -> float:
        before = used_memory(redis)
        ids = [make(i) for i in range(n)]
        after = used_memory(redis)
        per_record.last = ids[-1]  # type: ignore[attr-defined]
        return (after - before) / n

    def usage(*keys: str) -> int:
        return sum(int(cast(int, redis.memory_usage(k, samples=0) or 0)) for k in keys)

    active = per_record(lambda i: one_session(store, i, finish=False))
    sid = per_record.last  # type: ignore[attr-defined]
    active_keys = usage(store.keys.session(sid), store.keys.history(sid))
    finished = per_record(lambda i: one_session(store, n + i))
    fid = per_record.last  # type: ignore[attr-defined]
    finished_keys = usage(store.keys.session(fid), store.keys.history(fid))
    letters = DeadLetterStore(redis, keys=store.keys)

    def letter(i: int) -> str:
        letters.add(
            DeadLetter(
                id=f"task-{uuid.uuid4()}",
                task="krtc.stop",
                action="stop",
                session_id=f"s-{i}",
                args=[f"s-{i}"],
                error={
                    "kind": "server",
                    "status": 500,
                    "code": "InternalError",
                    "reason": "stop: HTTP 500 after 200 attempts",
                    "at": time.time(),
                },
                attempts=200,
                failed_at=time.time(),
                app_id="bench-app",
                cname=f"room-{i}",
                uid="recorder",
            )
        )
        return f"s-{i}"

    dead = per_record(letter)
    alerter = Alerter(AlertStore(redis, keys=store.keys, recent_limit=n + 10), sessions=store)
    alert = per_record(
        lambda i: alerter.raise_alert("stuck", f"s-{i}", "starting for 301 s: status 2")
    )
    alerter.close(2)
    rows = [
        ("active session (recording, 3 history entries)", active, active_keys),
        ("finished session (stopped, 5 history entries)", finished, finished_keys),
        ("dead letter", dead, None),
        ("alert (recent list entry + marker)", alert, None),
    ]
    print(f"{n} records of each kind; bytes of used_memory per record (keys and index entries),")
    print("and MEMORY USAGE of one record's session hash + history")
    for name, per, keys in rows:
        print(f"{name:<48} {per:8.0f} B" + (f"   ({keys} B hash + history)" if keys else ""))
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("mode", nargs="?", choices=["churn", "measure"], default="churn")
    parser.add_argument("--sessions", type=int, default=200_000)
    parser.add_argument("--retention", type=int, default=60)
    parser.add_argument("--gc-interval", type=int, default=5)
    parser.add_argument("--sample", type=float, default=10.0)
    parser.add_argument("--tail", type=float, default=0.0, help="seconds to go on after")
    parser.add_argument(
        "--rate", type=float, default=0.0, help="sessions per second at most (0: as fast as it can)"
    )
    parser.add_argument("--count", type=int, default=10_000, help="records per kind (measure)")
    args = parser.parse_args()
    url, embedded = redis_for_bench()
    prefix = f"bench-retention-{uuid.uuid4().hex[:8]}"
    try:
        return churn(args, url, prefix) if args.mode == "churn" else measure(args, url, prefix)
    finally:
        delete_prefix(url, prefix, redis_options())
        if embedded is not None:
            embedded.stop()


if __name__ == "__main__":
    sys.exit(main())
