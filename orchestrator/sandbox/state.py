"""The sandbox's recordings and channels, and the five actions applied to them.

Identity (spec D11): at start, a recording is known by (appId, cname, uid), and only one may be
active per triple (a second start is a 409 "duplicate start"); afterwards by its sid. Once it has
exited, the same uid may start again; the exited recording still answers queries (status 8 or 20)
for ``retention_s``, then it is purged and its sid is a 404.

Channels hold simulated users, set through the control API. A channel whose users were never set
has the default users (:attr:`Behaviour.default_channel_users`); a channel set to no users is
empty, and a recording in an empty channel exits after its maxIdleTime.
"""

from __future__ import annotations

import random
import string
import time
from collections.abc import Callable
from typing import Any

from orchestrator.krtc.enums import Mode, RecordingStatus, StreamTypes
from orchestrator.krtc.models import (
    QueryRequest,
    StartRequest,
    StopRequest,
    UpdateLayoutRequest,
    UpdateRequest,
)
from orchestrator.sandbox.config import DEFAULT_MAX_IDLE_TIME_S, Behaviour
from orchestrator.sandbox.errors import BadRequest, Conflict, NotFound
from orchestrator.sandbox.recording import Recording, Subscriptions

__all__ = ["SID_LENGTH", "SID_ALPHABET", "Clock", "SandboxState"]

Clock = Callable[[], float]
#: sids look like the server's: 20 characters of 0-9 and a-v (e.g. "c4pl5e1kereqmo8pac40").
SID_LENGTH = 20
SID_ALPHABET = string.digits + string.ascii_lowercase[:22]
_PURGE_EVERY_S = 5.0

ChannelKey = tuple[str, str]


class SandboxState:
    """Recordings by sid, the active one of each (appId, cname, uid), and channel users.

    Not thread-safe: the server's event loop is its only user.

    Args:
        behaviour: timings and defaults (replaced at run time through :attr:`behaviour`).
        rng: the source of sids.
        clock: Unix time now; :meth:`advance` adds an offset to it.
    """

    def __init__(
        self, behaviour: Behaviour, *, rng: random.Random, clock: Clock = time.time
    ) -> None:
        self.behaviour = behaviour
        self._rng = rng
        self._clock = clock
        self.offset_s = 0.0
        self.recordings: dict[str, Recording] = {}
        self._active: dict[tuple[str, str, str], str] = {}
        self._channels: dict[ChannelKey, list[str]] = {}
        self._last_purge = 0.0

    def now(self) -> float:
        """The sandbox clock: the injected clock plus any :meth:`advance`."""
        return self._clock() + self.offset_s

    def advance(self, seconds: float) -> float:
        """Move the sandbox clock forward (timings only; signatures use the real clock)."""
        self.offset_s += seconds
        return self.offset_s

    # Channels ------------------------------------------------------------------------------

    def users(self, app_id: str, cname: str) -> list[str]:
        """The simulated users in a channel."""
        users = self._channels.get((app_id, cname))
        return list(self.behaviour.default_channel_users if users is None else users)

    def set_users(self, app_id: str, cname: str, users: list[str]) -> None:
        """Set a channel's users; its recordings notice at once (idle clock, seen users)."""
        self._channels[(app_id, cname)] = list(dict.fromkeys(users))
        now = self.now()
        for rec in self.recordings.values():
            if (rec.app_id, rec.cname) == (app_id, cname):
                rec.channel_changed(self.users(app_id, cname), now)

    def channels(self) -> dict[str, dict[str, list[str]]]:
        """Users of every channel set through the control API, by appId then cname."""
        out: dict[str, dict[str, list[str]]] = {}
        for (app_id, cname), users in self._channels.items():
            out.setdefault(app_id, {})[cname] = list(users)
        return out

    # Lookup --------------------------------------------------------------------------------

    def _new_sid(self) -> str:
        while True:
            sid = "".join(self._rng.choices(SID_ALPHABET, k=SID_LENGTH))
            if sid not in self.recordings:
                return sid

    def purge(self, now: float | None = None) -> int:
        """Forget recordings that ended more than ``retention_s`` ago; returns how many."""
        now = self.now() if now is None else now
        keep = self.behaviour.retention_s
        gone = []
        for sid, rec in self.recordings.items():
            rec.refresh(now)
            if rec.ended_at is not None and rec.ended_at + keep <= now:
                gone.append(sid)
        for sid in gone:
            self._forget(sid)
        self._last_purge = now
        return len(gone)

    def _forget(self, sid: str) -> None:
        rec = self.recordings.pop(sid)
        key = (rec.app_id, rec.cname, rec.uid)
        if self._active.get(key) == sid:
            del self._active[key]

    def get(self, sid: str) -> Recording:
        """The recording ``sid`` (ended ones too, within retention).

        Raises:
            NotFound: no such sid, or it was purged.
        """
        rec = self.recordings.get(sid)
        if rec is None:
            raise NotFound(f"task not found: no recording with sid {sid!r}")
        now = self.now()
        rec.refresh(now)
        if rec.ended_at is not None and rec.ended_at + self.behaviour.retention_s <= now:
            self._forget(sid)
            raise NotFound(f"task not found: no recording with sid {sid!r}")
        return rec

    def find(self, app_id: str, cname: str, sid: str, *, active: bool = False) -> Recording:
        """The recording ``sid`` of this appId and cname; with ``active``, not yet exited.

        Raises:
            NotFound: unknown sid, another channel's sid, or (with ``active``) exited.
        """
        rec = self.get(sid)
        if (rec.app_id, rec.cname) != (app_id, cname):
            raise NotFound(f"task not found: sid {sid!r} is not a recording of this appId/cname")
        if active and rec.ended_at is not None:
            raise NotFound(f"task not found: the recording {sid!r} has ended")
        return rec

    # Actions -------------------------------------------------------------------------------

    def start(
        self, req: StartRequest, *, stuck_status: int | None, doom_after_s: float | None
    ) -> Recording:
        """Create a recording.

        Raises:
            Conflict: one is already active for (appId, cname, uid).
        """
        now = self.now()
        if now - self._last_purge >= _PURGE_EVERY_S:
            self.purge(now)
        key = req.identity
        running = self._active.get(key)
        if running is not None and running in self.recordings:
            rec = self.recordings[running]
            rec.refresh(now)
            if rec.ended_at is None:
                sid = running if self.behaviour.conflict_sid_in_body else None
                raise Conflict("duplicate start", sid=sid)
        cr = req.client_request
        rc = cr.recording_config
        output = next(
            (
                name
                for name, value in (
                    ("storageConfig", cr.storage_config),
                    ("snapshotConfig", cr.snapshot_config),
                    ("livePushConfig", cr.live_push_config),
                )
                if value is not None
            ),
            None,
        )
        rec = Recording(
            sid=self._new_sid(),
            app_id=req.app_id,
            cname=req.cname,
            uid=req.uid,
            mode=Mode(req.mode),
            started_at=now,
            start_duration_s=self.behaviour.start_duration_s,
            stop_duration_s=self.behaviour.stop_duration_s,
            max_idle_s=float(rc.max_idle_time or DEFAULT_MAX_IDLE_TIME_S),
            av_file_types=tuple(str(t.value) for t in cr.recording_file_config.av_file_type),
            stream_types=int(
                rc.stream_types if rc.stream_types is not None else StreamTypes.AUDIO_AND_VIDEO
            ),
            output=output,
            filename_prefix=tuple(
                cr.storage_config.filename_prefix or () if cr.storage_config else ()
            ),
            subscriptions=Subscriptions(
                video=rc.subscribe_video_uids,
                no_video=rc.un_subscribe_video_uids,
                audio=rc.subscribe_audio_uids,
                no_audio=rc.un_subscribe_audio_uids,
            ),
            request=req.redacted(),
            stuck_status=stuck_status,
            doom_at=None if doom_after_s is None else now + doom_after_s,
        )
        rec.channel_changed(self.users(req.app_id, req.cname), now)
        self.recordings[rec.sid] = rec
        self._active[key] = rec.sid
        return rec

    def query(self, req: QueryRequest) -> Recording:
        """The recording a query names (exited ones within retention)."""
        return self.find(req.app_id, req.cname, req.sid)

    def update(self, req: UpdateRequest) -> Recording:
        """Change an active recording's subscriptions."""
        rec = self.find(req.app_id, req.cname, req.sid, active=True)
        sub = req.client_request.stream_subscribe
        if sub.video_uid_list is not None:
            rec.subscriptions.video = sub.video_uid_list.subscribe_video_uids
            rec.subscriptions.no_video = sub.video_uid_list.un_subscribe_video_uids
        if sub.audio_uid_list is not None:
            rec.subscriptions.audio = sub.audio_uid_list.subscribe_audio_uids
            rec.subscriptions.no_audio = sub.audio_uid_list.un_subscribe_audio_uids
        rec.updates += 1
        return rec

    def update_layout(self, req: UpdateLayoutRequest) -> Recording:
        """Change an active mix recording's layout.

        Raises:
            BadRequest: the recording was started in individual mode.
        """
        rec = self.find(req.app_id, req.cname, req.sid, active=True)
        if rec.mode is not Mode.MIX:
            raise BadRequest(
                f"invalid parameters: the recording {rec.sid!r} was started in individual mode; "
                "only a mix recording has a layout"
            )
        rec.layout = req.client_request.model_dump(mode="json", exclude_none=True)
        rec.updates += 1
        return rec

    def stop(self, req: StopRequest) -> Recording:
        """Begin an active recording's stop (6, 7, then 8); a second stop changes nothing."""
        rec = self.find(req.app_id, req.cname, req.sid, active=True)
        if rec.stop_at is None:
            rec.stop_at = self.now()
            if rec.pinned is not None and rec.pinned < RecordingStatus.STOP_REQUESTED:
                rec.pinned = None
        return rec

    # Control -------------------------------------------------------------------------------

    def set_status(self, sid: str, status: int | None) -> Recording:
        """Force a status: 8 or 20 ends the recording now; 0..7 pins it; ``None`` unpins."""
        rec = self.get(sid)
        now = self.now()
        if status in (RecordingStatus.EXITED, RecordingStatus.EXITED_ABNORMALLY):
            rec.end(now, int(status), "forced")
            return rec
        if rec.ended_at is not None:
            raise Conflict(f"the recording {sid!r} has ended; its status can no longer change")
        rec.pinned = status
        if status is not None and status < RecordingStatus.RECORDING:
            rec.freeze(now)
        elif status is not None and (rec.t5 is None or rec.t5 > now):
            # Pinned at 5 or later: the recording has files from now on.
            rec.t5 = now
        rec.thaw(now)
        return rec

    def stick(self, sid: str, status: int) -> Recording:
        """Keep an active recording's start progression at or below ``status`` (a fault)."""
        rec = self.get(sid)
        rec.stuck_status = status
        rec.freeze(self.now())
        return rec

    def unstick_all(self) -> None:
        """Clear the stuck and doomed faults of every recording."""
        now = self.now()
        for rec in self.recordings.values():
            rec.refresh(now)
            rec.doom_at = None
            if rec.stuck_status is not None:
                rec.stuck_status = None
                rec.thaw(now)

    def counts(self) -> dict[str, Any]:
        """How many recordings are kept, and how many are active."""
        now = self.now()
        active = sum(1 for r in self.recordings.values() if r.status(now) < 8)
        return {"recordings": len(self.recordings), "active": active}
