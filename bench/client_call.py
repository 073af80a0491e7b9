"""CPU per KRTC API call in the calling process: the client before and after issue 11's HTTP change.

Makes ``--calls`` signed start calls (3,000; each its own cname, so no 409) from ``--threads``
threads (4) in this one process against a ``krtc-rec sandbox`` child with ``--latency-ms`` (0),
through each path, and divides this process's CPU time (``time.process_time``: every thread, user
and system) by the number of calls:

- **before**: ``bench/_requests_client.py``, the client's transport and signing as they were
  (a ``requests`` session and a ``requests-aws4auth`` hook; validation, errors and models are the
  client's own);
- **after**: :class:`orchestrator.krtc.client.KrtcClient` (urllib3 directly, its own signer).

Each call is what a worker's start job makes: ``client.start(dict)`` (validate, serialize, sign,
POST, read, map the status, parse the answer). The sandbox runs in its own process, so its CPU is
not counted. Rounds alternate the paths (``--rounds``, 3) after a warm-up; the sandbox is reset
before each round. The best and the median round of each path are printed (the machine may be
shared: the best round is the least disturbed).

Run: ``.venv/bin/python bench/client_call.py`` (``--help``; about a minute). Needs the ``bench``
extra for the ``before`` path (``requests-aws4auth``); ``--paths after`` runs without it.
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
import statistics  # noqa: E402
import tempfile  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
import urllib.request  # noqa: E402
from collections.abc import Callable  # noqa: E402
from dataclasses import asdict, dataclass  # noqa: E402
from typing import Any  # noqa: E402

from pydantic import SecretStr  # noqa: E402

from bench import _support as support  # noqa: E402
from orchestrator.krtc.client import KrtcClient  # noqa: E402
from orchestrator.settings import Settings  # noqa: E402

PATHS = ("before", "after")


@dataclass
class Round:
    path: str
    calls: int
    errors: int
    cpu_s: float
    wall_s: float

    @property
    def cpu_ms_per_call(self) -> float:
        return 1000 * self.cpu_s / self.calls

    @property
    def calls_per_s(self) -> float:
        return self.calls / self.wall_s


def make_client(path: str, settings: Settings) -> KrtcClient:
    if path == "after":
        return KrtcClient(settings)
    from bench._requests_client import RequestsKrtcClient

    return RequestsKrtcClient(settings)


def reset_sandbox(endpoint: str) -> None:
    base = endpoint.removesuffix("/cloud")
    request = urllib.request.Request(f"{base}/_sandbox/reset", data=b"", method="POST")
    with urllib.request.urlopen(request, timeout=10) as response:
        response.read()


def run_calls(client: KrtcClient, bodies: list[dict[str, Any]], threads: int) -> Round:
    """All ``bodies`` started from ``threads`` threads; this process's CPU and the wall time."""
    errors = [0] * threads
    barrier = threading.Barrier(threads + 1)

    def work(n: int) -> None:
        mine = bodies[n::threads]
        barrier.wait()
        for body in mine:
            try:
                client.start(body)
            except Exception:
                errors[n] += 1

    workers = [threading.Thread(target=work, args=(n,)) for n in range(threads)]
    for w in workers:
        w.start()
    cpu0, wall0 = time.process_time(), time.perf_counter()
    barrier.wait()
    for w in workers:
        w.join()
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    return Round("", len(bodies), sum(errors), cpu, wall)


def bodies_for(tag: str, count: int) -> list[dict[str, Any]]:
    return [support.start_body(f"cc-{tag}-{i}") for i in range(count)]


def measure(args: argparse.Namespace, endpoint: str, say: Callable[[str], None]) -> list[Round]:
    settings = Settings(
        endpoint=endpoint,
        access_key=support.ACCESS_KEY,
        secret_key=SecretStr(support.SECRET_KEY),
        http_pool_size=max(args.threads, 8),
    )
    clients = {path: make_client(path, settings) for path in args.paths}
    rounds: list[Round] = []
    try:
        for r in range(args.rounds):
            order = args.paths if r % 2 == 0 else list(reversed(args.paths))
            for path in order:
                reset_sandbox(endpoint)
                client = clients[path]
                run_calls(client, bodies_for(f"w{r}{path}", args.warmup), args.threads)
                result = run_calls(client, bodies_for(f"r{r}{path}", args.calls), args.threads)
                result.path = path
                rounds.append(result)
                say(
                    f"round {r + 1} {path:6}: {result.cpu_ms_per_call:.3f} ms CPU/call, "
                    f"{result.calls_per_s:,.0f} calls/s, {result.errors} errors"
                )
    finally:
        for client in clients.values():
            client.close()
    return rounds


def summary(rounds: list[Round], paths: list[str]) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    for path in paths:
        mine = [r for r in rounds if r.path == path]
        cpu = [r.cpu_ms_per_call for r in mine]
        out[path] = {
            "best_cpu_ms_per_call": min(cpu),
            "median_cpu_ms_per_call": statistics.median(cpu),
            "best_calls_per_s": max(r.calls_per_s for r in mine),
            "errors": sum(r.errors for r in mine),
        }
    return out


def print_table(table: dict[str, dict[str, float]], args: argparse.Namespace) -> None:
    print()
    print(
        f"{args.calls} signed start calls per round from {args.threads} threads, "
        f"{args.latency_ms:g} ms sandbox latency, {args.rounds} rounds"
    )
    print()
    print("| path | CPU ms/call (best) | CPU ms/call (median) | calls/s (best) | errors |")
    print("|---|---:|---:|---:|---:|")
    for path, row in table.items():
        print(
            f"| {path} | {row['best_cpu_ms_per_call']:.3f} | {row['median_cpu_ms_per_call']:.3f} "
            f"| {row['best_calls_per_s']:,.0f} | {row['errors']:.0f} |"
        )
    if "before" in table and "after" in table:
        b, a = table["before"], table["after"]
        saved = b["median_cpu_ms_per_call"] - a["median_cpu_ms_per_call"]
        print(
            f"| **after / before** | {a['best_cpu_ms_per_call'] / b['best_cpu_ms_per_call']:.2f}x "
            f"| {a['median_cpu_ms_per_call'] / b['median_cpu_ms_per_call']:.2f}x "
            f"| {a['best_calls_per_s'] / b['best_calls_per_s']:.2f}x | |"
        )
        print()
        print(f"saved per call (medians): {saved:.3f} ms of CPU")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=3000, help="calls per round (3000)")
    parser.add_argument("--threads", type=int, default=4, help="calling threads (4)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds per path (3)")
    parser.add_argument("--warmup", type=int, default=200, help="calls before each round (200)")
    parser.add_argument("--latency-ms", type=float, default=0.0, help="sandbox latency (0)")
    parser.add_argument(
        "--paths",
        default=",".join(PATHS),
        help="before,after (default), or one of them",
    )
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args()
    args.paths = [p.strip() for p in args.paths.split(",") if p.strip()]
    if not args.paths or any(p not in PATHS for p in args.paths):
        parser.error(f"--paths: choose among {', '.join(PATHS)}")

    support.terminate_on_sigterm()
    say = (lambda line: print(line, file=sys.stderr)) if args.json else print
    children = []
    try:
        with tempfile.TemporaryDirectory(prefix="krtc-bench-") as workdir:
            sandbox, endpoint = support.start_sandbox(
                Path(workdir), latency_ms=args.latency_ms, retention_s=5
            )
            children.append(sandbox)
            rounds = measure(args, endpoint, say)
            for child in children:
                child.stop()
            children.clear()
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    finally:
        for child in reversed(children):
            child.stop()
    table = summary(rounds, args.paths)
    if args.json:
        print(json.dumps({"rounds": [asdict(r) for r in rounds], "summary": table}, indent=2))
    else:
        print_table(table, args)
    return 1 if any(row["errors"] for row in table.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
