"""A local Sentinel topology for a test module: a primary, a replica and three Sentinels.

A module imports ``topology`` (module-scoped: one topology per importing module, started once
and stopped after its last test).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from orchestrator.stack.sentinel import SentinelTopology

__all__ = ["topology"]


@pytest.fixture(scope="module")
def topology() -> Iterator[SentinelTopology]:
    """A primary, a replica and three Sentinels for the whole module."""
    nodes = SentinelTopology(replicas=1, sentinels=3, quorum=2)
    nodes.start()
    try:
        yield nodes
    finally:
        nodes.stop()
