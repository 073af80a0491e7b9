"""Mixed-video layout: regions, per-user backgrounds, canvas settings (spec §4, §7)."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, model_validator

from orchestrator.krtc.enums import MixedVideoLayout, RenderMode
from orchestrator.krtc.fields import (
    Alpha,
    Colour,
    Fraction,
    NonEmptyStr,
    Violation,
    WireModel,
    choice,
    raise_violations,
)

__all__ = ["MAX_LAYOUT_REGIONS", "LayoutRegion", "UserBackground", "LayoutSettings"]

#: spec §4: layoutConfig describes at most 17 users' regions.
MAX_LAYOUT_REGIONS = 17


class LayoutRegion(WireModel):
    """One user's region on the canvas; every number is a fraction of the canvas (spec D8)."""

    uid: NonEmptyStr | None = None
    x_axis: Fraction = Field(alias="x_axis")
    y_axis: Fraction = Field(alias="y_axis")
    width: Fraction
    height: Fraction
    alpha: Alpha | None = None
    render_mode: Annotated[RenderMode, choice(RenderMode)] | None = Field(
        default=None, alias="render_mode"
    )

    @model_validator(mode="after")
    def _inside_canvas(self) -> LayoutRegion:
        problems = []
        if self.x_axis + self.width > 1.0 + 1e-9:
            problems.append(
                Violation(
                    ("width",),
                    "reaches past the right edge of the canvas: "
                    f"x_axis + width = {self.x_axis + self.width:g} must be at most 1",
                    self.width,
                )
            )
        if self.y_axis + self.height > 1.0 + 1e-9:
            problems.append(
                Violation(
                    ("height",),
                    "reaches past the bottom edge of the canvas: "
                    f"y_axis + height = {self.y_axis + self.height:g} must be at most 1",
                    self.height,
                )
            )
        raise_violations(problems)
        return self


class UserBackground(WireModel):
    """A background image shown in one user's region while that user sends no video."""

    uid: NonEmptyStr
    image_url: NonEmptyStr = Field(alias="image_url")


Regions = Annotated[list[LayoutRegion], Field(max_length=MAX_LAYOUT_REGIONS)]


class LayoutSettings(WireModel):
    """Layout fields of ``transcodingConfig`` (start) and ``clientRequest`` (update-layout)."""

    mixed_video_layout: Annotated[MixedVideoLayout, choice(MixedVideoLayout)] | None = None
    layout_config: Regions | None = None
    background_color: Colour | None = None
    background_image: NonEmptyStr | None = None
    default_user_background_image: NonEmptyStr | None = None
    background_config: list[UserBackground] | None = None

    def layout_violations(self) -> list[Violation]:
        """Rule: a custom layout (3) needs a non-empty ``layoutConfig``."""
        if self.mixed_video_layout == MixedVideoLayout.CUSTOM and not self.layout_config:
            return [
                Violation(
                    ("layoutConfig",),
                    "must list at least one region when mixedVideoLayout is 3 (custom layout)",
                )
            ]
        return []
