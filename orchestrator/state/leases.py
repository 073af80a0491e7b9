"""Single-flight leases: at most one run of a session's action has its API call in flight.

A lease is a Redis key per (session, action) holding the token of the run that took it, with an
expiry in milliseconds on Redis' clock (``SET ... PX``), so a run whose worker died frees it
after the lease time and no host's clock decides. Taking it again with the same token renews
it; releasing it deletes it only if the token still holds it (never someone else's lease).

Used by the start (a redelivered or re-queued start waits for the one in flight instead of
sending a second start) and by updates and layout updates (copies of one message delivered at
once make one call, and calls of one action of a session never overlap).
"""

from __future__ import annotations

from redis import Redis

from orchestrator.state.backend import redis_errors
from orchestrator.state.keys import Keys
from orchestrator.state.scripts import LEASE

__all__ = ["SessionLeases"]


class SessionLeases:
    """The single-flight leases of (session, action) pairs.

    Args:
        redis: the client.
        keys: the key names (the session store's).
    """

    def __init__(self, redis: Redis, *, keys: Keys) -> None:
        self._redis = redis
        self.keys = keys
        self._script = redis.register_script(LEASE)

    def take(self, session_id: str, action: str, token: str, lease_s: float) -> bool:
        """Take the lease of ``action`` of the session for ``lease_s`` seconds.

        Args:
            session_id: the session.
            action: the job's action (``start``, ``update``, ``update-layout``).
            token: the run's own token (a fresh random one per run).
            lease_s: how long it holds without being released (at least 1 ms).

        Returns:
            Whether ``token`` holds it now (taken, or renewed by its holder).

        Raises:
            StateUnavailableError: Redis cannot be reached.
        """
        with redis_errors(self._redis):
            taken = self._script(
                keys=[self.keys.lease(session_id, action)],
                args=["take", token, max(1, int(lease_s * 1000))],
            )
        return bool(int(taken))

    def release(self, session_id: str, action: str, token: str) -> bool:
        """Release the lease if ``token`` still holds it.

        Returns:
            Whether it was released (False: it had expired, or another run holds it).
        """
        with redis_errors(self._redis):
            released = self._script(
                keys=[self.keys.lease(session_id, action)], args=["release", token, 0]
            )
        return bool(int(released))
