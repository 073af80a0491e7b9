"""Redis Sentinel failover under load: no acknowledged stop lost, nothing started twice.

Runs ``bench/failover.py`` as a script: its own topology on 127.0.0.1 (a primary, one replica,
three ``redis-server --sentinel``, quorum 2, down-after-milliseconds 2000), the sandbox, two
workers and beat. It starts 40 recordings, requests the stops of half of them, SIGKILLs the
primary right after those ``stop()`` calls returned, requests the other stops after the
failover, and checks the sandbox's own records: all 40 stopped, none started twice, every
session final, and the time to recover within 15 s.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
#: The bench's own bound on the whole run (it takes about 30 s).
LIMIT_S = 150

pytestmark = [
    pytest.mark.integration,
    pytest.mark.failover,
    pytest.mark.timeout(LIMIT_S + 20),
    pytest.mark.skipif(
        shutil.which("redis-server") is None, reason="needs redis-server (with --sentinel)"
    ),
]


def test_a_failover_loses_no_acknowledged_stop() -> None:
    # Given 40 recordings on a Sentinel topology, half of them asked to stop
    # When the primary is SIGKILLed right after those stops returned, and the rest are asked
    # to stop once Sentinel has promoted the replica
    run = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "failover.py"), "--recordings", "40"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=LIMIT_S,
    )
    output = run.stdout + run.stderr
    # Then every recording stopped, none started twice, every session is final, in time
    assert run.returncode == 0, output[-20000:]
    result = json.loads(next(line for line in run.stdout.splitlines() if line.startswith("{")))
    assert result["stops_lost"] == 0
    assert result["started_twice"] == []
    assert result["sessions_not_final"] == []
    assert result["time_to_recover_s"] <= 15.0
    assert result["failover_noticed"], result
