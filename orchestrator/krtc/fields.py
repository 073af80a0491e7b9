"""Field types and rule helpers shared by the request models.

Every check here raises a :class:`PydanticCustomError` whose message is a predicate that reads after
the field's name ("is a fraction in [0, 1]"), so that :mod:`orchestrator.krtc.validation` can print
``path.to.field: field <predicate>, got <value>``.

Cross-field rules are collected as :class:`Violation` objects (a location relative to the model
being validated, and a predicate) and raised together by :func:`raise_violations`, so that
several broken rules of one object are reported at once.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import Enum, IntEnum
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Strict
from pydantic.alias_generators import to_camel
from pydantic_core import PydanticCustomError

__all__ = [
    "RULES_ERROR_TYPE",
    "WireModel",
    "Violation",
    "raise_violations",
    "Int",
    "PositiveInt",
    "NonEmptyStr",
    "UidList",
    "Fraction",
    "Alpha",
    "Colour",
    "RtmpUrl",
    "int_in_range",
    "choice",
]


#: The pydantic error type that carries a list of :class:`Violation` in its context.
RULES_ERROR_TYPE = "krtc_rules"

_MISSING: Any = object()


class WireModel(BaseModel):
    """Base of request models: snake_case attributes, the spec's camelCase names on the wire.

    Unknown fields are rejected so that a misspelt field is an error, not silently ignored.
    """

    model_config = ConfigDict(
        alias_generator=to_camel,
        validate_by_name=True,
        validate_by_alias=True,
        serialize_by_alias=True,
        extra="forbid",
        frozen=True,
    )


@dataclass(frozen=True)
class Violation:
    """A broken cross-field rule: ``loc`` is relative to the model that checks it (wire names)."""

    loc: tuple[str | int, ...]
    predicate: str
    input: Any = field(default=_MISSING)

    @property
    def has_input(self) -> bool:
        return self.input is not _MISSING


def raise_violations(violations: Sequence[Violation]) -> None:
    """Raise one validation error carrying every violation, if there is any."""
    if violations:
        raise PydanticCustomError(
            RULES_ERROR_TYPE,
            "{summary}",
            {
                "summary": "; ".join(v.predicate for v in violations),
                "violations": tuple(violations),
            },
        )


def _custom(kind: str, predicate: str) -> PydanticCustomError:
    return PydanticCustomError(kind, predicate)


def int_in_range(lo: int | None, hi: int | None, hint: str = "") -> AfterValidator:
    """An integer check with a message such as ``must be in [1, 5]``."""

    if lo is not None and hi is not None:
        text = f"must be an integer in [{lo}, {hi}]"
    elif lo is not None:
        text = "must be greater than 0" if lo == 1 else f"must be at least {lo}"
    else:
        text = f"must be at most {hi}"
    text = f"{text} {hint}".rstrip()

    def check(value: int) -> int:
        if (lo is not None and value < lo) or (hi is not None and value > hi):
            raise _custom("out_of_range", text)
        return value

    return AfterValidator(check)


def _check_fraction(value: float) -> float:
    if not 0.0 <= value <= 1.0:
        raise _custom("fraction", "is a fraction of the canvas in [0, 1]")
    return value


def _check_alpha(value: float) -> float:
    if not 0.0 <= value <= 1.0:
        raise _custom("fraction", "is a fraction in [0, 1] (1.0 = opaque)")
    return value


_COLOUR = re.compile(r"#[0-9A-Fa-f]{6}")


def _check_colour(value: str) -> str:
    if not _COLOUR.fullmatch(value):
        raise _custom("colour", 'must be "#" followed by 6 hex digits, e.g. "#000000"')
    return value


def _check_rtmp(value: str) -> str:
    if not value.startswith("rtmp://") or len(value) <= len("rtmp://"):
        raise _custom("rtmp_url", 'must be an rtmp:// URL, e.g. "rtmp://example.com/app/stream"')
    return value


def _check_non_empty(value: str) -> str:
    if not value.strip():
        raise _custom("empty", "must not be empty")
    return value


def _describe(member: Enum) -> str:
    words = member.name.replace("_", " ").lower()
    return f"{member.value} ({words})" if isinstance(member, IntEnum) else f'"{member.value}"'


def _choice_check(enum: type[Enum]) -> Callable[[Any], Any]:
    allowed = ", ".join(_describe(m) for m in enum)
    values = {m.value for m in enum}
    is_int = issubclass(enum, IntEnum)

    def check(value: Any) -> Any:
        exact_type = int if is_int else str
        if isinstance(value, bool) or not isinstance(value, exact_type):
            raise _custom("choice_type", f"must be one of {allowed}")
        if value not in values:
            raise _custom("choice", f"must be one of {allowed}")
        return value

    return check


def choice(enum: type[Enum]) -> BeforeValidator:
    """Use as ``Annotated[Mode, choice(Mode)]``: accept exactly the enum's wire values.

    Unlike pydantic's lax enums, "1" or true or 1.0 is not taken for 1.
    """
    return BeforeValidator(_choice_check(enum))


#: Integers are strict: "30" or 30.5 or true is an error, never converted.
Int = Annotated[int, Strict()]
PositiveInt = Annotated[int, Strict(), int_in_range(1, None)]
NonEmptyStr = Annotated[str, Strict(), AfterValidator(_check_non_empty)]
UidList = list[NonEmptyStr]
#: A number in [0, 1]; integers 0 and 1 are numbers too, but true or "0.5" is an error.
Fraction = Annotated[float, Strict(), AfterValidator(_check_fraction)]
Alpha = Annotated[float, Strict(), AfterValidator(_check_alpha)]
Colour = Annotated[str, Strict(), AfterValidator(_check_colour)]
RtmpUrl = Annotated[str, Strict(), AfterValidator(_check_rtmp)]
