"""Sessions a page at a time, newest first, with a cursor that stays valid while sessions come
and go (the HTTP API's ``GET /v1/recordings``).

The cursor names the last session of a page. Every session is in the sorted set of sessions,
scored by creation time, and Redis orders equal scores by id; the next page is what comes after
the cursor in that order, so a session created meanwhile never shifts a page (it is newer than
the cursor) and a deleted one is simply absent. Active sessions are read from their set, whose ids
sort by creation time too.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import cast

from orchestrator.state.backend import redis_errors
from orchestrator.state.codec import text
from orchestrator.state.session import Session
from orchestrator.state.store import SessionStore

__all__ = ["MAX_PAGE", "Page", "InvalidCursorError", "page_sessions"]

#: The largest page.
MAX_PAGE = 500
#: Ids read per round trip while filling a page.
_BATCH = 200
#: Batches read for one page at most (filters that match little end a page early).
_MAX_BATCHES = 20


class InvalidCursorError(ValueError):
    """The cursor was not made by :func:`page_sessions`."""


@dataclass(frozen=True)
class Page:
    """A page of sessions and the cursor of the next one (``None``: this is the last)."""

    sessions: list[Session]
    next_cursor: str | None


def encode_cursor(session_id: str) -> str:
    """The opaque cursor after ``session_id``."""
    return base64.urlsafe_b64encode(session_id.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> str:
    """The session id a cursor names.

    Raises:
        InvalidCursorError: it is not a cursor.
    """
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        session_id = base64.b64decode(padded, altchars=b"-_", validate=True).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise InvalidCursorError("not a cursor of this API") from None
    if not session_id.isalnum():
        raise InvalidCursorError("not a cursor of this API")
    return session_id


def page_sessions(
    store: SessionStore,
    *,
    limit: int,
    cursor: str | None = None,
    active_only: bool = False,
    where: Callable[[Session], bool] | None = None,
) -> Page:
    """Up to ``limit`` sessions after ``cursor``, newest first, that ``where`` accepts.

    Raises:
        ValueError: ``limit`` is not within 1 and :data:`MAX_PAGE`.
        InvalidCursorError: the cursor is not one of this function's.
    """
    if not 1 <= limit <= MAX_PAGE:
        raise ValueError(f"limit must be between 1 and {MAX_PAGE}, got {limit}")
    after = decode_cursor(cursor) if cursor else None
    ids = _active_ids(store, after) if active_only else _all_ids(store, after)
    found: list[Session] = []
    last: str | None = None
    for _ in range(_MAX_BATCHES):
        batch = [next(ids, None) for _ in range(_BATCH)]
        chunk = [i for i in batch if i is not None]
        if not chunk:
            return Page(found, None)
        for session in store.get_many(chunk):
            last = session.id
            if where is None or where(session):
                found.append(session)
                if len(found) == limit:
                    return Page(found, encode_cursor(session.id))
        last = chunk[-1]
    return Page(found, encode_cursor(last) if last else None)


def _active_ids(store: SessionStore, after: str | None) -> Iterator[str]:
    ids = sorted(store.active_ids(), reverse=True)
    return iter([i for i in ids if after is None or i < after])


def _all_ids(store: SessionStore, after: str | None) -> Iterator[str]:
    redis, key = store.redis, store.keys.sessions()
    top: float | str = "+inf"
    if after is not None:
        with redis_errors(redis):
            score = cast("float | None", redis.zscore(key, after))
        if score is None:
            return
        top = float(score)
    offset = 0
    while True:
        with redis_errors(redis):
            rows = cast(
                "list[tuple[str | bytes, float]]",
                redis.zrevrangebyscore(key, top, "-inf", start=offset, num=_BATCH, withscores=True),
            )
        if not rows:
            return
        offset += len(rows)
        for member, score in rows:
            session_id = text(member)
            if after is not None and float(score) == top and session_id >= after:
                continue  # the cursor itself, and what came before it at the same time
            yield session_id
