"""Requests on an existing recording: update, query, update-layout, stop (spec §5–§8)."""

from __future__ import annotations

from typing import Annotated, ClassVar

from pydantic import model_validator

from orchestrator.krtc.enums import Action, MixedVideoLayout, Mode
from orchestrator.krtc.fields import (
    NonEmptyStr,
    UidList,
    Violation,
    WireModel,
    choice,
    raise_violations,
)
from orchestrator.krtc.models.base import ApiRequest
from orchestrator.krtc.models.layout import LayoutSettings

__all__ = [
    "RecordingRef",
    "QueryRequest",
    "StopRequest",
    "VideoUidList",
    "AudioUidList",
    "StreamSubscribe",
    "UpdateClientRequest",
    "UpdateRequest",
    "LayoutClientRequest",
    "UpdateLayoutRequest",
]


class RecordingRef(ApiRequest):
    """appId, cname, sid and mode: how every call after start names a recording."""

    app_id: NonEmptyStr
    cname: NonEmptyStr
    sid: NonEmptyStr
    mode: Annotated[Mode, choice(Mode)]


class QueryRequest(RecordingRef):
    """Body of ``CloudRecordingQuery``."""

    action: ClassVar[Action] = Action.QUERY


class StopRequest(RecordingRef):
    """Body of ``CloudRecordingStop``."""

    action: ClassVar[Action] = Action.STOP


class VideoUidList(WireModel):
    subscribe_video_uids: UidList | None = None
    un_subscribe_video_uids: UidList | None = None


class AudioUidList(WireModel):
    subscribe_audio_uids: UidList | None = None
    un_subscribe_audio_uids: UidList | None = None


class StreamSubscribe(WireModel):
    video_uid_list: VideoUidList | None = None
    audio_uid_list: AudioUidList | None = None


class UpdateClientRequest(WireModel):
    stream_subscribe: StreamSubscribe


class UpdateRequest(RecordingRef):
    """Body of ``CloudRecordingUpdate``: new subscription lists."""

    action: ClassVar[Action] = Action.UPDATE
    client_request: UpdateClientRequest


class LayoutClientRequest(LayoutSettings):
    """``clientRequest`` of an update-layout (spec D10): ``mixedVideoLayout`` is required."""

    mixed_video_layout: Annotated[MixedVideoLayout, choice(MixedVideoLayout)]

    @model_validator(mode="after")
    def _layout_rules(self) -> LayoutClientRequest:
        raise_violations(self.layout_violations())
        return self


class UpdateLayoutRequest(RecordingRef):
    """Body of ``CloudRecordingUpdateLayout`` (spec D10); mix mode only."""

    action: ClassVar[Action] = Action.UPDATE_LAYOUT
    uid: NonEmptyStr
    client_request: LayoutClientRequest

    @model_validator(mode="after")
    def _mix_only(self) -> UpdateLayoutRequest:
        if self.mode != Mode.MIX:
            raise_violations(
                [
                    Violation(
                        ("mode",),
                        "must be mix: the layout of an individual recording cannot be updated",
                        self.mode.value,
                    )
                ]
            )
        return self
