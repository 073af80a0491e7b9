"""Typed request and response bodies of the five actions (spec §4–§8)."""

from __future__ import annotations

from orchestrator.krtc.enums import Action
from orchestrator.krtc.models.base import ApiRequest
from orchestrator.krtc.models.layout import (
    MAX_LAYOUT_REGIONS,
    LayoutRegion,
    LayoutSettings,
    UserBackground,
)
from orchestrator.krtc.models.requests import (
    AudioUidList,
    LayoutClientRequest,
    QueryRequest,
    RecordingRef,
    StopRequest,
    StreamSubscribe,
    UpdateClientRequest,
    UpdateLayoutRequest,
    UpdateRequest,
    VideoUidList,
)
from orchestrator.krtc.models.responses import (
    FileInfo,
    QueryResponse,
    ResponseModel,
    ServerResponse,
    SidResponse,
    StartResponse,
    StopResponse,
    UpdateLayoutResponse,
    UpdateResponse,
)
from orchestrator.krtc.models.start import (
    LivePushConfig,
    RecordingConfig,
    RecordingFileConfig,
    SnapshotConfig,
    StartClientRequest,
    StartRequest,
    StorageConfig,
    TranscodingConfig,
)

#: The request body model of each action.
REQUEST_MODELS: dict[Action, type[ApiRequest]] = {
    Action.START: StartRequest,
    Action.UPDATE: UpdateRequest,
    Action.QUERY: QueryRequest,
    Action.UPDATE_LAYOUT: UpdateLayoutRequest,
    Action.STOP: StopRequest,
}

#: The response body model of each action.
RESPONSE_MODELS: dict[Action, type[SidResponse]] = {
    Action.START: StartResponse,
    Action.UPDATE: UpdateResponse,
    Action.QUERY: QueryResponse,
    Action.UPDATE_LAYOUT: UpdateLayoutResponse,
    Action.STOP: StopResponse,
}

__all__ = [
    "REQUEST_MODELS",
    "RESPONSE_MODELS",
    "MAX_LAYOUT_REGIONS",
    "ApiRequest",
    "AudioUidList",
    "FileInfo",
    "LayoutClientRequest",
    "LayoutRegion",
    "LayoutSettings",
    "LivePushConfig",
    "QueryRequest",
    "QueryResponse",
    "RecordingConfig",
    "RecordingFileConfig",
    "RecordingRef",
    "ResponseModel",
    "ServerResponse",
    "SidResponse",
    "SnapshotConfig",
    "StartClientRequest",
    "StartRequest",
    "StartResponse",
    "StopRequest",
    "StopResponse",
    "StorageConfig",
    "StreamSubscribe",
    "TranscodingConfig",
    "UpdateClientRequest",
    "UpdateLayoutRequest",
    "UpdateLayoutResponse",
    "UpdateRequest",
    "UpdateResponse",
    "UserBackground",
    "VideoUidList",
]
