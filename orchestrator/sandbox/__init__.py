"""A local simulator of the KRTC cloud-recording API, with fault injection.

It verifies KOP (SigV4) signatures, validates bodies with the shared models, simulates the life of
recordings (status 0..8, 20), and answers a JSON control API under ``/_sandbox/``. See
``docs/sandbox.md``.

Run it with ``krtc-rec sandbox`` or, from code, :class:`SandboxThread`.
"""

from __future__ import annotations

from orchestrator.sandbox.config import Behaviour, SandboxConfig
from orchestrator.sandbox.faults import FaultSpec
from orchestrator.sandbox.runner import SandboxThread, serve_forever
from orchestrator.sandbox.server import CLOUD_PATH, CONTROL_PREFIX, SandboxServer
from orchestrator.sandbox.service import Sandbox

__all__ = [
    "CLOUD_PATH",
    "CONTROL_PREFIX",
    "Behaviour",
    "FaultSpec",
    "Sandbox",
    "SandboxConfig",
    "SandboxServer",
    "SandboxThread",
    "serve_forever",
]
