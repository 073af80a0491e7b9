"""Throughput of the KRTC sandbox: signed queries per second, without and with injected latency.

The sandbox runs as ``krtc-rec sandbox`` in its own process; the load generator is one asyncio
process on the same machine, sending requests signed beforehand by the project's signer (a
signature stays valid for the sandbox's allowed clock skew, so it can be sent many times) over
keep-alive connections. Every answer must be a 200 with the recording's sid.

1. zero latency: ``--connections`` concurrent connections for ``--duration`` seconds;
2. ``--latency-ms`` (50) injected latency with ``--slow-connections`` (200) connections.

Targets (exit 1 when missed): at least ``--min-qps`` (1,000) queries/s at zero latency, and with
latency at least ``--min-ratio`` (80 %) of that: latency must not serialise requests.

Run: ``.venv/bin/python bench/sandbox.py`` (``--help`` for the options).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pydantic import SecretStr  # noqa: E402

from orchestrator.krtc.client import KrtcClient  # noqa: E402
from orchestrator.krtc.enums import Action  # noqa: E402
from orchestrator.krtc.validation import parse_request  # noqa: E402
from orchestrator.settings import Settings  # noqa: E402

ACCESS_KEY = "AKBENCH"
SECRET_KEY = "bench-secret-not-printed"
APP, CNAME = "bench-app", "bench-room"
#: Distinct pre-signed requests (identical bodies would do; a few make the load less uniform).
SIGNED_VARIANTS = 16


@dataclass
class Phase:
    name: str
    connections: int
    latency_ms: float
    requests: int = 0
    errors: int = 0
    elapsed_s: float = 0.0

    @property
    def qps(self) -> float:
        return self.requests / self.elapsed_s if self.elapsed_s else 0.0


def start_sandbox() -> tuple[subprocess.Popen[str], str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KRTC_")}
    env |= {"KRTC_ACCESS_KEY": ACCESS_KEY, "KRTC_SECRET_KEY": SECRET_KEY, "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(
        [sys.executable, "-m", "orchestrator.cli", "sandbox", "--port", "0"]
        + ["--log-level", "warning", "--start-duration", "0"],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
        cwd=ROOT,
    )
    assert process.stdout is not None
    for line in process.stdout:
        if "listening on " in line:
            return process, line.split("listening on ", 1)[1].strip().removesuffix("/cloud")
    process.wait()
    raise SystemExit(f"the sandbox did not start (exit code {process.returncode})")


def control(base: str, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(f"{base}/_sandbox/{path}", data=data, method=method)
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def signed_queries(base: str) -> tuple[str, list[bytes]]:
    """Start one recording, then sign queries for it: raw HTTP/1.1 requests, ready to send."""
    settings = Settings(
        endpoint=f"{base}/cloud", access_key=ACCESS_KEY, secret_key=SecretStr(SECRET_KEY)
    )
    with KrtcClient(settings) as client:
        start = {
            "appId": APP,
            "cname": CNAME,
            "uid": "bench",
            "mode": "mix",
            "clientRequest": {
                "recordingConfig": {"maxIdleTime": 3600},
                "recordingFileConfig": {"avFileType": ["hls", "mp4"]},
            },
        }
        sid = client.start(start).sid
        assert sid
        query = parse_request(
            Action.QUERY, {"appId": APP, "cname": CNAME, "sid": sid, "mode": "mix"}
        )
        raws = []
        for _ in range(SIGNED_VARIANTS):
            prepared = client.prepare(query)
            # The signed headers carry Host and Content-Length.
            head = ["POST /cloud HTTP/1.1"]
            head += [f"{k}: {v}" for k, v in prepared.headers.items()]
            raws.append(("\r\n".join(head) + "\r\n\r\n").encode() + prepared.body)
    return sid, raws


async def worker(
    address: tuple[str, int],
    raw: bytes,
    sid: bytes,
    times: tuple[float, float, float],
    phase: Phase,
) -> None:
    """Send ``raw`` over one connection until ``deadline``; count what completes after ``measure``.

    ``times`` is (first send, start of measurement, deadline), on ``time.perf_counter``.
    """
    first, measure, deadline = times
    reader, writer = await asyncio.open_connection(*address)
    try:
        await asyncio.sleep(max(0.0, first - time.perf_counter()))
        while (now := time.perf_counter()) < deadline:
            writer.write(raw)
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
            body = await reader.readexactly(length)
            if now < measure:
                continue
            if head.startswith(b"HTTP/1.1 200") and sid in body:
                phase.requests += 1
            else:
                phase.errors += 1
    finally:
        writer.close()


async def run_phase(
    base: str, raws: list[bytes], sid: str, phase: Phase, duration_s: float
) -> None:
    """One phase: a warm-up (not counted), then ``duration_s`` of measurement.

    Clients start spread over one latency period: with a fixed latency, clients that all start at
    once stay in lockstep, and the server idles through each sleep then serves a burst; real
    clients are not synchronised.
    """
    host, port = base.removeprefix("http://").rsplit(":", 1)
    now = time.perf_counter()
    spread_s = phase.latency_ms / 1000
    warm_up_s = max(1.0, 2 * spread_s)
    measure = now + 0.2 + warm_up_s
    deadline = measure + duration_s
    await asyncio.gather(
        *(
            worker(
                (host, int(port)),
                raws[i % len(raws)],
                sid.encode(),
                (now + 0.2 + spread_s * i / phase.connections, measure, deadline),
                phase,
            )
            for i in range(phase.connections)
        )
    )
    phase.elapsed_s = duration_s


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=4.0, help="seconds per phase")
    parser.add_argument("--connections", type=int, default=200, help="zero-latency connections")
    parser.add_argument("--slow-connections", type=int, default=200)
    parser.add_argument("--latency-ms", type=float, default=50.0)
    parser.add_argument("--min-qps", type=float, default=1000.0)
    parser.add_argument("--min-ratio", type=float, default=0.8)
    args = parser.parse_args()

    process, base = start_sandbox()
    try:
        sid, raws = signed_queries(base)
        fast = Phase("zero latency", args.connections, 0.0)
        asyncio.run(run_phase(base, raws, sid, fast, args.duration))
        control(base, "POST", "faults", {"latency_ms": args.latency_ms})
        slow = Phase(f"{args.latency_ms:g} ms latency", args.slow_connections, args.latency_ms)
        asyncio.run(run_phase(base, raws, sid, slow, args.duration))
        stats = control(base, "GET", "stats")
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(10)

    ratio = slow.qps / fast.qps if fast.qps else 0.0
    print(f"sandbox throughput (signed CloudRecordingQuery, {os.cpu_count()} CPUs, same machine)")
    for phase in (fast, slow):
        print(
            f"  {phase.name:>16}: {phase.qps:8.0f} queries/s  ({phase.requests} in "
            f"{phase.elapsed_s:.1f} s, {phase.connections} connections, {phase.errors} errors)"
        )
    print(f"  {'ratio':>16}: {ratio:8.1%} of zero-latency throughput")
    if args.latency_ms:
        bound = args.slow_connections / (args.latency_ms / 1000)
        print(f"  (with latency, connections / latency bounds the rate at {bound:.0f}/s)")
    print(f"  server counted {stats['total']} requests: {stats['byStatus']}")
    missed = []
    if fast.qps < args.min_qps:
        missed.append(f"zero-latency throughput {fast.qps:.0f}/s < {args.min_qps:.0f}/s")
    if ratio < args.min_ratio:
        missed.append(f"latency ratio {ratio:.1%} < {args.min_ratio:.0%}")
    if fast.errors or slow.errors:
        missed.append(f"{fast.errors + slow.errors} answers were not a 200 with the sid")
    for line in missed:
        print(f"TARGET MISSED: {line}")
    if not missed:
        print(
            f"targets met: >= {args.min_qps:.0f} queries/s, latency ratio >= {args.min_ratio:.0%}"
        )
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
