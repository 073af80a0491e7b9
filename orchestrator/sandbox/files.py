"""The ``serverResponse`` of a query: status and the recorded files (spec §6).

* mix with ``avFileType ["hls"]``: ``fileListMode "string"``, ``fileList`` the ``.m3u8`` name;
* otherwise ``fileListMode "json"`` and a list of file items: in mix mode one per file type with
  ``uid "0"``; in individual mode one per file type, per user seen in the channel and per track
  (audio and video separately), honouring the recording's subscriptions;
* with a ``snapshotConfig``: neither ``fileListMode`` nor ``fileList``.

Files exist from the moment the recording reached status 5; ``sliceStartTime`` is that moment in
Unix milliseconds (0 before), also given at ``serverResponse`` level.
"""

from __future__ import annotations

from typing import Any

from orchestrator.krtc.enums import AvFileType, FileListMode, Mode, StreamTypes, TrackType
from orchestrator.sandbox.recording import Recording

__all__ = ["EXTENSIONS", "server_response", "file_items", "file_name"]

#: The extension of each avFileType.
EXTENSIONS = {AvFileType.HLS.value: "m3u8", AvFileType.MP4.value: "mp4"}


def file_name(rec: Recording, file_type: str, uid: str | None = None, track: str = "") -> str:
    """A file's name, under the storage's ``filenamePrefix`` folders when one was given."""
    stem = f"{rec.sid}_{rec.cname}"
    if uid is not None:
        stem = f"{stem}__uid_{uid}_{track}"
    name = f"{stem}.{EXTENSIONS[file_type]}"
    return "/".join((*rec.filename_prefix, name))


def _mixed_track(stream_types: int) -> str:
    if stream_types == StreamTypes.AUDIO_ONLY:
        return TrackType.AUDIO.value
    if stream_types == StreamTypes.VIDEO_ONLY:
        return TrackType.VIDEO.value
    return TrackType.AUDIO_AND_VIDEO.value


def file_items(rec: Recording, since_ms: int) -> list[dict[str, Any]]:
    """The file items of a recording (json file list mode).

    An HLS file is playable while it is being written; an MP4 file once the recording has exited.
    """
    items: list[dict[str, Any]] = []
    finished = rec.ended_at is not None

    def item(name: str, track: str, uid: str, mixed: bool) -> dict[str, Any]:
        return {
            "fileName": name,
            "trackType": track,
            "uid": uid,
            "mixedAllUsers": mixed,
            "isPlayable": finished or name.endswith(".m3u8"),
            "sliceStartTime": since_ms,
        }

    if rec.mode is Mode.MIX:
        track = _mixed_track(rec.stream_types)
        for file_type in rec.av_file_types:
            items.append(item(file_name(rec, file_type), track, "0", rec.subscriptions.is_everyone))
        return items
    audio = rec.stream_types != StreamTypes.VIDEO_ONLY
    video = rec.stream_types != StreamTypes.AUDIO_ONLY
    for uid in rec.seen_uids:
        for file_type in rec.av_file_types:
            if audio and rec.subscriptions.takes_audio(uid):
                name = file_name(rec, file_type, uid, TrackType.AUDIO.value)
                items.append(item(name, TrackType.AUDIO.value, uid, False))
            if video and rec.subscriptions.takes_video(uid):
                name = file_name(rec, file_type, uid, TrackType.VIDEO.value)
                items.append(item(name, TrackType.VIDEO.value, uid, False))
    return items


def server_response(rec: Recording, now: float) -> dict[str, Any]:
    """The ``serverResponse`` object of a query (or of a stop's answer) at ``now``."""
    status = rec.status(now)
    since = rec.is_recording_since(now)
    since_ms = int(since * 1000) if since is not None else 0
    out: dict[str, Any] = {}
    if rec.output != "snapshotConfig":
        is_string = rec.mode is Mode.MIX and rec.av_file_types == (AvFileType.HLS.value,)
        if is_string:
            out["fileListMode"] = FileListMode.STRING.value
            out["fileList"] = file_name(rec, AvFileType.HLS.value) if since is not None else ""
        else:
            out["fileListMode"] = FileListMode.JSON.value
            out["fileList"] = file_items(rec, since_ms) if since is not None else []
    out["status"] = status
    out["sliceStartTime"] = since_ms
    return out
