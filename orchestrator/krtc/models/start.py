"""``CloudRecordingStart`` request (spec §4)."""

from __future__ import annotations

from typing import Annotated, ClassVar

from pydantic import (
    AliasChoices,
    Field,
    FieldSerializationInfo,
    SecretStr,
    field_serializer,
    model_validator,
)

from orchestrator.krtc.enums import (
    Action,
    AudioCodecProfile,
    AudioProfile,
    AvFileType,
    Mode,
    SnapshotFileType,
    StorageVendor,
    StreamTypes,
    VideoCodecProfile,
    VideoCodecType,
)
from orchestrator.krtc.fields import (
    Int,
    NonEmptyStr,
    PositiveInt,
    RtmpUrl,
    UidList,
    Violation,
    WireModel,
    choice,
    int_in_range,
    raise_violations,
)
from orchestrator.krtc.models.base import REVEAL_SECRETS, ApiRequest
from orchestrator.krtc.models.layout import LayoutSettings

__all__ = [
    "TranscodingConfig",
    "RecordingConfig",
    "RecordingFileConfig",
    "LivePushConfig",
    "SnapshotConfig",
    "StorageConfig",
    "StartClientRequest",
    "StartRequest",
]

REDACTED = "**********"


class TranscodingConfig(LayoutSettings):
    """Mixing settings (mix mode only, spec D7); width, height, fps and bitrate are required."""

    width: PositiveInt
    height: PositiveInt
    fps: PositiveInt
    bitrate: PositiveInt
    video_gop: PositiveInt | None = None
    video_codec_profile: Annotated[VideoCodecProfile, choice(VideoCodecProfile)] | None = None
    video_codec_type: Annotated[VideoCodecType, choice(VideoCodecType)] | None = None
    max_resolution_uid: NonEmptyStr | None = None
    audio_sample_rate: PositiveInt | None = None
    audio_bitrate: PositiveInt | None = None
    audio_channels: Annotated[Int, int_in_range(1, 5)] | None = None
    audio_codec_profile: Annotated[AudioCodecProfile, choice(AudioCodecProfile)] | None = None

    @model_validator(mode="after")
    def _layout_rules(self) -> TranscodingConfig:
        raise_violations(self.layout_violations())
        return self


class RecordingConfig(WireModel):
    """What to record (``clientRequest.recordingConfig``)."""

    max_idle_time: PositiveInt | None = None
    stream_types: Annotated[StreamTypes, choice(StreamTypes)] | None = None
    audio_profile: Annotated[AudioProfile, choice(AudioProfile)] | None = None
    transcoding_config: TranscodingConfig | None = None
    subscribe_video_uids: UidList | None = None
    un_subscribe_video_uids: UidList | None = None
    subscribe_audio_uids: UidList | None = None
    un_subscribe_audio_uids: UidList | None = None
    #: In the source's example only; passed through as given.
    channel_type: Int | None = None
    video_stream_type: Int | None = None


class RecordingFileConfig(WireModel):
    """Output file types: a non-empty list of distinct values from ``hls`` and ``mp4``."""

    av_file_type: list[Annotated[AvFileType, choice(AvFileType)]] = Field(min_length=1)

    @model_validator(mode="after")
    def _distinct(self) -> RecordingFileConfig:
        if len(set(self.av_file_type)) != len(self.av_file_type):
            raise_violations(
                [Violation(("avFileType",), "must not repeat a file type", list(self.av_file_type))]
            )
        return self


class LivePushConfig(WireModel):
    push_urls: list[RtmpUrl] = Field(min_length=1)


class SnapshotConfig(WireModel):
    capture_interval: Annotated[Int, int_in_range(5, 3600, "(seconds)")] | None = None
    file_type: list[Annotated[SnapshotFileType, choice(SnapshotFileType)]] = Field(
        min_length=1, max_length=1
    )


class StorageConfig(WireModel):
    """Third-party storage; ``secret_key`` is a :class:`SecretStr`, shown only on the wire."""

    vendor: Annotated[StorageVendor, choice(StorageVendor)]
    region: Int
    bucket: NonEmptyStr
    access_key: NonEmptyStr
    secret_key: SecretStr = Field(min_length=1)
    filename_prefix: list[NonEmptyStr] | None = None

    @field_serializer("secret_key")
    def _secret(self, value: SecretStr, info: FieldSerializationInfo) -> str:
        context = info.context or {}
        return value.get_secret_value() if context.get(REVEAL_SECRETS) else REDACTED


_EXCLUSIVE_OUTPUTS = ("livePushConfig", "snapshotConfig", "storageConfig")


class StartClientRequest(WireModel):
    """``clientRequest`` of a start; at most one of live push, snapshot and storage."""

    recording_config: RecordingConfig
    # spec D6: the source's table spells it "recodingFileConfig"; accept it, send the right name.
    recording_file_config: RecordingFileConfig = Field(
        validation_alias=AliasChoices(
            "recordingFileConfig", "recodingFileConfig", "recording_file_config"
        ),
        serialization_alias="recordingFileConfig",
    )
    live_push_config: LivePushConfig | None = None
    snapshot_config: SnapshotConfig | None = None
    storage_config: StorageConfig | None = None

    @model_validator(mode="after")
    def _one_output(self) -> StartClientRequest:
        given = [
            name
            for name, value in zip(
                _EXCLUSIVE_OUTPUTS,
                (self.live_push_config, self.snapshot_config, self.storage_config),
                strict=True,
            )
            if value is not None
        ]
        if len(given) > 1:
            raise_violations(
                [
                    Violation(
                        (given[1],),
                        f"cannot be set together with {given[0]}: at most one of "
                        f"{', '.join(_EXCLUSIVE_OUTPUTS)} may be set",
                    )
                ]
            )
        return self


class StartRequest(ApiRequest):
    """Body of ``CloudRecordingStart``."""

    action: ClassVar[Action] = Action.START

    uid: NonEmptyStr
    mode: Annotated[Mode, choice(Mode)]
    cname: NonEmptyStr
    app_id: NonEmptyStr
    client_request: StartClientRequest

    @model_validator(mode="after")
    def _mode_rules(self) -> StartRequest:
        recording = self.client_request.recording_config
        where = ("clientRequest", "recordingConfig")
        problems = []
        if self.mode == Mode.INDIVIDUAL:
            if recording.transcoding_config is not None:
                problems.append(
                    Violation(
                        (*where, "transcodingConfig"),
                        "is only allowed in mix mode (mode is individual)",
                    )
                )
            if recording.audio_profile is not None:
                problems.append(
                    Violation(
                        (*where, "audioProfile"),
                        "cannot be set in individual mode",
                        int(recording.audio_profile),
                    )
                )
        raise_violations(problems)
        return self

    @property
    def identity(self) -> tuple[str, str, str]:
        """(appId, cname, uid): how the server tells recordings apart at start (spec D11)."""
        return (self.app_id, self.cname, self.uid)
