"""Redis failover under load: time to recover, and no acknowledged stop lost.

Starts a local Sentinel topology on 127.0.0.1 (a primary, one replica, three ``redis-server
--sentinel``, quorum 2, ``down-after-milliseconds`` 2000), the sandbox, two workers and beat,
all pointed at the ``sentinel://`` URL. Then:

1. starts ``--recordings`` recordings (40) and waits until they record;
2. requests the stops of half of them;
3. SIGKILLs the primary right after those ``stop()`` calls returned;
4. measures the time to recover: from the kill to the first start *and* stop that complete on
   the new primary (a probe recording: accepted, recording, stop accepted, stopped), the
   producer retrying each call while it raises ``StateUnavailableError``;
5. requests the remaining stops;
6. checks the sandbox's own records: every recording stopped (stops lost: 0), none started
   twice, every session final.

Prints one JSON line (``time_to_recover_s``, ``stops_lost``, ...) and exits 0 when every check
held, 1 otherwise. Everything it starts is stopped, even on Ctrl-C or SIGTERM.

Run: ``.venv/bin/python bench/failover.py`` (about 40 s).
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
import shutil  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import uuid  # noqa: E402
from collections import Counter  # noqa: E402
from collections.abc import Callable  # noqa: E402
from typing import Any, TypeVar  # noqa: E402

import requests  # noqa: E402

import bench._support as support  # noqa: E402
from orchestrator.errors import StateError  # noqa: E402
from orchestrator.producer import Recorder  # noqa: E402
from orchestrator.settings import Settings, settings_env  # noqa: E402
from orchestrator.stack.local import ChildProcess  # noqa: E402
from orchestrator.stack.sentinel import SentinelTopology  # noqa: E402
from orchestrator.state import Phase  # noqa: E402

T = TypeVar("T")

#: Seconds any one step may take before the bench gives up on it.
STEP_TIMEOUT_S = 60.0


def retried(call: Callable[[], T], timeout_s: float = STEP_TIMEOUT_S) -> T:
    """``call()``, again every 0.1 s while Redis is unavailable (a failover under way)."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return call()
        except StateError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def wait_phase(recorder: Recorder, ids: list[str], phases: set[Phase], timeout_s: float) -> bool:
    """Whether every session of ``ids`` reached one of ``phases`` within ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    left = set(ids)
    while left and time.monotonic() < deadline:
        for session in retried(lambda: recorder.store.get_many(sorted(left))):
            if session.phase in phases:
                left.discard(session.id)
        if left:
            time.sleep(0.2)
    return not left


def _failovers(recorder: Recorder) -> int:
    keys = recorder.store.keys
    raw = retried(lambda: recorder.store.redis.hget(keys.metrics_redis_ha(), "failovers"))
    return int(raw or 0)


def run(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    topology = SentinelTopology(down_after_ms=args.down_after_ms)
    children: list[ChildProcess] = []
    prefix = f"failover-{uuid.uuid4().hex[:8]}"
    try:
        url = topology.start()
        sandbox, endpoint = support.start_sandbox(workdir, retention_s=3600)
        children.append(sandbox)
        control = endpoint.removesuffix("/cloud") + "/_sandbox"
        settings: Settings = support.bench_settings(
            endpoint,
            url,
            prefix,
            connect_timeout_s=1.0,
            read_timeout_s=2.0,
            redis_connect_timeout_s=0.5,
            redis_socket_timeout_s=1.5,
            visibility_timeout=15,
            retry_backoff_base=0.1,
            retry_backoff_max=0.5,
            reconcile_interval=1.0,
        )
        support.start_workers(2, settings, workdir, children, concurrency=8, hostname=prefix)
        env = {**os.environ, **settings_env(settings)}
        beat_argv = ["-m", "orchestrator.cli", "beat", "--schedule-file"]
        children.append(
            support.spawn(
                "beat", beat_argv + [str(workdir / "beat-schedule")], env, workdir / "beat.log"
            )
        )
        recorder = Recorder(settings)
        bodies = [support.start_body(f"{prefix}-{n}") for n in range(args.recordings)]
        ids = [recorder.start(body).id for body in bodies]
        if not wait_phase(recorder, ids, {Phase.RECORDING}, STEP_TIMEOUT_S):
            raise RuntimeError("the recordings did not all start")
        # A steady state: a reconcile round has seen the primary (it notices the next one).
        deadline = time.monotonic() + STEP_TIMEOUT_S
        while not recorder.store.redis.exists(recorder.store.keys.ha_primary()):
            if time.monotonic() > deadline:
                raise RuntimeError("no reconcile round ran")
            time.sleep(0.2)

        half = len(ids) // 2
        for session_id in ids[:half]:
            recorder.stop(session_id)
        old_port = topology.kill_primary()
        killed = time.monotonic()

        # The first start and stop on the new primary, the producer retrying meanwhile.
        probe = retried(lambda: recorder.start(support.start_body(f"{prefix}-probe")))
        accepted = time.monotonic() - killed
        if not wait_phase(recorder, [probe.id], {Phase.RECORDING}, STEP_TIMEOUT_S):
            raise RuntimeError("the probe recording did not start after the failover")
        retried(lambda: recorder.stop(probe.id))
        if not wait_phase(recorder, [probe.id], {Phase.STOPPED}, STEP_TIMEOUT_S):
            raise RuntimeError("the probe recording did not stop after the failover")
        recovered = time.monotonic() - killed
        new_port = topology.primary_port()

        for session_id in ids[half:]:
            retried(lambda s=session_id: recorder.stop(s))
        settled = wait_phase(recorder, ids, set(Phase.finished()), args.settle)
        deadline = time.monotonic() + 10
        while not _failovers(recorder) and time.monotonic() < deadline:
            time.sleep(0.2)

        # The sandbox's own records of our channels.
        answer = requests.get(f"{control}/recordings", timeout=10)
        answer.raise_for_status()
        ours = [r for r in answer.json()["recordings"] if r["cname"].startswith(f"{prefix}-")]
        starts = Counter(r["cname"] for r in ours if not r["cname"].endswith("-probe"))
        still = [r["cname"] for r in ours if r["active"]]
        sessions = retried(lambda: recorder.store.get_many(ids))
        not_final = [s.id for s in sessions if not s.is_finished]
        not_stopped = [s.id for s in sessions if s.phase != Phase.STOPPED]
        return {
            "recordings": len(ids),
            "stopped_before_kill": half,
            "down_after_ms": args.down_after_ms,
            "old_primary": old_port,
            "new_primary": new_port,
            "first_call_accepted_s": round(accepted, 2),
            "time_to_recover_s": round(recovered, 2),
            "stops_lost": len(still),
            "started_twice": sorted(c for c, n in starts.items() if n > 1),
            "never_started": len(ids) - len(starts),
            "sessions_not_final": not_final,
            "sessions_not_stopped": not_stopped,
            "settled": settled,
            "failover_noticed": _failovers(recorder) > 0,
        }
    finally:
        for child in reversed(children):
            child.stop()
        topology.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--recordings", "-n", type=int, default=40, help="recordings to drive")
    parser.add_argument("--down-after-ms", type=int, default=2000, help="Sentinel's down-after")
    parser.add_argument("--settle", type=float, default=60.0, help="seconds to settle at most")
    parser.add_argument("--max-recover-s", type=float, default=15.0, help="time to recover allowed")
    parser.add_argument("--logs", type=Path, help="keep the logs in this directory")
    args = parser.parse_args(argv)
    support.terminate_on_sigterm()
    workdir = args.logs or Path(tempfile.mkdtemp(prefix="krtc-failover-"))
    workdir.mkdir(parents=True, exist_ok=True)
    try:
        result = run(args, workdir)
    finally:
        if args.logs is None:
            shutil.rmtree(workdir, ignore_errors=True)
    print(json.dumps(result))
    failures = []
    if result["stops_lost"]:
        failures.append(f"{result['stops_lost']} stop(s) lost")
    if result["started_twice"]:
        failures.append(f"started twice: {result['started_twice']}")
    if result["never_started"]:
        failures.append(f"{result['never_started']} never started")
    if result["sessions_not_final"] or result["sessions_not_stopped"]:
        failures.append("sessions not stopped: " + ", ".join(result["sessions_not_stopped"]))
    if result["time_to_recover_s"] > args.max_recover_s:
        failures.append(f"time to recover {result['time_to_recover_s']}s > {args.max_recover_s}s")
    if failures:
        print("FAILED: " + "; ".join(failures))
        return 1
    print(
        f"recovered in {result['time_to_recover_s']}s; stops lost: 0; "
        f"{result['recordings']} recordings stopped, none started twice"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
