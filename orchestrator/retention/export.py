"""Finished sessions, with their history, read in the order they finished: what ``krtc-rec
export`` writes as JSON Lines before the collector deletes them.

The finished index (``{p}:finished``, scored by finish time on Redis' clock) is paged by score,
so an export of any length holds no more than a page in memory and never blocks Redis.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, cast

from orchestrator.state.backend import redis_errors
from orchestrator.state.codec import text
from orchestrator.state.errors import CorruptSessionError
from orchestrator.state.session import Session
from orchestrator.state.store import SessionStore

__all__ = ["DEFAULT_EXPORT_PAGE", "finished_sessions"]

#: Sessions read per round trip.
DEFAULT_EXPORT_PAGE = 200


def finished_sessions(
    store: SessionStore,
    *,
    since: float,
    until: float | None = None,
    page: int = DEFAULT_EXPORT_PAGE,
) -> Iterator[tuple[float, Session | None, str]]:
    """The sessions that finished at or after ``since`` (and at or before ``until``), oldest
    first: ``(finished at, session with its history, id)``; the session is ``None`` when its
    record does not decode (or was deleted meanwhile).

    Raises:
        StateUnavailableError: Redis is unreachable.
    """
    redis = store.redis
    index = store.keys.finished()
    low = repr(since)
    high = "+inf" if until is None else repr(until)
    while True:
        with redis_errors(redis):
            raw = cast(
                "list[tuple[Any, float]]",
                redis.zrangebyscore(index, low, high, start=0, num=page, withscores=True),
            )
        for member, score in raw:
            session_id = text(member)
            try:
                session = store.get(session_id, with_history=True)
            except CorruptSessionError:
                session = None
            yield float(score), session, session_id
        if len(raw) < page:
            return
        # Resume after the last score; members sharing it are re-read and skipped.
        last_score = raw[-1][1]
        seen = {text(m) for m, s in raw if s == last_score}
        low = repr(last_score)
        while True:
            with redis_errors(redis):
                same = cast(
                    "list[Any]",
                    redis.zrangebyscore(index, low, low, start=0, num=len(seen) + page),
                )
            rest = [text(m) for m in same if text(m) not in seen]
            for session_id in rest:
                try:
                    session = store.get(session_id, with_history=True)
                except CorruptSessionError:
                    session = None
                yield float(last_score), session, session_id
            if len(same) < len(seen) + page:
                break
            seen.update(rest)
        low = f"({last_score!r}"
