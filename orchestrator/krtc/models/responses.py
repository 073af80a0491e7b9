"""Response bodies. Parsed leniently: unknown fields are kept, not rejected (spec D9)."""

from __future__ import annotations

from typing import ClassVar

from pydantic import AliasChoices, BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from orchestrator.krtc.enums import Action, RecordingStatus

__all__ = [
    "ResponseModel",
    "FileInfo",
    "ServerResponse",
    "SidResponse",
    "StartResponse",
    "UpdateResponse",
    "UpdateLayoutResponse",
    "QueryResponse",
    "StopResponse",
]


class ResponseModel(BaseModel):
    """Lenient base: camelCase on the wire, extra fields kept and dumped back."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        validate_by_name=True,
        validate_by_alias=True,
        serialize_by_alias=True,
        extra="allow",
    )

    def to_json_dict(self) -> dict[str, object]:
        """The response as received (extra fields included), for printing."""
        return self.model_dump(mode="json", exclude_none=True)


class FileInfo(ResponseModel):
    """One recorded file (spec §6)."""

    file_name: str | None = None
    #: ``audio`` | ``video`` | ``audio_and_video`` (kept as a string: the server may add kinds).
    track_type: str | None = None
    #: "0" in mix mode.
    uid: str | None = None
    # The source spells it both ways.
    mixed_all_users: bool | None = Field(
        default=None,
        validation_alias=AliasChoices("mixedAllUsers", "mixedAllUser", "mixed_all_users"),
    )
    is_playable: bool | None = None
    #: Unix time in milliseconds.
    slice_start_time: int | None = None


class ServerResponse(ResponseModel):
    file_list_mode: str | None = None
    file_list: str | list[FileInfo] | None = None
    status: int | None = None
    slice_start_time: int | None = None

    @property
    def files(self) -> list[FileInfo]:
        """``fileList`` as a list whatever its mode.

        In "string" mode (mix with ``["hls"]``) the string is the M3U8 name of the mixed file,
        returned as one item with ``uid`` "0". With a snapshot config there is no list: ``[]``.
        """
        if not self.file_list:
            return []
        # The value's own type decides, not fileListMode: a list is never turned into a name.
        if isinstance(self.file_list, str):
            return [FileInfo(file_name=self.file_list, uid="0", mixed_all_users=True)]
        return list(self.file_list)

    @property
    def recording_status(self) -> RecordingStatus | None:
        """``status`` as an enum; ``None`` when absent or a code this version does not know."""
        try:
            return RecordingStatus(self.status) if self.status is not None else None
        except ValueError:
            return None


class SidResponse(ResponseModel):
    action: ClassVar[Action]
    sid: str | None = None


class StartResponse(SidResponse):
    action: ClassVar[Action] = Action.START


class UpdateResponse(SidResponse):
    action: ClassVar[Action] = Action.UPDATE


class UpdateLayoutResponse(SidResponse):
    action: ClassVar[Action] = Action.UPDATE_LAYOUT


class _WithServerResponse(SidResponse):
    server_response: ServerResponse | None = None

    @property
    def files(self) -> list[FileInfo]:
        """The file list, uniformly (see :attr:`ServerResponse.files`)."""
        return self.server_response.files if self.server_response else []

    @property
    def status(self) -> int | None:
        return self.server_response.status if self.server_response else None


class QueryResponse(_WithServerResponse):
    action: ClassVar[Action] = Action.QUERY


class StopResponse(_WithServerResponse):
    """A stop may carry extra fields, such as a final file list (spec §8, D9)."""

    action: ClassVar[Action] = Action.STOP
