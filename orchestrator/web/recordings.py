"""``/v1/recordings``: start, read, list, stop, update and re-layout recordings."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Header, Query, Request, Response
from starlette.concurrency import run_in_threadpool

from orchestrator.async_producer import AsyncRecorder
from orchestrator.krtc.validation import FieldError
from orchestrator.state import Session, SessionStore
from orchestrator.state.pages import MAX_PAGE, InvalidCursorError, page_sessions
from orchestrator.web.body import json_object
from orchestrator.web.errors import ApiError

__all__ = ["router"]

router = APIRouter(prefix="/v1/recordings", tags=["recordings"])


def _recorder(request: Request) -> AsyncRecorder:
    recorder: AsyncRecorder = request.app.state.recorder
    return recorder


def _session(session: Session) -> dict[str, Any]:
    return session.model_dump(mode="json")


def _options(body: dict[str, Any]) -> dict[str, Any]:
    """Take the session options out of ``body``; field errors for bad ones."""
    options: dict[str, Any] = {}
    problems: list[FieldError] = []
    duration = body.pop("maxDurationS", None)
    if duration is not None:
        if isinstance(duration, bool) or not isinstance(duration, int) or duration < 1:
            problems.append(FieldError("maxDurationS", "must be a positive integer (seconds)"))
        else:
            options["max_duration_s"] = duration
    restart = body.pop("restartOnFailure", None)
    if restart is not None:
        if not isinstance(restart, bool):
            problems.append(FieldError("restartOnFailure", "must be true or false"))
        else:
            options["restart_on_failure"] = restart
    if problems:
        raise ApiError(422, "invalid_request", "invalid session options", fields=problems)
    return options


@router.post(
    "",
    status_code=202,
    response_model=Session,
    summary="Start a recording",
    responses={
        200: {
            "description": "the session this idempotency key, or the channel's "
            "unfinished recording, already has (nothing queued)"
        }
    },
)
async def start(
    request: Request,
    response: Response,
    idempotency_key: str | None = Header(default=None, alias="Idempotency-Key"),
) -> dict[str, Any]:
    """The body is the start request of the API (appId, cname, uid, mode, clientRequest, with a
    storage profile), with optional `maxDurationS` and `restartOnFailure` beside it. 202: stored
    and queued; 200: deduplicated (the existing session, nothing queued)."""
    body = await json_object(request)
    options = _options(body)
    if idempotency_key is not None and not idempotency_key.strip():
        raise ApiError(
            422,
            "invalid_request",
            "empty idempotency key",
            fields=[FieldError("Idempotency-Key", "must not be empty")],
        )
    result = await _recorder(request).start_once(body, idempotency_key=idempotency_key, **options)
    if not result.created:
        response.status_code = 200
    return _session(result.session)


@router.get("/{session_id}", response_model=Session, summary="Read a recording")
async def get(request: Request, session_id: str) -> dict[str, Any]:
    """The session, with its history."""
    session = await _recorder(request).get(session_id, with_history=True)
    return _session(session)


@router.get("", summary="List recordings, newest first")
async def list_recordings(
    request: Request,
    active: bool = False,
    app_id: str | None = Query(default=None, alias="appId"),
    cname: str | None = None,
    limit: int = Query(default=50, ge=1, le=MAX_PAGE),
    cursor: str | None = None,
) -> dict[str, Any]:
    """`{"recordings": [...], "nextCursor": ...}`; pass `nextCursor` as `cursor` for the next
    page (absent on the last)."""

    def accept(session: Session) -> bool:
        return (app_id is None or session.app_id == app_id) and (
            cname is None or session.cname == cname
        )

    store: SessionStore = request.app.state.store
    try:
        page = await run_in_threadpool(
            page_sessions, store, limit=limit, cursor=cursor, active_only=active, where=accept
        )
    except InvalidCursorError as exc:
        raise ApiError(
            422, "invalid_request", str(exc), fields=[FieldError("cursor", str(exc))]
        ) from None
    return {
        "recordings": [_session(s) for s in page.sessions],
        "nextCursor": page.next_cursor,
    }


@router.post("/{session_id}/stop", status_code=202, response_model=Session, summary="Stop")
async def stop(request: Request, session_id: str) -> dict[str, Any]:
    """Request the stop (never dropped). A session the restart policy replaced passes it on to
    its live successor: the answer is the session stopped."""
    session = await _recorder(request).stop(session_id, why="stop requested through the HTTP API")
    return _session(session)


@router.post("/{session_id}/layout", status_code=202, response_model=Session, summary="Layout")
async def layout(request: Request, session_id: str) -> dict[str, Any]:
    """The body is the `clientRequest` of update-layout. 409 when the recording has ended."""
    body = await json_object(request)
    session = await _recorder(request).update_layout(session_id, body)
    return _session(session)


@router.post("/{session_id}/update", status_code=202, response_model=Session, summary="Update")
async def update(request: Request, session_id: str) -> dict[str, Any]:
    """The body is the `clientRequest` of update (subscriptions). 409 when it has ended."""
    body = await json_object(request)
    session = await _recorder(request).update(session_id, body)
    return _session(session)
