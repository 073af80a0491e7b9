"""A FastAPI app that records its lessons through the orchestrator's queue (AsyncRecorder).

Run it beside Redis and a worker (``krtc-rec worker``)::

    REDIS_URL=redis://127.0.0.1:6379/0 uvicorn --app-dir examples fastapi_app:app --port 8000
    curl -X POST localhost:8000/lessons/math-101/recording
    curl localhost:8000/lessons/math-101/recording/SESSION_ID
    curl -X DELETE localhost:8000/lessons/math-101/recording/SESSION_ID

Every call returns at once: the start is stored and queued in one Redis round trip, and a
worker makes the API call. The event loop never waits on Redis (``redis.asyncio``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, HTTPException

from orchestrator import AsyncRecorder
from orchestrator.krtc.validation import RequestValidationError
from orchestrator.state import SessionNotFoundError

recorder = AsyncRecorder.from_env()


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    yield
    await recorder.close()


app = FastAPI(title="lessons", lifespan=lifespan)


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


@app.post("/lessons/{lesson}/recording", status_code=202)
async def start(lesson: str) -> dict[str, Any]:
    try:
        # The same lesson twice (a double click, a retried request) gives the same session.
        session = await recorder.start(start_request(lesson), max_duration_s=3 * 3600)
    except RequestValidationError as exc:
        raise HTTPException(422, [e.to_dict() for e in exc.errors]) from None
    return {"session": session.id, "phase": session.phase.value}


@app.get("/lessons/{lesson}/recording/{session_id}")
async def read(lesson: str, session_id: str) -> dict[str, Any]:
    try:
        session = await recorder.get(session_id)
    except SessionNotFoundError:
        raise HTTPException(404, "no such recording") from None
    return {"session": session.id, "phase": session.phase.value, "files": session.files}


@app.delete("/lessons/{lesson}/recording/{session_id}", status_code=202)
async def stop(lesson: str, session_id: str) -> dict[str, Any]:
    try:
        session = await recorder.stop(session_id)
    except SessionNotFoundError:
        raise HTTPException(404, "no such recording") from None
    return {"session": session.id, "phase": session.phase.value}
