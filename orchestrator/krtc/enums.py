"""Enumerations of the KRTC cloud-recording API (spec §4–§8), with their wire values."""

from __future__ import annotations

from enum import IntEnum, StrEnum

__all__ = [
    "Action",
    "Mode",
    "StreamTypes",
    "AudioProfile",
    "VideoCodecProfile",
    "VideoCodecType",
    "AudioCodecProfile",
    "MixedVideoLayout",
    "RenderMode",
    "AvFileType",
    "SnapshotFileType",
    "StorageVendor",
    "TrackType",
    "FileListMode",
    "RecordingStatus",
]


class Action(StrEnum):
    """The five API actions; the value is the ``x-action`` header."""

    START = "CloudRecordingStart"
    UPDATE = "CloudRecordingUpdate"
    QUERY = "CloudRecordingQuery"
    UPDATE_LAYOUT = "CloudRecordingUpdateLayout"
    STOP = "CloudRecordingStop"

    @property
    def short_name(self) -> str:
        """The CLI's name of the action, e.g. ``update-layout``."""
        return _SHORT_NAMES[self]

    @classmethod
    def from_short_name(cls, name: str) -> Action:
        """The action for a CLI name such as ``update-layout``."""
        for action, short in _SHORT_NAMES.items():
            if short == name:
                return action
        raise ValueError(
            f"unknown action {name!r}; choose one of {', '.join(_SHORT_NAMES.values())}"
        )


_SHORT_NAMES = {
    Action.START: "start",
    Action.UPDATE: "update",
    Action.QUERY: "query",
    Action.UPDATE_LAYOUT: "update-layout",
    Action.STOP: "stop",
}


class Mode(StrEnum):
    INDIVIDUAL = "individual"
    MIX = "mix"


class StreamTypes(IntEnum):
    AUDIO_ONLY = 0
    VIDEO_ONLY = 1
    AUDIO_AND_VIDEO = 2


class AudioProfile(IntEnum):
    MONO_48K_48KBPS = 0
    MONO_48K_128KBPS = 1
    STEREO_48K_192KBPS = 2


class VideoCodecProfile(IntEnum):
    BASELINE = 66
    MAIN = 77
    HIGH = 100


class VideoCodecType(IntEnum):
    H264 = 1
    H265 = 2


class AudioCodecProfile(IntEnum):
    LC_AAC = 0
    HE_AAC = 1


class MixedVideoLayout(IntEnum):
    PRESET_0 = 0
    PRESET_1 = 1
    PRESET_2 = 2
    CUSTOM = 3


class RenderMode(IntEnum):
    FILL_AND_CROP = 1
    FIT_WITH_BARS = 2


class AvFileType(StrEnum):
    HLS = "hls"
    MP4 = "mp4"


class SnapshotFileType(StrEnum):
    JPG = "jpg"


class StorageVendor(IntEnum):
    QINIU = 0
    AMAZON_S3 = 1
    ALIYUN = 2
    TENCENT_CLOUD = 3
    KINGSOFT_CLOUD = 4


class TrackType(StrEnum):
    AUDIO = "audio"
    VIDEO = "video"
    AUDIO_AND_VIDEO = "audio_and_video"


class FileListMode(StrEnum):
    STRING = "string"
    JSON = "json"


class RecordingStatus(IntEnum):
    """``serverResponse.status`` of a query (spec §6)."""

    NOT_STARTED = 0
    INITIALISED = 1
    COMPONENTS_STARTING = 2
    SOME_COMPONENTS_STARTED = 3
    ALL_COMPONENTS_STARTED = 4
    RECORDING = 5
    STOP_REQUESTED = 6
    COMPONENTS_STOPPED = 7
    EXITED = 8
    EXITED_ABNORMALLY = 20

    @property
    def is_finished(self) -> bool:
        """True once the recording has exited, normally (8) or abnormally (20)."""
        return self in (RecordingStatus.EXITED, RecordingStatus.EXITED_ABNORMALLY)
