"""The HTTP API (``krtc-rec serve``): web apps in any language start, stop and read recordings.

FastAPI on uvicorn, from the optional extra ``krtc-orchestrator[http]``. The endpoints are thin:
they parse and check the request, call the same :class:`~orchestrator.producer.Recorder` a
Python web app uses (so validation, deduplication and the outbox are the same), and map its
errors to HTTP statuses with one error body, ``{"error": {"code", "message", "fields"}}``.
"""

from orchestrator.web.app import MAX_BODY_BYTES, create_app

__all__ = ["MAX_BODY_BYTES", "create_app"]
