"""Reliable recording for the Kingsoft Cloud KRTC cloud-recording API.

``from orchestrator import Recorder`` is the producer API (:mod:`orchestrator.producer`), and
``AsyncRecorder`` the same for asyncio (:mod:`orchestrator.async_producer`); they are loaded on
first use so that the API client alone does not import Celery.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from orchestrator.async_producer import AsyncRecorder
    from orchestrator.producer import Recorder

__all__ = ["AsyncRecorder", "Recorder"]


def __getattr__(name: str) -> Any:
    if name == "Recorder":
        from orchestrator.producer import Recorder

        return Recorder
    if name == "AsyncRecorder":
        from orchestrator.async_producer import AsyncRecorder

        return AsyncRecorder
    raise AttributeError(f"module 'orchestrator' has no attribute {name!r}")
