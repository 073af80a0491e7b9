"""The chaos soak's short form: ``bench/chaos.py`` with a budget of about two minutes.

It runs the soak as a script (its own Redis with AOF, sandbox, two workers, beat; faults of every
kind) with fewer recordings and asserts that every invariant held (exit status 0). The soak
prints the seed first: a failure is rerun with ``bench/chaos.py --seed N`` and the same sizes.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
#: Recordings, seconds of faults, settle time and the whole budget of the short form.
SHORT_FORM = ["--recordings", "50", "--duration", "80", "--settle", "40", "--budget", "135"]
#: The soak's own budget plus its clean-up; pytest's timeout lies above it.
LIMIT_S = 150

pytestmark = [
    pytest.mark.soak,
    pytest.mark.integration,
    pytest.mark.timeout(LIMIT_S + 20),
    pytest.mark.skipif(
        shutil.which("redis-server") is None, reason="the soak runs its own redis-server"
    ),
    pytest.mark.skipif(
        shutil.which("faketime") is None and not os.environ.get("CI"),
        reason="faketime is not installed (Debian: apt-get install faketime)",
    ),
]


def test_the_chaos_soak_keeps_every_invariant() -> None:
    # Given the whole stack under random 5xx, lost answers, duplicate deliveries, worker
    # SIGKILLs, a Redis restart and skewed clocks
    began = time.monotonic()
    # When the short form drives its recordings through the producer and lets them settle
    run = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "chaos.py"), *SHORT_FORM],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=LIMIT_S,
    )
    took = time.monotonic() - began
    # Then every invariant held, within the budget
    output = run.stdout + run.stderr
    assert run.returncode == 0, output[-20000:]
    assert "all invariants hold" in run.stdout, output[-20000:]
    assert took <= LIMIT_S, f"the soak took {took:.0f}s"
