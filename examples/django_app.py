"""Django views that record lessons through the orchestrator's queue: an async view with
AsyncRecorder and a sync view with Recorder. One file for the example; in a project, the views
go to ``views.py`` and the routes to ``urls.py``.

Run it under an ASGI server (the async view needs one event loop for the app's life)::

    REDIS_URL=redis://127.0.0.1:6379/0 uvicorn --app-dir examples django_app:application
    curl -X POST localhost:8000/lessons/math-101/recording
    curl localhost:8000/recordings/SESSION_ID
    curl -X POST localhost:8000/recordings/SESSION_ID/stop

AsyncRecorder's Redis connections belong to the event loop that opened them: under WSGI
(``runserver`` or gunicorn's sync workers) Django runs each async view in a new loop, so use the
sync Recorder there, as in :func:`recording`.
"""

from __future__ import annotations

import os
from typing import Any

import django
from django.conf import settings
from django.core.asgi import get_asgi_application
from django.http import HttpRequest, JsonResponse
from django.urls import path
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST

from orchestrator import AsyncRecorder, Recorder
from orchestrator.krtc.validation import RequestValidationError
from orchestrator.state import SessionNotFoundError

if not settings.configured:
    settings.configure(
        DEBUG=False,
        ALLOWED_HOSTS=["*"],
        ROOT_URLCONF=__name__,
        SECRET_KEY=os.environ.get("DJANGO_SECRET_KEY", "example-only-not-secret"),
        INSTALLED_APPS=[],
        MIDDLEWARE=[],
    )
    django.setup()

#: For async views (ASGI).
async_recorder = AsyncRecorder.from_env()
#: For sync views (WSGI or ASGI).
recorder = Recorder.from_env()


def start_request(lesson: str) -> dict[str, Any]:
    """The start request of a lesson's recording (storage named by profile: no secret)."""
    return {
        "appId": "my-app",
        "cname": lesson,
        "uid": "900001",
        "mode": "mix",
        "clientRequest": {
            "recordingConfig": {"maxIdleTime": 120, "streamTypes": 2},
            "recordingFileConfig": {"avFileType": ["hls"]},
            "storageConfig": {"profile": "recordings"},
        },
    }


def _session(session: Any) -> dict[str, Any]:
    return {"session": session.id, "phase": session.phase.value, "files": session.files}


@csrf_exempt
@require_POST
async def start_recording(request: HttpRequest, lesson: str) -> JsonResponse:
    """Start (or find) the recording of a lesson: stored and queued, returns at once."""
    idempotency_key = request.headers.get("Idempotency-Key") or None
    try:
        session = await async_recorder.start(start_request(lesson), idempotency_key=idempotency_key)
    except RequestValidationError as exc:
        return JsonResponse({"errors": [e.to_dict() for e in exc.errors]}, status=422)
    return JsonResponse(_session(session), status=202)


@csrf_exempt
@require_POST
async def stop_recording(request: HttpRequest, session_id: str) -> JsonResponse:
    """Stop it (a restarted recording's live successor is the one stopped)."""
    try:
        session = await async_recorder.stop(session_id)
    except SessionNotFoundError:
        return JsonResponse({"error": "no such recording"}, status=404)
    return JsonResponse(_session(session), status=202)


@require_GET
def recording(request: HttpRequest, session_id: str) -> JsonResponse:
    """A sync view: the sync Recorder (Django runs it in a thread under ASGI)."""
    try:
        session = recorder.get(session_id)
    except SessionNotFoundError:
        return JsonResponse({"error": "no such recording"}, status=404)
    return JsonResponse(_session(session))


urlpatterns = [
    path("lessons/<str:lesson>/recording", start_recording),
    path("recordings/<str:session_id>", recording),
    path("recordings/<str:session_id>/stop", stop_recording),
]

application = get_asgi_application()
